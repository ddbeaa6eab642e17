"""Training checkpoints (exact resume) and the exported model (official layout + safetensors)."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import torch

from msclip.errors import MSClipError
from msclip.io import atomic_write
from msclip.models.checkpoint import RECORD_KEY, model_record, sidecar_path, to_official_layout
from msclip.models.registry import ModelSpec

_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


def rng_state() -> dict:
    """Every generator training draws from (data randomness is seeded per sample and needs no state)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str | Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: str | Path) -> dict:
    """A training checkpoint: plain tensors and containers only (``weights_only``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MSClipError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        raise MSClipError(f"{path}: not a training checkpoint ({type(exc).__name__}: {exc})") from exc


def checkpoints_in(folder: str | Path) -> list[Path]:
    """Training checkpoints of a run, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("step_*.pt") if (m := _STEP_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def prune(folder: str | Path, keep: int) -> None:
    for path in checkpoints_in(folder)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)


def export_model(
    clip: torch.nn.Module, spec: ModelSpec, folder: str | Path, name: str = "model"
) -> tuple[Path, Path]:
    """``name.pt`` in the official Llama3-MS-CLIP layout (its model record in ``name.json``) and
    ``name.safetensors`` with open_clip keys (the record in its metadata); both load alone with
    ``msclip.load_model(checkpoint=...)`` and ``msclip classify --checkpoint``."""
    from safetensors.torch import save_file

    state = {k: v.detach().float().cpu().contiguous() for k, v in clip.state_dict().items()}
    temperature = 1.0 / math.exp(float(state["logit_scale"])) if "logit_scale" in state else 0.07
    record = json.dumps(model_record(spec))
    official = Path(folder) / f"{name}.pt"
    tensors = Path(folder) / f"{name}.safetensors"
    atomic_write(official, lambda tmp: torch.save(to_official_layout(state, temperature), tmp))
    atomic_write(sidecar_path(official), lambda tmp: Path(tmp).write_text(record, encoding="utf-8"))
    metadata = {"format": "pt", "producer": "msclip train", RECORD_KEY: record}
    atomic_write(tensors, lambda tmp: save_file(state, tmp, metadata=metadata))
    return official, tensors
