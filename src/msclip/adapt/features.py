"""Image embeddings of labelled files, cached on disk per (model, input options, file, size, mtime).

Trying several methods (or shots) on the same folder encodes each image once. The model's key is cheap:
its name, bands, precision, backend and the identity of its weights (checkpoint path, size and mtime, or
its open_clip tag); a changed checkpoint or a rewritten image gets new embeddings.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from msclip.cache import read_vector, write_vector
from msclip.data import InputOptions
from msclip.text import cache_dir


def model_key(model, options: InputOptions) -> str:
    """A digest of everything that decides an image's embedding, except the file itself."""
    weights = model.checkpoint and Path(model.checkpoint)
    if weights and weights.is_file():
        stat = weights.stat()
        source = f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    else:
        source = f"tag:{model.spec.open_clip_tag}"
    backend = "onnx" if model.image_backend is not None else "torch"
    parts = [
        model.spec.name,
        model.spec.arch,
        ",".join(model.bands),
        model.precision,
        backend,
        source,
        repr(options),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _file_key(path: str) -> str:
    stat = os.stat(path)
    return hashlib.sha256(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[
        :32
    ]


def cached_embeddings(
    model,
    paths: list[str],
    options: InputOptions | None = None,
    use_cache: bool = True,
    skipped: list[tuple[str, str]] | None = None,
    **stream,
) -> tuple[list[str], torch.Tensor]:
    """(kept paths in the given order, (N, D) embeddings); files that cannot be read go to ``skipped``."""
    from msclip.zeroshot import embed_batches

    options = options or InputOptions()
    folder = cache_dir() / "images" / model_key(model, options)
    found: dict[str, torch.Tensor] = {}
    files: dict[str, Path] = {}
    errors: list[tuple[str, str]] = []
    for path in dict.fromkeys(paths):
        if not os.path.isfile(path):
            errors.append((path, f"{path}: no such file"))
            continue
        files[path] = folder / f"{_file_key(path)}.npy"
        if use_cache and files[path].is_file():
            cached = read_vector(files[path], "image embedding")
            if cached is not None:
                found[path] = cached
    todo = [p for p in files if p not in found]
    if todo:
        for batch in embed_batches(model, todo, options, skipped=errors, **stream):
            for path, vector in zip(batch.paths, batch.embeddings, strict=True):
                found[path] = vector
                if use_cache:
                    write_vector(files[path], vector, "image embedding")
    if skipped is not None:
        skipped.extend(errors)
    kept = [p for p in paths if p in found]
    dim = next(iter(found.values())).shape[-1] if found else 0
    return kept, torch.stack([found[p] for p in kept]) if kept else torch.empty(0, dim)
