"""From labelled images to a head: embed (cached), build the text classifier, fit the chosen method."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence

import torch

from msclip.adapt.features import cached_embeddings
from msclip.adapt.head import Head, model_identity
from msclip.adapt.methods import METHODS, Shots
from msclip.adapt.trainset import Examples
from msclip.errors import MSClipError

#: Chosen from measurements (README, "Few-shot adaptation"): the text-initialised linear probe is the
#: most accurate method on the example-chip crops and on synthetic sets, from 1 shot per class up.
DEFAULT_METHOD = "linear-probe"


def prompt_name(class_name: str) -> str:
    """Folder names often use underscores for spaces; prompts read better without them."""
    return class_name.replace("_", " ")


def text_classifier(model, class_names: Sequence[str], template_list: Sequence[str], use_cache: bool = True):
    from msclip.text import class_embeddings

    return class_embeddings(
        model, [prompt_name(c) for c in class_names], list(template_list), use_cache=use_cache
    )


@contextlib.contextmanager
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_head(
    shots: Shots,
    method: str,
    class_names: list[str],
    model: dict,
    template_list: Sequence[str] | None = None,
    **options,
) -> Head:
    """Fit ``method`` on embedded shots; ``model`` is the identity the head records."""
    if method not in METHODS:
        raise MSClipError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    with single_thread():  # tiny problems: more threads only add overhead (30x on a busy machine)
        tensors, params = METHODS[method].fit(shots, **options)
    counts = Counter(shots.labels.tolist())
    return Head(
        method,
        list(class_names),
        tensors,
        params,
        model,
        list(template_list) if template_list is not None and METHODS[method].uses_text else None,
        {name: counts.get(i, 0) for i, name in enumerate(class_names)},
    )


def adapt(
    model,
    examples: Examples,
    method: str = DEFAULT_METHOD,
    template_list: Sequence[str] | None = None,
    use_cache: bool = True,
    skipped: list[tuple[str, str]] | None = None,
    method_options: dict | None = None,
    **stream,
) -> Head:
    """A head for ``model`` fitted on ``examples``; unreadable images go to ``skipped`` and are left out."""
    from msclip.text import templates

    template_list = list(template_list) if template_list is not None else templates("msclip")
    names = examples.class_names
    kept, features = cached_embeddings(model, examples.paths, use_cache=use_cache, skipped=skipped, **stream)
    label_of = dict(zip(examples.paths, examples.labels, strict=True))
    labels = torch.tensor([names.index(label_of[p]) for p in kept], dtype=torch.long)
    empty = [n for i, n in enumerate(names) if not (labels == i).any()]
    if empty:
        raise MSClipError(f"no readable images left for class(es) {', '.join(empty)}")
    text = text_classifier(model, names, template_list, use_cache)
    shots = Shots(features, labels, text)
    return fit_head(shots, method, names, model_identity(model), template_list, **(method_options or {}))
