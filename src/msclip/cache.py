"""Vectors cached on disk (class and image embeddings): used when readable, recomputed when not.

A cache folder may be shared with other users or left half-written by a killed run: an entry that cannot
be read is recomputed and a cache that cannot be written is done without, with one warning per run.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

from msclip.io import atomic_write

_warned: set[str] = set()


def read_vector(path: Path, what: str) -> torch.Tensor | None:
    """The cached tensor at ``path``, or None when it cannot be read (another user's file, a truncated one)."""
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        _warn_once(f"cannot read cached {what} {path} ({exc}); recomputing")
        return None


def write_vector(path: Path, tensor: torch.Tensor, what: str) -> None:
    """Store ``tensor`` atomically; a cache that cannot be written is skipped, not fatal."""
    try:
        atomic_write(path, partial(_save, tensor=tensor))
    except OSError as exc:
        _warn_once(f"cannot write the {what} cache in {path.parent} ({exc}); continuing without it")


def _save(path: str, tensor: torch.Tensor) -> None:
    with open(path, "wb") as handle:
        np.save(handle, tensor.detach().cpu().numpy())


def _warn_once(message: str) -> None:
    """One warning per run (a shared cache folder would otherwise warn for every entry)."""
    if not _warned:
        _warned.add(message)
        warnings.warn(f"msclip cache: {message}", stacklevel=3)
