"""Zero-shot classification, text-to-image retrieval and embeddings over any list of images, in batches.

Images stream through a DataLoader; memory is bounded by the batch (retrieval keeps a running top-k).
Bad files are reported in ``Result.skipped`` and left out; the rest goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from msclip.data import ChipDataset, InputOptions, collate_chips
from msclip.errors import MSClipError
from msclip.io import iter_paths
from msclip.models import MSClipModel
from msclip.text import class_embeddings, class_names, templates


@dataclass
class Result:
    """A table of results plus the inputs that were skipped, as (path, reason)."""

    table: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Batch:
    paths: list[str]
    embeddings: torch.Tensor
    filled: list[float]
    crs: list[str | None]
    bounds: list[tuple | None]
    datetime: list[pd.Timestamp | None]


def default_workers(n_images: int) -> int:
    """No worker processes for a handful of images (start-up costs more than it saves)."""
    return 0 if n_images < 64 else min(4, os.cpu_count() or 1)


def embed_batches(
    model: MSClipModel,
    inputs: Sequence[str],
    options: InputOptions | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = False,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[Batch]:
    """Yield image embeddings batch by batch, in sorted path order; bad files go to ``skipped``."""
    paths = iter_paths(inputs)
    dataset = ChipDataset(paths, model.bands, model.transform, options or InputOptions())
    workers = default_workers(len(paths)) if workers is None else workers
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_chips, shuffle=False
    )
    with tqdm(total=len(paths), unit="img", disable=not progress, desc="images") as bar:
        for batch in loader:
            for index, message in batch["errors"]:
                if skipped is not None:
                    skipped.append((paths[index], message))
            if batch["image"] is not None:
                yield Batch(
                    [paths[i] for i in batch["index"]],
                    model.encode_image(batch["image"]),
                    batch["filled"],
                    batch["crs"],
                    batch["bounds"],
                    batch["datetime"],
                )
            bar.update(len(batch["index"]) + len(batch["errors"]))


def embed(model: MSClipModel, inputs: Sequence[str], **kwargs) -> Result:
    """L2-normalised image embeddings, with CRS and bounds for georeferenced files.

    ``datetime`` is the acquisition time when the file's metadata says (for date filters in an index);
    the table's ``attrs`` name the model, which Parquet outputs record so an index embeds queries alike.
    """
    skipped: list[tuple[str, str]] = []
    rows = [
        {
            "image": path,
            "embedding": vector.tolist(),
            "crs": crs,
            "bounds": list(bounds) if bounds else None,
            "datetime": acquired,
            "filled_fraction": filled,
        }
        for batch in embed_batches(model, inputs, skipped=skipped, **kwargs)
        for path, vector, crs, bounds, acquired, filled in zip(
            batch.paths, batch.embeddings, batch.crs, batch.bounds, batch.datetime, batch.filled, strict=True
        )
    ]
    columns = ["image", "embedding", "crs", "bounds", "datetime", "filled_fraction"]
    table = pd.DataFrame(rows, columns=columns)
    table["datetime"] = pd.to_datetime(table["datetime"], utc=True)
    table.attrs["msclip"] = model.record
    return Result(table, skipped)


def classify(
    model: MSClipModel,
    inputs: Sequence[str],
    classes: Sequence[str] | None = None,
    template_set: str | Sequence[str] = "msclip",
    use_cache: bool = True,
    head=None,
    transductive: bool = False,
    **kwargs,
) -> Result:
    """Zero-shot class probabilities: softmax over 100 x cosine (the model's logit scale) per image.

    ``head`` (a :class:`msclip.Head` or its file, made by ``msclip adapt`` for this model) replaces the
    text classifier; ``transductive`` refines the probabilities over all inputs together (TransCLIP),
    starting from the text classifier's or the head's.

    Columns: ``image``, ``label`` (top class), one probability column per class, ``filled_fraction``
    (share of nodata pixels that were filled; 0 for complete images).
    """
    names, score = class_scorer(model, classes, template_set, use_cache, head)
    skipped: list[tuple[str, str]] = []
    frames = []
    batches = embed_batches(model, inputs, skipped=skipped, **kwargs)
    if transductive:
        batches, score = _joined(list(batches)), transductive_scorer(score)
    for batch in batches:
        probabilities = score(batch.embeddings)
        frame = pd.DataFrame(probabilities.numpy(), columns=names)
        frame.insert(0, "label", [names[i] for i in probabilities.argmax(dim=-1).tolist()])
        frame.insert(0, "image", batch.paths)
        frame["filled_fraction"] = batch.filled
        frames.append(frame)
    columns = ["image", "label", *names, "filled_fraction"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return Result(table[columns], skipped)


def class_scorer(model: MSClipModel, classes, template_set, use_cache: bool, head=None):
    """Class names and embeddings -> probabilities: a few-shot head's, or the zero-shot text classifier's."""
    if head is not None:
        from msclip.adapt import load_head

        head = head if hasattr(head, "probabilities") else load_head(head)
        head.check_model(model)
        if classes and class_names(list(classes)) != head.class_names:
            raise MSClipError(
                f"the head's classes are {', '.join(head.class_names)}: leave out the class names"
            )
        return head.class_names, head.probabilities
    if not classes:
        raise MSClipError("give class names, or a head made by msclip adapt")
    names = class_names(list(classes))
    prompts = templates(template_set) if isinstance(template_set, str) else list(template_set)
    classifier = class_embeddings(model, names, prompts, use_cache=use_cache)
    return names, lambda embeddings: (model.logit_scale * embeddings @ classifier.T).softmax(dim=-1)


def _joined(batches: list[Batch]) -> list[Batch]:
    """All batches as one (transduction needs every query at once); none when nothing was read."""
    if not batches:
        return []

    def merged(name: str) -> list:
        return [value for batch in batches for value in getattr(batch, name)]

    embeddings = torch.cat([batch.embeddings for batch in batches])
    return [
        Batch(
            merged("paths"), embeddings, merged("filled"), merged("crs"), merged("bounds"), merged("datetime")
        )
    ]


def transductive_scorer(score):
    """The TransCLIP refinement of ``score``'s probabilities over the whole batch of embeddings."""
    from msclip.adapt import transductive_probabilities

    return lambda embeddings: transductive_probabilities(embeddings, score(embeddings))


def retrieve(
    model: MSClipModel, inputs: Sequence[str], queries: Sequence[str], top_k: int = 10, **kwargs
) -> Result:
    """The ``top_k`` images most similar to each text query (all of them when there are fewer)."""
    queries = list(queries)
    text = model.encode_text(queries)
    best_scores = torch.empty(len(queries), 0)
    best_paths: list[str] = []
    best_index = torch.empty(len(queries), 0, dtype=torch.long)
    skipped: list[tuple[str, str]] = []
    for batch in embed_batches(model, inputs, skipped=skipped, **kwargs):
        offset = len(best_paths)
        best_paths.extend(batch.paths)
        scores = torch.cat([best_scores, text @ batch.embeddings.T], dim=1)
        index = torch.cat(
            [best_index, torch.arange(offset, offset + len(batch.paths)).expand(len(queries), -1)], 1
        )
        k = min(top_k, scores.shape[1])
        best_scores, order = scores.topk(k, dim=1)  # ties keep the earlier image first
        best_index = index.gather(1, order)
    rows = [
        {"query": query, "rank": rank + 1, "image": best_paths[i], "similarity": float(s)}
        for q, query in enumerate(queries)
        for rank, (i, s) in enumerate(zip(best_index[q].tolist(), best_scores[q].tolist(), strict=True))
    ]
    return Result(pd.DataFrame(rows, columns=["query", "rank", "image", "similarity"]), skipped)
