"""WebDataset tar shards for large runs: ``{key}.npy`` (bands x H x W or H x W x bands, the layout given
by ``layout`` / ``input_bands`` or the band count) with ``{key}.txt`` (one caption per line) or ``{key}.json``
(a list of captions, or ``{"captions": [...]}``).

As open_clip does for large runs, every rank and DataLoader worker draws shards at random (with
replacement, seeded by seed, epoch, rank and worker) and an epoch is a fixed number of samples: every rank
then yields exactly as many batches, which DDP needs, whatever the number of shards.
"""

from __future__ import annotations

import io
import json
import logging
import zlib

import numpy as np
from torch.utils.data import IterableDataset

from msclip.data import InputOptions, prepare
from msclip.errors import MSClipError, describe_failure
from msclip.sources import InMemory

log = logging.getLogger(__name__)


def _captions(sample: dict) -> list[str]:
    if "txt" in sample:
        text = sample["txt"].decode() if isinstance(sample["txt"], bytes) else sample["txt"]
        return [line.strip() for line in text.splitlines() if line.strip()]
    if "json" in sample:
        value = json.loads(sample["json"]) if isinstance(sample["json"], bytes | str) else sample["json"]
        value = value.get("captions", value.get("caption")) if isinstance(value, dict) else value
        return [value] if isinstance(value, str) else [str(v) for v in value or []]
    return []


def wds_expand(urls: str | list[str]) -> list[str]:
    """Shard names from a brace pattern (``train-{000000..000099}.tar``), a ``::``-separated string or a list."""
    import braceexpand

    if isinstance(urls, str):
        urls = urls.split("::")
    return [url for pattern in urls for url in braceexpand.braceexpand(pattern)]


class ShardChips(IterableDataset):
    """Yields the records of :class:`msclip.training.data.CaptionedChips` (``replaced``: the unusable samples
    before this one) from WebDataset shards, augmented alike, seeded by (seed, epoch, sample key)."""

    def __init__(self, urls, bands, transform, options: InputOptions, samples_per_worker: int, seed: int = 0):
        self.urls = list(wds_expand(urls))
        self.bands, self.transform, self.options, self.seed = tuple(bands), transform, options, seed
        self.samples_per_worker = samples_per_worker
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import webdataset as wds

        pipeline = wds.DataPipeline(
            wds.ResampledShards(self.urls, seed=self.seed + self.epoch, deterministic=True),
            wds.tarfile_to_samples(handler=wds.warn_and_continue),
            wds.shuffle(1000, seed=self.seed + self.epoch),
        ).with_epoch(self.samples_per_worker)
        replaced: list[str] = []  # reported with the next good record
        for index, sample in enumerate(pipeline):
            key = sample.get("__key__", "")
            try:
                record = self._record(sample, key)
            except Exception as exc:  # whatever failed for this sample skips it, named
                replaced.append(describe_failure(key, exc))
                log.warning("skipping shard sample %s", replaced[-1])
                continue
            yield {"index": index, "name": key, **record, "replaced": replaced}
            replaced = []

    def _record(self, sample: dict, key: str) -> dict:
        if "npy" not in sample:
            raise MSClipError(f"{key}: no .npy image in the shard sample")
        array = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
        options = self.options
        captions = _captions(sample)
        if not captions:
            raise MSClipError(f"{key}: no caption (.txt or .json) in the shard sample")
        raster = InMemory(array, key, options.layout, options.bands).read()
        prepared, _ = prepare(raster, self.bands, options)
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])
        caption = captions[int(rng.integers(len(captions)))]
        return {
            "image": self.transform(prepared, rng),
            "caption": caption,
            "captions": captions,
        }
