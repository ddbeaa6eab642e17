"""A head file: a few-shot classifier for one model's embeddings, as safetensors plus JSON metadata.

The metadata says which model the head was made for (name, bands, embedding size, checkpoint sha256 when
the weights came from a file, precision), the method and its parameters, the class names, the templates
used for the text classifier and the shots per class. A head refuses any other model in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from msclip.adapt.methods import METHODS, Tensors
from msclip.errors import MSClipError
from msclip.io import atomic_write

METADATA_KEY = "msclip_head"
FORMAT_VERSION = 1


@dataclass
class Head:
    """A fitted few-shot classifier: ``probabilities(embeddings)`` gives (N, classes)."""

    method: str
    class_names: list[str]
    tensors: Tensors
    params: dict
    model: dict
    templates: list[str] | None = None
    shots: dict[str, int] = field(default_factory=dict)

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        return METHODS[self.method].score(self.tensors, self.params, embeddings.float())

    def check_model(self, model) -> None:
        """Refuse, in one line, a model whose embeddings this head was not made for."""
        mine, theirs = self.model, model_identity(model)
        reasons = [
            f"{key} {mine.get(key)!r} != {theirs.get(key)!r}"
            for key in ("name", "bands", "embed_dim")
            if mine.get(key) != theirs.get(key)
        ]
        if mine.get("checkpoint_sha256") and theirs.get("checkpoint_sha256") != mine["checkpoint_sha256"]:
            reasons.append(f"checkpoint sha256 {mine['checkpoint_sha256'][:12]}… differs")
        if reasons:
            raise MSClipError(
                f"this head was made for model {mine.get('name')!r}, not {theirs.get('name')!r} "
                f"({'; '.join(reasons)}): run msclip adapt with this model"
            )

    @property
    def metadata(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "class_names": self.class_names,
            "params": self.params,
            "model": self.model,
            "templates": self.templates,
            "shots": self.shots,
        }


def model_identity(model) -> dict:
    """What a head records of the model that made its embeddings."""
    from msclip.models.checkpoint import checkpoint_sha256

    return {
        "name": model.spec.name,
        "bands": list(model.bands),
        "embed_dim": _embed_dim(model),
        "checkpoint_sha256": checkpoint_sha256(model.checkpoint),
        "precision": model.precision,
    }


def _embed_dim(model) -> int:
    projection = getattr(model.clip, "text_projection", None)
    if isinstance(projection, torch.nn.Linear):
        return projection.out_features
    if projection is not None:
        return int(projection.shape[-1])
    return int(model.encode_text(["x"]).shape[-1])


def save_head(head: Head, path: str | os.PathLike) -> None:
    """Write the head atomically (contiguous tensors, sorted metadata: the same head gives the same bytes)."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in sorted(head.tensors.items())}
    metadata = {METADATA_KEY: json.dumps(head.metadata, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_head(path: str | os.PathLike) -> Head:
    """Read a head file; a file that is not one is refused in one line."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise MSClipError(f"head file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {}).get(METADATA_KEY, "null"))
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise MSClipError(f"{path}: not a safetensors head file ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("method") not in METHODS:
        raise MSClipError(f"{path}: not an msclip head (no head metadata); make one with msclip adapt")
    return Head(
        metadata["method"],
        metadata["class_names"],
        tensors,
        metadata["params"],
        metadata["model"],
        metadata.get("templates"),
        metadata.get("shots", {}),
    )
