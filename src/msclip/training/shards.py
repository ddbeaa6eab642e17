"""WebDataset tar shards for large runs: ``{key}.npy`` (bands x H x W, the layout given by ``layout`` /
``input_bands`` or the band count) with ``{key}.txt`` (one caption per line) or ``{key}.json``
(a list of captions, or ``{"captions": [...]}``).

Shards are split across ranks and DataLoader workers by WebDataset and reshuffled per epoch with a seeded
order; give at least (ranks x workers) shards, ideally a multiple, so every rank sees as many batches.
"""

from __future__ import annotations

import io
import json
import logging
import zlib

import numpy as np
from torch.utils.data import IterableDataset

from msclip.bands import resolve_layout
from msclip.data import InputOptions, prepare
from msclip.errors import MSClipError
from msclip.io import Raster

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


class ShardChips(IterableDataset):
    """Yields {"image", "caption", "captions", "skipped"} from WebDataset shards, augmented like
    :class:`msclip.training.data.CaptionedChips`, seeded by (seed, epoch, sample key)."""

    def __init__(self, urls: str | list[str], bands, transform, options: InputOptions, seed: int = 0):
        self.urls, self.bands, self.transform, self.options, self.seed = (
            urls,
            tuple(bands),
            transform,
            options,
            seed,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import webdataset as wds

        pipeline = wds.WebDataset(
            self.urls,
            shardshuffle=100,
            seed=self.seed + self.epoch,
            nodesplitter=wds.split_by_node,
            empty_check=False,
        )
        skipped: list[str] = []  # reported with the next good record
        for sample in pipeline:
            key = sample.get("__key__", "")
            try:
                record = self._record(sample, key)
            except (MSClipError, ValueError) as exc:
                log.warning("skipping shard sample %s: %s", key, exc)
                skipped.append(f"{key}: {exc}")
                continue
            yield {**record, "skipped": skipped}
            skipped = []

    def _record(self, sample: dict, key: str) -> dict:
        if "npy" not in sample:
            raise MSClipError(f"{key}: no .npy image in the shard sample")
        array = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
        options = self.options
        bands = resolve_layout(options.layout, options.bands, array.shape[0])
        captions = _captions(sample)
        if not captions:
            raise MSClipError(f"{key}: no caption (.txt or .json) in the shard sample")
        prepared, _ = prepare(Raster(array, bands, path=key), self.bands, options)
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])
        caption = captions[int(rng.integers(len(captions)))]
        return {
            "image": self.transform(prepared, rng),
            "caption": caption,
            "captions": captions,
        }
