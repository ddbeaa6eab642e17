"""Prompt templates, class names and class embeddings (cached on disk per model, template set and class)."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from msclip.cache import read_vector, write_vector
from msclip.errors import MSClipError
from msclip.io import read_list

TEMPLATE_SETS = ("msclip", "clip", "rs5m")


@cache
def _builtin_templates() -> dict[str, list[str]]:
    text = resources.files("msclip").joinpath("resources/templates.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def templates(name_or_path: str = "msclip") -> list[str]:
    """A built-in template set (msclip, clip, rs5m) or the templates of a .txt/.yaml file; '{c}' or '{}'
    marks where the class name goes."""
    if name_or_path in _builtin_templates():
        return list(_builtin_templates()[name_or_path])
    if not Path(name_or_path).is_file():
        raise MSClipError(
            f"unknown template set {name_or_path!r}: use {', '.join(TEMPLATE_SETS)} or a file path"
        )
    found = [t.replace("{}", "{c}") for t in read_list(name_or_path, key="templates")]
    bad = [t for t in found if "{c}" not in t]
    if bad:
        raise MSClipError(f"{name_or_path}: template {bad[0]!r} has no {{c}} for the class name")
    return found


#: Limits on class names and queries: CLIP reads 77 tokens of each, but tokenizing an 850 KB name first held
#: the model for 46 s (and prompts multiply every name by the template count).
MAX_CLASSES = 1000
MAX_CLASS_NAME_CHARS = 300


def class_names(values: list[str]) -> list[str]:
    """Class names from the command line, or from one .txt/.yaml file (key 'classes')."""
    if len(values) == 1 and Path(values[0]).suffix.lower() in {".txt", ".yaml", ".yml"}:
        values = read_list(values[0], key="classes")
    return checked_names(values)


def checked_names(values: list[str], max_count: int = MAX_CLASSES) -> list[str]:
    """Class names (or queries) as given, stripped: at least one, at most ``max_count``, none too long or
    given twice. Never read from a file (what a web page sends must stay a name)."""
    names = [v.strip() for v in values if v.strip()]
    if not names:
        raise MSClipError("no class names given")
    if len(names) > max_count:
        raise MSClipError(f"too many classes ({len(names)}); at most {max_count}")
    for name in names:
        if len(name) > MAX_CLASS_NAME_CHARS:
            raise MSClipError(
                f"class name or query {name[:30]!r}... is {len(name):,} characters long;"
                f" at most {MAX_CLASS_NAME_CHARS}"
            )
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise MSClipError(f"class name(s) given twice: {', '.join(duplicates)}")
    return names


def cache_dir() -> Path:
    """$MSCLIP_CACHE, else the user cache directory (honours XDG_CACHE_HOME)."""
    if os.environ.get("MSCLIP_CACHE"):
        return Path(os.environ["MSCLIP_CACHE"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("msclip"))


def text_fingerprint(model) -> str:
    """Hash of the text tower's weights (and the model's dtype): cached embeddings follow the weights.

    The bytes are hashed as they are (no float copy) with sha256, which CPUs compute in hardware: ~0.1 s for
    ViT-B/16's text tower, where a float copy through blake2b took 1.5 s of every command on 2 cores.
    """
    cached = getattr(model, "_text_fingerprint", None)
    if cached:
        return cached
    digest = hashlib.sha256(f"{model.spec.arch}|{model.precision}".encode())
    for name, tensor in sorted(model.clip.state_dict().items()):
        if not name.startswith("visual."):
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    model._text_fingerprint = digest.hexdigest()[:32]
    return model._text_fingerprint


def class_embeddings(
    model, names: list[str], template_list: list[str], use_cache: bool = True
) -> torch.Tensor:
    """(classes, D) zero-shot classifier: each class in every template, embeddings normalised, averaged,
    normalised again (as CLIP and the reference do). Missing classes are encoded in one batched pass."""
    folder = cache_dir() / "text" / text_fingerprint(model) / _digest("\n".join(template_list))
    files = [folder / f"{_digest(name)}.npy" for name in names]
    cached = {i: read_vector(f, "text embedding") for i, f in enumerate(files) if use_cache and f.is_file()}
    found = {i: embedding for i, embedding in cached.items() if embedding is not None}
    todo = [i for i in range(len(names)) if i not in found]
    if todo:
        prompts = [t.format(c=names[i]) for i in todo for t in template_list]
        features = model.encode_text(prompts).view(len(todo), len(template_list), -1)
        averaged = F.normalize(F.normalize(features, dim=-1).mean(dim=1), dim=-1)
        for i, embedding in zip(todo, averaged, strict=True):
            found[i] = embedding
            if use_cache:
                write_vector(files[i], embedding, "text embedding")
    return torch.stack([found[i] for i in range(len(names))])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
