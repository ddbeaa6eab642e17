"""One Dataset, one collate, one failure record for every capability (chips, test sets, windows, training)."""

from __future__ import annotations

import numpy as np
import torch

from msclip.data import SourceDataset, collate_records
from msclip.io import Raster, make_raster


class Pixels:
    """A source that yields a given array, or raises what it is given."""

    def __init__(self, name: str, outcome):
        self.name = name
        self.outcome = outcome

    def read(self) -> Raster:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return make_raster(self.outcome, self.name, ("B02", "B03", "B04"))


def _image(source) -> dict:
    raster = source.read()
    return {"image": torch.from_numpy(raster.array.astype(np.float32)), "mean": float(raster.array.mean())}


def test_every_failure_is_the_same_record_whatever_raised_it():
    sources = [
        Pixels("good.tif", np.ones((3, 4, 4))),
        Pixels("gdal.tif", OSError("TIFFReadDirectory failed")),
        Pixels("bug.tif", ZeroDivisionError("division by zero")),
    ]
    records = [SourceDataset(sources, _image)[i] for i in range(3)]
    assert set(records[0]) == {"index", "name", "image", "mean"}
    assert records[1] == {
        "index": 1,
        "name": "gdal.tif",
        "error": "gdal.tif: cannot read (OSError: TIFFReadDirectory failed)",
    }
    assert set(records[2]) == {"index", "name", "error"} and "ZeroDivisionError" in records[2]["error"]


def test_collate_splits_usable_and_failed_records():
    sources = [Pixels(f"{i}.tif", np.full((3, 4, 4), i)) for i in range(3)]
    sources.insert(1, Pixels("bad.tif", ValueError("broken")))
    dataset = SourceDataset(sources, _image)
    batch = collate_records([dataset[i] for i in range(len(dataset))])
    assert batch["index"] == [0, 2, 3] and batch["name"] == ["0.tif", "1.tif", "2.tif"]
    assert batch["image"].shape == (3, 3, 4, 4) and batch["mean"] == [0.0, 1.0, 2.0]
    assert [(f["index"], f["name"]) for f in batch["failed"]] == [(1, "bad.tif")]


def test_a_batch_with_nothing_usable_has_no_image_and_names_every_failure():
    dataset = SourceDataset([Pixels("a.tif", OSError("x")), Pixels("b.tif", OSError("y"))], _image)
    batch = collate_records([dataset[0], dataset[1]])
    assert batch["image"] is None and batch["index"] == []
    assert [f["name"] for f in batch["failed"]] == ["a.tif", "b.tif"]


def test_channels_last_arrays_become_channels_first_once():
    array = np.arange(4 * 5 * 3).reshape(4, 5, 3)
    assert make_raster(array, "x.npy", ("B02", "B03", "B04"), channels_last=True).array.shape == (3, 4, 5)
    assert make_raster(array, "x.npy", ("B02", "B03", "B04"), channels_last=None).array.shape == (3, 4, 5)
    assert make_raster(array.transpose(2, 0, 1), "x.tif", ("B02", "B03", "B04")).array.shape == (3, 4, 5)


class Pairs:
    """A training source: chips (some failing) with a caption each."""

    def __init__(self, chips: list[Pixels]):
        self.chips = chips

    def __len__(self) -> int:
        return len(self.chips)

    def item(self, index: int):
        return self.chips[index], [f"caption of {self.chips[index].name}"]


def test_training_records_share_the_record_and_collate():
    from msclip.data import InputOptions
    from msclip.training.data import CaptionedChips, skipped_in

    chips = [Pixels("a.tif", np.ones((3, 8, 8), np.int16)), Pixels("zarr:3", KeyError("band"))]
    chips.append(Pixels("c.tif", np.full((3, 8, 8), 2, np.int16)))
    bands = ("B02", "B03", "B04")

    def plain(array, rng=None):
        return torch.from_numpy(np.asarray(array, np.float32))

    train = CaptionedChips(Pairs(chips), bands, plain, InputOptions(), augment=True)
    batch = collate_records([train[(0, i)] for i in range(3)])
    assert batch["name"] == ["a.tif", "c.tif", "c.tif"]  # the unusable chip is replaced by the next one
    assert skipped_in(batch) == ["zarr:3: cannot read (KeyError: 'band')"]
    held_out = CaptionedChips(Pairs(chips), bands, plain, InputOptions(), augment=False)
    batch = collate_records([held_out[i] for i in range(3)])
    assert batch["name"] == ["a.tif", "c.tif"] and batch["caption"] == [
        "caption of a.tif",
        "caption of c.tif",
    ]
    assert batch["failed"] == [
        {"index": 1, "name": "zarr:3", "error": "zarr:3: cannot read (KeyError: 'band')"}
    ]
    assert skipped_in(batch) == ["zarr:3: cannot read (KeyError: 'band')"]
