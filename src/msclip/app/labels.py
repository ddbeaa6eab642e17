"""Label a few, then map: per-session labelled embeddings and the head fitted on them.

A session is a page: it gets an id the server made (uuid), and so does every chip, hit or window the server
shows it ("samples": a display name and the embedding already computed). The page labels samples by those
ids, never by path. "Adapt" fits a head with :mod:`msclip.adapt`'s default method on the labelled samples,
says how it does on shots it did not see (cross-validation over the labels, when each class has two or
more), and re-scores every sample of the session with it.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from msclip.adapt import DEFAULT_METHOD, Head, Shots, fit_head, model_identity, save_head, text_classifier
from msclip.adapt.methods import folds_of
from msclip.errors import MSClipError
from msclip.text import checked_names, templates

#: Sessions kept (oldest dropped first), and samples kept per session.
KEPT_SESSIONS = 64
KEPT_SAMPLES = 4096


@dataclass
class Sample:
    name: str
    embedding: torch.Tensor


@dataclass
class Session:
    """What one page has seen (samples), labelled, and fitted."""

    samples: OrderedDict[str, Sample] = field(default_factory=OrderedDict)
    labels: dict[str, str] = field(default_factory=dict)  # sample id -> class name
    head: Head | None = None
    head_id: str | None = None
    head_bytes: bytes | None = None

    def add(self, name: str, embedding: torch.Tensor) -> str:
        """Remember a sample; its id for the page."""
        sample_id = uuid.uuid4().hex
        self.samples[sample_id] = Sample(name, embedding.detach().float().cpu())
        while len(self.samples) > KEPT_SAMPLES:
            dropped, _ = self.samples.popitem(last=False)
            self.labels.pop(dropped, None)
        return sample_id

    def label(self, sample_ids: list[str], class_name: str) -> None:
        """Give the samples a class ("" takes their labels away)."""
        unknown = [s for s in sample_ids if s not in self.samples]
        if unknown:
            raise MSClipError(f"{len(unknown)} unknown or expired item(s): classify or search again")
        for sample_id in sample_ids:
            if class_name:
                self.labels[sample_id] = class_name
            else:
                self.labels.pop(sample_id, None)

    def describe(self) -> dict:
        return {
            "counts": dict(sorted(Counter(self.labels.values()).items())),
            "labels": [
                {"sample": s, "name": self.samples[s].name, "label": c} for s, c in self.labels.items()
            ],
        }


class Sessions:
    """The sessions of the app, by id; thread-safe, bounded."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self) -> str:
        session_id = uuid.uuid4().hex
        with self._lock:
            self._sessions[session_id] = Session()
            while len(self._sessions) > KEPT_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise MSClipError("unknown or expired session: reload the page")
        return session

    def find(self, session_id: str) -> Session | None:
        """The session, or None when the request named none."""
        return self.get(session_id) if session_id else None

    def head_file(self, head_id: str) -> bytes | None:
        with self._lock:
            sessions = list(self._sessions.values())
        return next((s.head_bytes for s in sessions if s.head_id == head_id), None)


def labelled_shots(model, session: Session, max_classes: int) -> tuple[list[str], Shots]:
    """The session's labelled samples as shots, with the text classifier of their class names."""
    names = sorted(set(session.labels.values()))
    if len(names) < 2:
        raise MSClipError(f"label items of at least two classes first (now: {len(names)})")
    checked_names(names, max_classes)
    ids = list(session.labels)
    features = torch.stack([session.samples[s].embedding for s in ids])
    labels = torch.tensor([names.index(session.labels[s]) for s in ids], dtype=torch.long)
    return names, Shots(features, labels, text_classifier(model, names, templates("msclip")))


def held_out_accuracy(shots: Shots, names: list[str], identity: dict) -> tuple[float, int] | None:
    """Share of labelled samples right when each fold of them is left out of the fit (the folds of
    :func:`msclip.adapt.methods.folds_of`) and the number of folds; None when a class has a single label
    (nothing to hold out)."""
    folds = folds_of(shots.labels)
    if folds is None:
        return None
    correct = 0
    for fold in folds.unique():
        held = folds == fold
        train = Shots(shots.features[~held], shots.labels[~held], shots.text)
        head = fit_head(train, DEFAULT_METHOD, names, identity)
        correct += int((head.probabilities(shots.features[held]).argmax(-1) == shots.labels[held]).sum())
    return correct / len(shots.labels), len(folds.unique())


def adapt_session(model, session: Session, max_classes: int) -> dict:
    """Fit the session's head on its labels, keep it (and its file) in the session; what the page shows."""
    names, shots = labelled_shots(model, session, max_classes)
    identity = model_identity(model)
    held_out = held_out_accuracy(shots, names, identity)
    accuracy = held_out[0] if held_out else None
    head = fit_head(shots, DEFAULT_METHOD, names, identity, templates("msclip"))
    session.head, session.head_id, session.head_bytes = head, uuid.uuid4().hex, _head_bytes(head)
    ids = list(session.samples)
    probabilities = head.probabilities(torch.stack([session.samples[s].embedding for s in ids]))
    return {
        "method": head.method,
        "classes": names,
        "shots": head.shots,
        "accuracy": accuracy,
        "accuracy_note": (
            f"held-out accuracy {held_out[0]:.0%} ({len(shots.labels)} labels, each left out of one of "
            f"{held_out[1]} fits)"
            if held_out
            else "held-out accuracy needs at least two labels of every class"
        ),
        "head": f"/api/heads/{session.head_id}.safetensors",
        "predictions": {
            sample_id: {"label": names[int(p.argmax())], "probabilities": p.tolist()}
            for sample_id, p in zip(ids, probabilities, strict=True)
        },
    }


def _head_bytes(head: Head) -> bytes:
    """The head file's bytes (written by :func:`msclip.adapt.save_head`, kept in memory, never on disk)."""
    with tempfile.TemporaryDirectory(prefix="msclip-app-") as folder:
        path = Path(folder) / "head.safetensors"
        save_head(head, path)
        return path.read_bytes()
