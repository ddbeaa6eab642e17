"""Cheap per-caption quality signals and a run summary: tag coverage, length, repeats, unlisted classes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pandas as pd

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def mentions(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive match that also accepts a plural ('forest' in 'forests')."""
    return re.search(rf"\b{re.escape(phrase.lower())}(?:s|es)?\b", text.lower()) is not None


def check(caption: str, tags: list[str], vocabulary: Iterable[str]) -> dict:
    """Quality columns for one caption.

    ``absent_classes``: words of the Overture vocabulary that the caption uses although the chip's tags do
    not list them: a cheap hallucination signal (it also fires on honest synonyms, so it flags, never drops).
    """
    sentences = [s.strip().lower().rstrip(".!?") for s in _SENTENCE.split(caption) if s.strip()]
    given = set(tags)
    mentioned = [t for t in tags if mentions(caption, t)]
    absent = sorted(w for w in set(vocabulary) - given if mentions(caption, w))
    return {
        "n_words": len(caption.split()),
        "tags_mentioned": mentioned,
        "tag_coverage": len(mentioned) / len(given) if given else None,
        "repeated_sentences": sum(n - 1 for n in Counter(sentences).values() if n > 1),
        "absent_classes": absent,
        "flagged": bool(absent),
    }


def summary(table: pd.DataFrame) -> dict:
    """Run-level figures over the quality columns of a caption table."""
    if "n_words" not in table:  # empty, or tags only
        return {"captions": 0, "chips": len(table)}
    absent = Counter(w for words in table["absent_classes"] for w in words)
    return {
        "captions": len(table),
        "mean_words": float(table["n_words"].mean()),
        "mean_tag_coverage": float(table["tag_coverage"].dropna().mean())
        if table["tag_coverage"].notna().any()
        else None,
        "with_repeated_sentences": float((table["repeated_sentences"] > 0).mean()),
        "flagged_absent_classes": float(table["flagged"].mean()),
        "top_absent_classes": dict(absent.most_common(10)),
        "empty_captions": int((table["n_words"] == 0).sum()),
    }
