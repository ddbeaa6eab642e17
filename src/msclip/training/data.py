"""Captioned chips for training: where they come from (a table, SSL4EO-S12 v1.1 Zarr, WebDataset shards),
how they are augmented, and in which order they are drawn.

Every random choice of a sample (its crop, flips and which of its captions) comes from a generator seeded
by (seed, epoch, index), so a run is the same with any number of DataLoader workers or ranks and resumes
exactly from a step count.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from msclip.data import InputOptions, failure_record, prepare
from msclip.errors import MSClipError, describe_failure
from msclip.models.transforms import MultispectralTransform
from msclip.sources import ChipFile, Source

log = logging.getLogger(__name__)

#: How many following chips may stand in for an unusable one before the data is declared broken.
MAX_REPLACEMENTS = 16


class TrainTransform(MultispectralTransform):
    """The inference transform with augmentations: its resize (shorter side to the model's input size), then
    a random crop in place of the centre crop (or a random resized crop of ``crop_scale`` of the area), random
    flips, and its normalisation (``spec.mean``/``spec.std``; for RGB models 8-bit values scaled to [0, 1])."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        size: int = 224,
        crop_scale: Sequence[float] | None = None,
        flips: bool = True,
        scale: float = 1.0,
    ):
        super().__init__(mean, std, size, scale)
        self.crop_scale = tuple(crop_scale) if crop_scale else None
        self.flips = flips

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> torch.Tensor:  # type: ignore[override]
        tensor = self.resize(array)
        height, width = tensor.shape[-2:]
        if self.crop_scale:
            area = height * width * rng.uniform(self.crop_scale[0], self.crop_scale[1])
            side = min(height, width, max(1, round(math.sqrt(area))))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            tensor = F.resized_crop(
                tensor, int(top), int(left), side, side, [self.size, self.size],
                interpolation=InterpolationMode.BICUBIC, antialias=True,
            )  # fmt: skip
        else:
            top, left = rng.integers(0, height - self.size + 1), rng.integers(0, width - self.size + 1)
            tensor = tensor[:, top : top + self.size, left : left + self.size]
        if self.flips and rng.random() < 0.5:
            tensor = tensor.flip(-1)
        if self.flips and rng.random() < 0.5:
            tensor = tensor.flip(-2)
        return self.normalize(tensor.contiguous())


def train_transform(model, crop_scale=None, flips: bool = True) -> TrainTransform:
    """The augmenting twin of ``model.transform``: same statistics, same input size."""
    spec = model.spec
    if spec.is_rgb:
        cfg = getattr(model.clip.visual, "preprocess_cfg", {}) or {}
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        mean, std = cfg.get("mean", OPENAI_DATASET_MEAN), cfg.get("std", OPENAI_DATASET_STD)
        return TrainTransform(mean, std, spec.image_size, crop_scale, flips, scale=1 / 255)
    return TrainTransform(spec.mean, spec.std, spec.image_size, crop_scale, flips)


# ---------------------------------------------------------------- sources: index -> (raster, captions)


class TableSource:
    """A CSV/Parquet table of (image path, caption); rows sharing an image give it several captions.
    Relative paths are taken from the table's folder."""

    def __init__(
        self, path: str | Path, image_column: str = "image", caption_column: str = "caption", options=None
    ):
        import pandas as pd

        path = Path(path)
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        missing = [c for c in (image_column, caption_column) if c not in table.columns]
        if missing:
            raise MSClipError(
                f"{path}: no column(s) {', '.join(missing)} (has {', '.join(map(str, table.columns))})"
            )
        unusable = _unusable_rows(table, image_column, caption_column)
        #: rows left out, named by row number (the first data row is row 2, as a spreadsheet shows it)
        self.dropped = [f"{path} row {i + 2}: {why}" for i, why in unusable.items()]
        table = table.reset_index(drop=True).drop(index=list(unusable))
        grouped = table.groupby(image_column, sort=False)[caption_column].apply(lambda s: [str(c) for c in s])
        self.images = [str(p if Path(p).is_absolute() else path.parent / p) for p in grouped.index]
        self.captions = list(grouped.values)
        self.options = options or InputOptions()

    def __len__(self) -> int:
        return len(self.images)

    def item(self, index: int) -> tuple[Source, list[str]]:
        """Where the ``index``-th image's pixels come from, and its captions."""
        return ChipFile(self.images[index], self.options.layout, self.options.bands), self.captions[index]


