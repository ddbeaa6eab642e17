"""WebDataset tar shards of (bands .npy, captions .txt/.json) feed the same training loop."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from msclip.data import InputOptions
from msclip.io import read
from msclip.training import Trainer
from msclip.training.data import train_transform
from msclip.training.shards import ShardChips
from tests.conftest import L2A_CHIPS
from tests.training.conftest import CAPTIONS


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    import webdataset as wds

    folder = tmp_path_factory.mktemp("shards")
    chips = sorted(L2A_CHIPS.glob("*.tif"))
    for shard in range(2):
        with wds.TarWriter(str(folder / f"train-{shard:06d}.tar")) as sink:
            for index, path in enumerate(chips):
                buffer = io.BytesIO()
                np.save(buffer, read(path).array)
                captions = CAPTIONS[path.stem]
                text = (
                    {"txt": "\n".join(captions).encode()}
                    if index % 2
                    else {"json": json.dumps(captions).encode()}
                )
                sink.write({"__key__": f"{shard}_{path.stem}", "npy": buffer.getvalue(), **text})
    return str(folder / "train-{000000..000001}.tar")


def test_shard_samples_are_prepared_captioned_and_seeded(shards, tiny_model):
    options = InputOptions(layout="L2A")
    chips = ShardChips(shards, tiny_model.bands, train_transform(tiny_model), options, samples_per_worker=12)
    records = list(chips)
    assert len(records) == 12  # an epoch is a fixed number of samples (shards drawn with replacement)
    assert all(r["image"].shape == (10, 224, 224) for r in records)
    assert {r["caption"] for r in records} <= {c for pair in CAPTIONS.values() for c in pair}
    assert all(len(r["captions"]) == 2 for r in records)
    again = list(chips)
    assert [r["caption"] for r in again] == [r["caption"] for r in records]  # same seed, same epoch
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(again, records, strict=True))


def test_trains_on_shards(shards, tiny_config):
    config = tiny_config(data=shards, layout="L2A", samples_per_epoch=10, batch_size=5, steps=3)
    trainer = Trainer(config, progress=False)
    summary = trainer.run()
    assert summary["step"] == 3 and trainer.epoch == 1 and "exported" in summary


def test_a_channels_last_sample_is_read_like_a_channels_last_npy_chip(tmp_path, tiny_model):
    """Shard samples go through the one Raster maker, so (H, W, C) arrays work as .npy chips do; a sample
    without a caption or with an unreadable array is a named skip carried by the next good record."""
    import webdataset as wds

    chip = read(sorted(L2A_CHIPS.glob("*.tif"))[0]).array
    samples = {
        "last": np.moveaxis(chip, 0, -1),
        "first": chip,
    }
    with wds.TarWriter(str(tmp_path / "train-000000.tar")) as sink:
        sink.write({"__key__": "broken", "npy": b"not an array", "txt": b"a field"})
        for key, array in samples.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            sink.write({"__key__": key, "npy": buffer.getvalue(), "txt": b"a field"})
    transform = train_transform(tiny_model, flips=False)
    chips = ShardChips(str(tmp_path / "train-000000.tar"), tiny_model.bands, transform, InputOptions(), 30)
    every = list(chips)
    records = {r["name"]: r for r in every}
    torch.testing.assert_close(records["last"]["image"], records["first"]["image"])
    replaced = [m for r in every for m in r["replaced"]]
    assert replaced and all(m.startswith("broken: cannot read") for m in replaced)
