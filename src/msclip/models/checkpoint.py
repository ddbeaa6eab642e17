"""Checkpoints: where they come from (local path, Hugging Face hub) and how their keys map to open_clip.

The official Llama3-MS-CLIP file is loaded unchanged: a plain state dict holding one open_clip model
under three prefixes that share tensors, plus the training loss ``temperature``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path

import torch

from msclip.errors import MSClipError
from msclip.io import atomic_write
from msclip.models.registry import ModelSpec

OFFICIAL_PREFIXES = ("clip_base_model.model.", "image_encoder.model.", "text_encoder.model.")
OFFICIAL_EXTRA_KEYS = ("temperature",)
#: safetensors metadata key of the model record (the official ``.pt`` layout keeps it in a ``.json`` sidecar)
RECORD_KEY = "msclip_model"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file, memory-mapped (no copy of the file in memory), never
    unpickling arbitrary objects.

    torch files in the zip format (``torch.save``'s since torch 1.6, the official file's) are mapped as they
    are; converting them to safetensors in a cache would need their sha256 on every run, which takes longer
    (~3 s for 600 MB on 2 cores) than the copy it saves. Older torch files are read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise MSClipError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # maps the file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise MSClipError(f"{path}: not a readable safetensors file ({exc})") from exc
    if not _looks_like_torch_file(path):
        raise MSClipError(f"{path}: not a checkpoint (neither a PyTorch file nor .safetensors)")
    try:
        state = _torch_load(path)
    except Exception as exc:
        raise MSClipError(
            f"{path}: holds Python objects besides tensors, which msclip does not unpickle (unsafe); "
            "where you trust it, save its state_dict or convert it to .safetensors"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # open_clip / Lightning training checkpoints
    if not isinstance(state, dict):
        raise MSClipError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (or, before torch 1.6, a pickle): anything else is no checkpoint."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _torch_load(path: Path):
    """``torch.load`` of plain tensors, memory-mapped when the file's format allows."""
    import zipfile

    mmap = zipfile.is_zipfile(path)  # the legacy (pre-1.6) format cannot be mapped
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


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


def load_into(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, assign: bool = False
) -> None:
    """Strict load: every tensor accounted for, shapes equal; one clear line otherwise. ``assign``: the
    model takes the state's tensors themselves (a model built on the meta device), not copies."""
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
    model.load_state_dict(state, strict=True, assign=assign)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str | os.PathLike | None) -> str | None:
    """The remembered sha256 of a checkpoint file, recorded with results so they trace to exact weights;
    None for a model without a file (random init, a hub tag resolved elsewhere)."""
    if not path or not Path(path).is_file():
        return None
    return remembered_sha256(path)