def _unusable_rows(table, image_column: str, caption_column: str) -> dict[int, str]:
    """Rows (by position) that cannot give a training pair: no image path, or an empty or blank caption."""
    import pandas as pd

    reasons: dict[int, str] = {}
    for position, (image, caption) in enumerate(zip(table[image_column], table[caption_column], strict=True)):
        if pd.isna(image) or not str(image).strip():
            reasons[position] = f"no image path in column {image_column!r}"
        elif pd.isna(caption) or not str(caption).strip():
            reasons[position] = f"empty caption in column {caption_column!r}"
    return reasons


class CaptionedChips(Dataset):
    """(epoch, index) -> the record of :class:`msclip.data.SourceDataset` with ``caption`` (one drawn per
    epoch), ``captions`` and ``replaced`` (the unusable chips it stands in for), for
    :func:`msclip.data.collate_records`.

    A chip that cannot be used is reported and, in training, replaced by the next usable one, so batches
    keep their size (all ranks must gather equal-sized features). Without augmentation (validation) it is
    the failure record instead (left out): a replacement would count another pair twice in the metrics.
    """

    def __init__(self, source, bands, transform, options: InputOptions, indices=None, seed=0, augment=True):
        self.source, self.bands, self.transform, self.options = source, tuple(bands), transform, options
        self.indices = list(range(len(source))) if indices is None else list(indices)
        self.seed, self.augment = seed, augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        replaced: list[str] = []
        attempts = min(len(self), MAX_REPLACEMENTS) if self.augment else 1
        for attempt in range(attempts):
            position = (index + attempt) % len(self)
            pixels, captions = self.source.item(self.indices[position])
            try:
                array, _ = prepare(pixels.read(), self.bands, self.options)
            except Exception as exc:  # whatever failed for this chip skips it, named
                if not self.augment:
                    return failure_record(index, pixels.name, exc)
                replaced.append(describe_failure(pixels.name, exc))
                log.warning("skipping %s", replaced[-1])
                continue
            rng = np.random.default_rng([self.seed, epoch, position])
            image = self.transform(array, rng) if self.augment else self.transform(array)
            caption = captions[int(rng.integers(len(captions)))] if self.augment else captions[0]
            record = {"image": image, "caption": caption, "captions": captions, "replaced": replaced}
            return {"index": index, "name": pixels.name, **record}
        raise MSClipError(f"{len(replaced)} unusable chips in a row, e.g. {replaced[0]}")


def skipped_in(batch: dict) -> list[str]:
    """Every input a collated batch of training records left out: replaced chips and failure records."""
    return [m for messages in batch.get("replaced", []) for m in messages] + [
        failed["error"] for failed in batch["failed"]
    ]


@dataclass
class StepSampler(Sampler):
    """Per-step index lists for one rank: a seeded permutation per epoch, cut into global batches; rank r
    takes the r-th contiguous slice, so gathering the ranks' features restores the global batch in order.
    ``start`` skips the steps already done (exact resume)."""

    size: int
    batch_size: int  # global
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    epoch: int = 0
    start: int = 0

    def __post_init__(self):
        if self.batch_size % self.world_size:
            raise MSClipError(f"batch_size {self.batch_size} must divide by the {self.world_size} ranks")
        if self.size < self.batch_size:
            raise MSClipError(
                f"the training set has {self.size} chips, fewer than one batch of {self.batch_size}"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = torch.randperm(
            self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)
        ).tolist()
        local = self.batch_size // self.world_size
        for step in range(self.start, self.steps_per_epoch):
            begin = step * self.batch_size + self.rank * local
            yield [(self.epoch, i) for i in order[begin : begin + local]]


def split_indices(size: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded train / held-out split of ``range(size)``."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = round(size * val_fraction)
    return sorted(order[n_val:]), sorted(order[:n_val])
