"""SSL4EO-S12 v1.1: a small zipped Zarr file in the published layout, with its caption table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from msclip import load_model
from msclip.bands import LAYOUTS
from msclip.data import InputOptions, prepare, valid_mask
from msclip.io import read
from msclip.training import Trainer
from msclip.training.data import CaptionedChips
from msclip.training.ssl4eo import SSL4EOSource
from tests.conftest import L2A_CHIPS
from tests.helpers import write_zipped_zarr

PAD = 20  # 224 + 2 x 20 = 264, the published chip size
DATES = np.array(["2021-04-02", "2021-07-11", "2021-10-09", "2022-01-30"], dtype="datetime64[ns]")


def write_ssl4eo_zarr(path, chips) -> None:
    """Two samples x four timestamps of 264 x 264 L2A chips (+1000 offset), as SSL4EO-S12 v1.1 stores them."""
    import xarray as xr

    cubes = []
    for sample in range(2):
        times = []
        for t in range(4):
            array = read(chips[(sample + t) % len(chips)]).array.astype(np.int16)
            offset = np.where(valid_mask(array, None), 1000, 0).astype(np.int16)
            times.append(np.pad(array + offset, ((0, 0), (PAD, PAD), (PAD, PAD)), mode="reflect"))
        cubes.append(np.stack(times))
    data = xr.Dataset(
        {"bands": (("sample", "time", "band", "y", "x"), np.stack(cubes))},
        coords={
            "sample": ["0000042", "0000043"],
            "band": list(LAYOUTS["L2A"]),
            "time_": (("sample", "time"), np.stack([DATES, DATES])),
            "center_lat": ("sample", [46.1, 47.2]),
            "center_lon": ("sample", [7.4, 8.9]),
            "crs": ("sample", [32632, 32632]),
        },
    )
    write_zipped_zarr(data, path)


@pytest.fixture(scope="module")
def ssl4eo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssl4eo")
    chips = sorted(L2A_CHIPS.glob("*.tif"))
    write_ssl4eo_zarr(folder / "ssl4eos12_train_seasonal_data_000001.zarr.zip", chips)
    captions = pd.DataFrame(
        {
            "sample_id": ["0000042", "0000042", "0000042", "0000043", "0000099"],
            "time": ["2021-04-02", "2021-04-02", "1", "2022-01-30", "0"],
            "caption": ["first view", "first view, reworded", "summer view", "winter view", "no such sample"],
        }
    )
    captions.to_csv(folder / "captions.csv", index=False)
    return folder, chips


def test_reads_samples_timestamps_and_their_captions(ssl4eo):
    folder, _ = ssl4eo
    source = SSL4EOSource(folder, folder / "captions.csv")
    assert [(s, t, c) for _, s, t, c in source.entries] == [
        (0, 0, ["first view", "first view, reworded"]),
        (0, 1, ["summer view"]),
        (1, 3, ["winter view"]),
    ]
    raster = source.item(2)[0].read()
    assert raster.array.shape == (12, 264, 264) and raster.bands == LAYOUTS["L2A"]
    assert raster.crs == "EPSG:32632"


def test_offset_removed_consistently_with_the_model_statistics(ssl4eo, tiny_model):
    """An SSL4EO chip, offset removed, is exactly the original (offset-free) chip it was made from."""
    folder, chips = ssl4eo
    source = SSL4EOSource(folder, folder / "captions.csv")
    chips_set = CaptionedChips(source, tiny_model.bands, tiny_model.transform, InputOptions(), augment=False)
    item = chips_set[1]  # sample 0000042 at its second timestamp: chip 1
    original, _ = prepare(read(chips[1]), tiny_model.bands, InputOptions(boa_offset="0"))
    padded = np.pad(original, ((0, 0), (PAD, PAD), (PAD, PAD)), mode="reflect")
    torch.testing.assert_close(item["image"], tiny_model.transform(padded))
    assert item["caption"] == "summer view"


def test_trains_on_ssl4eo(ssl4eo, tiny_config):
    folder, _ = ssl4eo
    config = tiny_config(
        data=str(folder), captions=str(folder / "captions.csv"), batch_size=3, steps=1, crop_scale=None
    )
    trainer = Trainer(config, progress=False)
    assert trainer.run()["exported"].endswith("model.pt")
    assert load_model("msclip-tiny", trainer.output / "model.pt", device="cpu").bands == trainer.model.bands


def test_caption_rows_without_a_pair_are_counted_and_named(ssl4eo, tmp_path):
    folder, _ = ssl4eo
    table = pd.read_csv(folder / "captions.csv", dtype=str)
    blank = pd.DataFrame([{"sample_id": "0000042", "time": "1", "caption": "  "}])
    pd.concat([table, blank]).to_csv(tmp_path / "captions.csv", index=False)
    source = SSL4EOSource(folder, tmp_path / "captions.csv")
    assert source.dropped == [
        "1 caption row(s) left out (blank caption): captions.csv row 7",
        "1 caption row(s) left out (no sample and timestamp of the data match): captions.csv row 6",
    ]
    assert all("  " not in c for *_, captions in source.entries for c in captions)
