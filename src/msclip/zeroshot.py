"""Zero-shot classification, text-to-image retrieval and embeddings over any list of images, in batches.

Images stream through a DataLoader, read a batch ahead of the model (see :mod:`msclip.runtime`); memory is bounded by the batch (retrieval keeps a running top-k).
Bad files are reported in ``Result.skipped`` and left out; the rest goes on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from msclip.data import InputOptions, OffsetDecision, chip_dataset, chip_loader, warn_offset_decisions
from msclip.errors import MSClipError
from msclip.io import iter_paths
from msclip.models import MSClipModel
from msclip.runtime import batches
from msclip.text import checked_names, class_embeddings, templates

#: How each image's baseline-04.00 offset was handled (see :class:`msclip.data.OffsetDecision`).
OFFSET_COLUMNS = ("boa_offset", "boa_offset_source")


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
    offsets: list[OffsetDecision]


def embed_batches(
    model: MSClipModel,
    inputs: Sequence[str],
    options: InputOptions | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = False,
    skipped: list[tuple[str, str]] | None = None,
    refuse_scenes: bool = False,
) -> Iterator[Batch]:
    """Yield image embeddings batch by batch, in sorted path order; bad files go to ``skipped``.

    ``refuse_scenes`` skips rasters at least twice the model's chip on a side, with a pointer to the scene
    API (``embed`` does: a scene squashed to one 224 px chip is not its embedding, and ``msclip embed``
    gives its windows).

    At the end, one warning says how many images the data kept from subtracting the offset, one which
    images' tags the data contradicts (see :func:`msclip.data.warn_offset_decisions`).
    """
    paths = iter_paths(inputs)
    scene_side = 2 * model.spec.image_size if refuse_scenes else None  # msclip.scenes.is_scene's rule
    dataset = chip_dataset(paths, model.bands, model.transform, options or InputOptions(), scene_side)
    loader = chip_loader(dataset, model.device, batch_size, workers)
    decisions: dict[str, OffsetDecision] = {}
    with tqdm(total=len(paths), unit="img", disable=not progress, desc="images") as bar:
        for batch in batches(loader):
            if skipped is not None:
                skipped.extend((failed["name"], failed["error"]) for failed in batch["failed"])
            if batch["image"] is not None:
                batch_paths = batch["name"]
                decisions.update(zip(batch_paths, batch["boa_offset"], strict=True))
                yield Batch(
                    batch_paths,
                    model.encode_image(batch["image"]),
                    batch["filled"],
                    batch["crs"],
                    batch["bounds"],
                    batch["datetime"],
                    batch["boa_offset"],
                )
            bar.update(len(batch["index"]) + len(batch["failed"]))
    warn_offset_decisions(decisions)


def embed(model: MSClipModel, inputs: Sequence[str], **kwargs) -> Result:
    """L2-normalised image embeddings, with CRS and bounds for georeferenced files.

    ``datetime`` is the acquisition time when the file's metadata says (for date filters in an index);
    ``boa_offset`` and ``boa_offset_source`` the offset removed and what decided it;
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
            "boa_offset": offset.offset,
            "boa_offset_source": offset.source,
        }
        for batch in embed_batches(model, inputs, skipped=skipped, refuse_scenes=True, **kwargs)
        for path, vector, crs, bounds, acquired, filled, offset in zip(
            batch.paths,
            batch.embeddings,
            batch.crs,
            batch.bounds,
            batch.datetime,
            batch.filled,
            batch.offsets,
            strict=True,
        )
    ]
    columns = ["image", "embedding", "crs", "bounds", "datetime", "filled_fraction", *OFFSET_COLUMNS]
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
    (share of nodata pixels that were filled; 0 for complete images), ``boa_offset`` and
    ``boa_offset_source`` (the offset removed and what decided it).
    """
    names, score = class_scorer(model, classes, template_set, use_cache, head)
    skipped: list[tuple[str, str]] = []
    parts: Iterable[Batch] = embed_batches(model, inputs, skipped=skipped, **kwargs)
    if transductive:
        parts, score = _joined(list(parts)), transductive_scorer(score)
    frames = [class_frame(batch, names, score(batch.embeddings)) for batch in parts]
    return Result(class_table(frames, names), skipped)


def class_frame(batch: Batch, names: list[str], probabilities: torch.Tensor) -> pd.DataFrame:
    """One batch's rows of the :func:`classify` table, from its class probabilities."""
    frame = pd.DataFrame(probabilities.numpy(), columns=names)
    frame.insert(0, "label", [names[i] for i in probabilities.argmax(dim=-1).tolist()])
    frame.insert(0, "image", batch.paths)
    frame["filled_fraction"] = batch.filled
    frame["boa_offset"] = [d.offset for d in batch.offsets]
    frame["boa_offset_source"] = [d.source for d in batch.offsets]
    return frame


def class_table(frames: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The :func:`classify` table of batches' frames (:func:`class_frame`), its columns in order."""
    columns = ["image", "label", *names, "filled_fraction", *OFFSET_COLUMNS]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return table[columns]


def class_scorer(model: MSClipModel, classes, template_set, use_cache: bool, head=None):
    """Class names and embeddings -> probabilities: a few-shot head's, or the zero-shot text classifier's."""
    if head is not None:
        from msclip.adapt import load_head

        head = head if hasattr(head, "probabilities") else load_head(head)
        head.check_model(model)
        if classes and checked_names(list(classes)) != head.class_names:
            raise MSClipError(
                f"the head's classes are {', '.join(head.class_names)}: leave out the class names"
            )
        return head.class_names, head.probabilities
    if not classes:
        raise MSClipError("give class names, or a head made by msclip adapt")
    names = checked_names(list(classes))
    prompts = templates(template_set) if isinstance(template_set, str) else list(template_set)
    classifier = class_embeddings(model, names, prompts, use_cache=use_cache)
    return names, lambda embeddings: (model.logit_scale * embeddings @ classifier.T).softmax(dim=-1)


def _joined(parts: list[Batch]) -> list[Batch]:
    """All batches as one (transduction needs every query at once); none when nothing was read."""
    if not parts:
        return []
    merged = {
        f.name: [value for part in parts for value in getattr(part, f.name)]
        for f in dataclasses.fields(Batch)
        if f.name != "embeddings"
    }
    return [Batch(embeddings=torch.cat([part.embeddings for part in parts]), **merged)]


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
