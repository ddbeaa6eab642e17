"""Versioned prompt templates: three questions and answers about the image, then a caption built from them.

A run records the prompt version with every caption; a YAML file with the same keys overrides the built-in set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from msclip.captioning.overture import ChipTags
from msclip.errors import MSClipError


@dataclass(frozen=True)
class PromptSet:
    """``questions`` and ``caption`` may use {tags}, {names} and {classes}; ``system`` may be empty."""

    version: str
    system: str
    questions: str
    caption: str


BUILTIN: dict[str, PromptSet] = {
    "v1": PromptSet(
        version="v1",
        system="You are an expert in remote sensing who describes Sentinel-2 satellite images precisely.",
        questions=(
            "This is a true-colour Sentinel-2 satellite image of about 2.6 x 2.6 km. Map data lists these "
            "features in the area, largest first: {tags}. Named places: {names}. Some of them may not be "
            "visible. Ask three questions about what the image shows and answer each from the image alone. "
            "Write them as 'Q1: ... A1: ...', 'Q2: ... A2: ...', 'Q3: ... A3: ...'."
        ),
        caption=(
            "Now write one caption of two or three sentences that summarises your answers. Mention only the "
            "listed features that are actually visible in the image, and nothing that is not visible."
        ),
    )
}
DEFAULT_VERSION = "v1"

_PAIR = re.compile(
    r"Q(?:uestion)?\s*\d*\s*[:.)]\s*(?P<q>.+?)\s*A(?:nswer)?\s*\d*\s*[:.)]\s*(?P<a>.+?)\s*(?=Q(?:uestion)?\s*\d*\s*[:.)]|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_CAPTION_PREFIX = re.compile(r"^\s*(?:caption\s*:\s*)", re.IGNORECASE)


def prompt_set(name_or_file: str = DEFAULT_VERSION) -> PromptSet:
    """A built-in version (``v1``) or a YAML file with keys version, system, questions, caption."""
    if name_or_file in BUILTIN:
        return BUILTIN[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise MSClipError(f"unknown prompt set {name_or_file!r}: use {', '.join(BUILTIN)} or a .yaml file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = {"questions", "caption"} - set(data)
    if missing:
        raise MSClipError(f"{path}: prompt file lacks {', '.join(sorted(missing))}")
    return PromptSet(
        str(data.get("version", path.stem)), str(data.get("system", "")), data["questions"], data["caption"]
    )


def fill(template: str, tags: ChipTags) -> str:
    """The template with the chip's hints; empty lists read as 'none'."""
    return template.format(
        tags=", ".join(tags.tags) or "none",
        names=", ".join(tags.names) or "none",
        classes=", ".join(tags.classes) or "none",
    )


def conversation(prompts: PromptSet, tags: ChipTags, answers: str | None = None) -> list[dict]:
    """Chat messages (Hugging Face / OpenAI content parts; ``{"type": "image"}`` marks the picture).

    Without ``answers`` it asks the questions; with the model's answers it asks for the caption.
    """
    messages = (
        [{"role": "system", "content": [{"type": "text", "text": prompts.system}]}] if prompts.system else []
    )
    messages.append(
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": fill(prompts.questions, tags)}],
        }
    )
    if answers is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answers}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": fill(prompts.caption, tags)}]})
    return messages


def parse_pairs(text: str, count: int = 3) -> list[str]:
    """Up to ``count`` "question? answer" strings from the model's Q/A text; the raw text when it has none."""
    pairs = [f"{m['q'].strip()} {m['a'].strip()}" for m in _PAIR.finditer(text)]
    if not pairs and text.strip():
        pairs = [text.strip()]
    return (pairs + [""] * count)[:count]


def clean_caption(text: str) -> str:
    return _CAPTION_PREFIX.sub("", text.strip()).strip().strip('"').strip()
