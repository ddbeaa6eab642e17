"""Checkpoints: where they come from (local path, Hugging Face hub) and how their keys map to open_clip.

The official Llama3-MS-CLIP file is loaded unchanged: a plain state dict holding one open_clip model
under three prefixes that share tensors, plus the training loss ``temperature``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from msclip.errors import MSClipError
from msclip.io import atomic_write
from msclip.models.registry import ModelSpec

OFFICIAL_PREFIXES = ("clip_base_model.model.", "image_encoder.model.", "text_encoder.model.")
OFFICIAL_EXTRA_KEYS = ("temperature",)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise MSClipError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise MSClipError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MSClipError(f"{path}: not a plain tensor checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # open_clip / Lightning training checkpoints
    if not isinstance(state, dict):
        raise MSClipError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def to_open_clip_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip keys from the official layout (checking its three copies agree), or from 'module.' keys."""
    if not any(k.startswith(OFFICIAL_PREFIXES) for k in state):
        prefix = "module."
        return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    copies = {p: {k[len(p) :]: v for k, v in state.items() if k.startswith(p)} for p in OFFICIAL_PREFIXES}
    unknown = [k for k in state if not k.startswith(OFFICIAL_PREFIXES) and k not in OFFICIAL_EXTRA_KEYS]
    if unknown:
        raise MSClipError(f"checkpoint has {len(unknown)} unexpected key(s), e.g. {unknown[0]!r}")
    base = copies[OFFICIAL_PREFIXES[0]]
    for prefix, copy in copies.items():
        if copy.keys() != base.keys():
            missing = sorted(base.keys() ^ copy.keys())
            raise MSClipError(
                f"checkpoint copy {prefix}* differs in keys from the base model, e.g. {missing[0]!r}"
            )
        for key, tensor in copy.items():
            if tensor.data_ptr() != base[key].data_ptr() and not torch.equal(tensor, base[key]):
                raise MSClipError(f"checkpoint copy {prefix}{key} differs from clip_base_model.model.{key}")
    return base


def to_official_layout(state: dict[str, torch.Tensor], temperature: float = 0.07) -> dict[str, torch.Tensor]:
    """The official file's layout from an open_clip state dict (same tensors under the three prefixes)."""
    out = {p + k: v for p in OFFICIAL_PREFIXES for k, v in state.items()}
    out["temperature"] = torch.tensor(float(temperature))
    return out


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load: every tensor accounted for, shapes equal; one clear line otherwise."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})"
        )
    if problems:
        raise MSClipError(f"checkpoint {source} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(spec: ModelSpec, revision: str | None = None, sha256: str | None = None) -> str:
    """The spec's checkpoint from the Hugging Face hub (cached by huggingface_hub), checked when a hash is known."""
    from huggingface_hub import hf_hub_download

    if not (spec.hf_hub_id and spec.hf_filename):
        raise MSClipError(f"{spec.name} has no weights on the Hugging Face hub: pass --checkpoint PATH")
    url = f"https://huggingface.co/{spec.hf_hub_id}/blob/{revision or spec.hf_revision or 'main'}/{spec.hf_filename}"
    try:
        path = hf_hub_download(spec.hf_hub_id, spec.hf_filename, revision=revision or spec.hf_revision)
    except Exception as exc:
        raise MSClipError(
            f"cannot get the {spec.name} weights ({type(exc).__name__}; offline?): download {url} "
            f"and pass it with --checkpoint PATH"
        ) from exc
    expected = sha256 or spec.sha256
    if expected and sha256_of(path) != expected.lower():
        raise MSClipError(f"{path}: sha256 does not match {expected}; delete it and download again")
    return path


def convert_to_safetensors(source: str | os.PathLike, target: str | os.PathLike) -> int:
    """Write the open_clip state dict of any supported checkpoint as safetensors; returns the tensor count."""
    from safetensors.torch import save_file

    state = to_open_clip_keys(read_state_dict(source))
    state = {k: v.contiguous() for k, v in state.items() if k not in OFFICIAL_EXTRA_KEYS}
    metadata = {"format": "pt", "converted_from": Path(source).name}
    atomic_write(target, lambda tmp: save_file(state, tmp, metadata=metadata))
    return len(state)
