"""Score a test set with a model (DataLoader workers, progress bar) and turn the scores into metrics.

Each model sees the files through its own bands: multispectral models get their bands by name, RGB models
get the B04 B03 B02 composite of the same files (``msclip.data.prepare``), or the picture itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from msclip.data import ForModel, InputOptions, SourceDataset, chip_loader, prepare
from msclip.errors import MSClipError, SkippedImage
from msclip.evaluation.datasets import EvalSet, sample_source
from msclip.evaluation.metrics import multi_label_metrics, single_label_metrics
from msclip.models import MSClipModel
from msclip.runtime import batches
from msclip.text import class_embeddings

#: The reference's logits: 100 x cosine similarity (ranks and decisions do not depend on the factor).
LOGIT_FACTOR = 100.0


def sample_dataset(
    dataset: EvalSet, bands: tuple[str, ...], transform, options: InputOptions
) -> SourceDataset:
    """The set's samples as model-ready records (a bad sample becomes the failure record naming it)."""
    sources = [sample_source(sample, dataset.layout, dataset.bands) for sample in dataset.samples]
    return SourceDataset(sources, ForModel(bands, transform, options))


@dataclass
class Scores:
    """Logits (or embeddings) of the images that could be read, their sample indices, and the skipped ones."""

    logits: np.ndarray
    indices: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def check_compatible(model: MSClipModel, dataset: EvalSet, options: InputOptions) -> None:
    """Fail early (MSClipError) when the set's files lack the model's bands, e.g. RGB pictures for an MS model."""
    for sample in dataset.samples[:3]:
        try:
            prepare(sample_source(sample, dataset.layout, dataset.bands).read(), model.bands, options)
        except SkippedImage:
            continue  # an unreadable or empty file is skipped later; it says nothing about the set
        return


def score(
    model: MSClipModel,
    dataset: EvalSet,
    classifier: torch.Tensor,
    options: InputOptions | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = False,
) -> Scores:
    """Logits (images, classes) = 100 x cosine(image, class embedding), in the set's fixed sample order."""
    scores = embed_set(model, dataset, options, batch_size, workers, progress)
    if not scores.indices:
        scores.logits = np.empty((0, len(dataset.classes)), dtype=np.float32)
    else:
        scores.logits = (LOGIT_FACTOR * torch.from_numpy(scores.logits) @ classifier.T).numpy()
    return scores


def embed_set(
    model: MSClipModel,
    dataset: EvalSet,
    options: InputOptions | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = False,
) -> Scores:
    """Image embeddings (images, D) of the set's readable samples, in its fixed sample order."""
    options = options or InputOptions()
    samples = sample_dataset(dataset, model.bands, model.transform, options)
    loader = chip_loader(samples, model.device, batch_size, workers)
    embeddings: list[np.ndarray] = []
    indices: list[int] = []
    skipped: list[tuple[str, str]] = []
    with tqdm(
        total=len(samples), unit="img", disable=not progress, desc=f"{model.spec.name} / {dataset.name}"
    ) as bar:
        for batch in batches(loader):
            skipped.extend((failed["name"], failed["error"]) for failed in batch["failed"])
            if batch["image"] is not None:
                embeddings.append(model.encode_image(batch["image"]).numpy())
                indices.extend(batch["index"])
            bar.update(len(batch["index"]) + len(batch["failed"]))
    matrix = np.concatenate(embeddings) if embeddings else np.empty((0, 0), dtype=np.float32)
    return Scores(matrix, indices, skipped)


def metrics_of(dataset: EvalSet, scores: Scores) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary metrics and the per-class table for the images that were scored."""
    targets = dataset.targets(scores.indices)
    compute = single_label_metrics if dataset.task == "single" else multi_label_metrics
    return compute(scores.logits, targets, dataset.classes)


@dataclass
class Evaluation:
    """One (model, dataset) result: summary metrics, per-class table, counts and skipped inputs.

    ``model`` is the label of the model in tables (its name, plus its checkpoint when names repeat).
    """

    model: str
    dataset: str
    task: str
    summary: dict[str, float]
    per_class: pd.DataFrame
    n_images: int
    skipped: list[tuple[str, str]]
    checkpoint: str | None = None


class NothingReadable(MSClipError):
    """No image of a test set could be read; the reason for each file travels with the error."""

    def __init__(self, message: str, skipped: list[tuple[str, str]]):
        super().__init__(message)
        self.skipped = skipped


def evaluate_dataset(
    model: MSClipModel,
    dataset: EvalSet,
    prompts: list[str],
    options: InputOptions | None = None,
    use_cache: bool = True,
    label: str | None = None,
    **loader_options,
) -> Evaluation:
    """Zero-shot classification and retrieval metrics of ``model`` (called ``label`` in tables, by default
    its name) on one test set."""
    options = options or InputOptions()
    check_compatible(model, dataset, options)
    torch.manual_seed(0)
    classifier = class_embeddings(model, dataset.classes, prompts, use_cache=use_cache)
    scores = score(model, dataset, classifier, options, **loader_options)
    scores.skipped = dataset.unlisted + scores.skipped
    if not scores.indices:
        raise NothingReadable(
            f"{dataset.name}: none of its {len(dataset.samples)} images could be read", scores.skipped
        )
    summary, per_class = metrics_of(dataset, scores)
    return Evaluation(
        label or model.spec.name,
        dataset.name,
        dataset.task,
        summary,
        per_class,
        len(scores.indices),
        scores.skipped,
        model.checkpoint,
    )