def remembered_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hashed once and then remembered in msclip's cache for as long as the file is the
    same (path, inode, size, modification and change times): a checked download is not read whole by every
    command (~1-3 s for 600 MB on 2 cores). The change time cannot be set back by any user, and only
    records this user wrote are trusted."""
    from msclip.text import cache_dir

    stat = os.stat(path)
    identity = f"{os.path.realpath(path)}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"
    record = cache_dir() / "sha256" / hashlib.sha256(identity.encode()).hexdigest()[:32]
    with contextlib.suppress(OSError):
        if record.stat().st_uid == os.getuid():
            remembered = record.read_text(encoding="ascii").strip()
            if len(remembered) == 64:
                return remembered
    digest = sha256_of(path)
    with contextlib.suppress(OSError):  # a cache that cannot be written: hashed again next time
        atomic_write(record, lambda tmp: Path(tmp).write_text(digest, encoding="ascii"))
    return digest


@functools.cache
def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether the hub answers one short request (any HTTP status will do). Without a network,
    huggingface_hub retries for ~45 s with a warning per try; this asks once, through the same proxies."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def download(spec: ModelSpec, revision: str | None = None, sha256: str | None = None) -> str:
    """The spec's checkpoint from the Hugging Face hub (cached by huggingface_hub), checked when a hash is
    known. Unreachable hub (or ``HF_HUB_OFFLINE``): the cached copy, else one line saying where the file is."""
    from huggingface_hub import constants, hf_hub_download

    if not (spec.hf_hub_id and spec.hf_filename):
        raise MSClipError(f"{spec.name} has no weights on the Hugging Face hub: pass --checkpoint PATH")
    revision = revision or spec.hf_revision
    url = f"https://huggingface.co/{spec.hf_hub_id}/resolve/{revision or 'main'}/{spec.hf_filename}"
    unreachable = not constants.HF_HUB_OFFLINE and not hub_reachable(constants.ENDPOINT)
    try:
        path = hf_hub_download(
            spec.hf_hub_id, spec.hf_filename, revision=revision, local_files_only=unreachable
        )
    except Exception as exc:
        why = f"no connection to {constants.ENDPOINT}" if unreachable else f"{type(exc).__name__}; offline?"
        raise MSClipError(
            f"cannot get the {spec.name} weights ({why}): download {url} and pass it with --checkpoint PATH"
        ) from exc
    expected = sha256 or spec.sha256
    if expected and remembered_sha256(path) != expected.lower():
        raise MSClipError(f"{path}: sha256 does not match {expected}; delete it and download again")
    return path


def model_record(spec: ModelSpec) -> dict:
    """What a checkpoint needs besides its tensors to be used alone: architecture, bands, statistics."""
    record = {"model": spec.name, "arch": spec.arch, "bands": list(spec.bands), "image_size": spec.image_size}
    if not spec.is_rgb:  # RGB models take open_clip's own preprocessing
        record.update({"mean": list(spec.mean), "std": list(spec.std)})
    return record


def sidecar_path(checkpoint: str | os.PathLike) -> Path:
    """Where the record of a torch checkpoint lies: ``model.pt`` -> ``model.json``."""
    return Path(checkpoint).with_suffix(".json")


def read_model_record(checkpoint: str | os.PathLike) -> dict | None:
    """The record a checkpoint carries (safetensors metadata or the ``.json`` sidecar), None without one."""
    path = Path(checkpoint)
    if not path.is_file():
        return None  # loading it says so
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as handle:
                text = (handle.metadata() or {}).get(RECORD_KEY)
        except Exception as exc:
            raise MSClipError(f"{path}: not a readable safetensors file ({exc})") from exc
    else:
        sidecar = sidecar_path(path)
        text = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MSClipError(f"{path}: unreadable model record ({exc})") from None


def recorded_spec(checkpoint: str | os.PathLike) -> ModelSpec | None:
    """The model a checkpoint records, as a spec (its statistics as recorded), or None."""
    import open_clip

    record = read_model_record(checkpoint)
    if record is None:
        return None
    if not isinstance(record, dict) or not {"arch", "bands"} <= record.keys():
        raise MSClipError(f"{checkpoint}: its model record lacks the architecture or the bands")
    if record["arch"] not in open_clip.list_models():
        raise MSClipError(f"{checkpoint} records architecture {record['arch']!r}, unknown to open_clip")
    stats = (tuple(record["mean"]), tuple(record["std"])) if "mean" in record else None
    return ModelSpec(
        name=record.get("model", record["arch"]),
        arch=record["arch"],
        bands=tuple(record["bands"]),
        licence="see the checkpoint",
        description=f"as recorded with {Path(checkpoint).name}",
        image_size=int(record.get("image_size", 224)),
        stats=stats,
    )


def convert_to_safetensors(source: str | os.PathLike, target: str | os.PathLike) -> int:
    """Write the open_clip state dict of any supported checkpoint as safetensors (with its model record, when
    it has one); returns the tensor count."""
    from safetensors.torch import save_file

    state = to_open_clip_keys(read_state_dict(source))
    state = {k: v.contiguous() for k, v in state.items() if k not in OFFICIAL_EXTRA_KEYS}
    metadata = {"format": "pt", "converted_from": Path(source).name}
    record = read_model_record(source)
    if record is not None:
        metadata[RECORD_KEY] = json.dumps(record)
    atomic_write(target, lambda tmp: save_file(state, tmp, metadata=metadata))
    return len(state)
