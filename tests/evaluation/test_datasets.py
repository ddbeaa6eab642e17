"""Datasets in their published layouts, built from the real chips, resolve to the right samples and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msclip.bands import LAYOUTS, S2_10
from msclip.data import InputOptions, prepare
from msclip.errors import MSClipError
from msclip.evaluation.datasets import BIGEARTHNET_19, MissingDataset, resolve, sample_source
from msclip.io import read
from tests.evaluation import layouts


def test_eurosat_ms_nested_layout_with_torchgeo_split(tmp_path):
    test = layouts.eurosat_ms(tmp_path / "EuroSATallBands")
    dataset = resolve("eurosat-ms", tmp_path)
    assert dataset.classes == ["annualcrop", "forest", "sealake"]  # the reference's prompt names
    assert sorted(s.source.rsplit("/", 1)[-1] for s in dataset.samples) == sorted(test)
    assert dataset.layout == "EuroSAT"
    assert [dataset.classes[s.target] for s in dataset.samples] == [
        test[s.source.rsplit("/", 1)[-1]].lower() for s in dataset.samples
    ]
    assert "eurosat-test.txt" in dataset.notes[0]


def test_split_entries_missing_on_disk_are_named_not_dropped(tmp_path):
    from msclip.cli import main

    root = tmp_path / "EuroSATallBands"
    layouts.eurosat_ms(root)
    with (root / "eurosat-test.txt").open("a") as listing:
        listing.write("Forest_999.jpg\n")
    dataset = resolve("eurosat-ms", tmp_path)
    assert dataset.unlisted == [
        ("Forest_999", f"eurosat-test.txt names Forest_999, which is not on disk under {dataset.root}")
    ]
    argv = ["evaluate", "--datasets", "eurosat-ms", "--data-dir", str(tmp_path), "--models", "msclip-tiny"]
    assert main([*argv, "--output", str(tmp_path / "out"), "--workers", "0", "--device", "cpu"]) == 3


def test_eurosat_bands_are_selected_by_name_not_position(tmp_path, chip_paths):
    """B8A is stored last in EuroSAT files: the model input must equal the same pixels read from L2A order."""
    layouts.eurosat_ms(tmp_path, nested=False, split=False)
    dataset = resolve(f"eurosat-ms={tmp_path}", tmp_path)
    sample = dataset.samples[0]  # AnnualCrop_1: first 64 px crop of the first chip
    eurosat, _ = prepare(sample_source(sample, dataset.layout).read(), S2_10, InputOptions())
    l2a, _ = prepare(read(chip_paths[0], "L2A"), S2_10, InputOptions())
    np.testing.assert_array_equal(eurosat, layouts.crop(l2a, 0, 64))


def test_bigearthnet_patches_missing_on_disk_are_named(tmp_path):
    layouts.bigearthnet_v1(tmp_path / "BigEarthNet")
    with (tmp_path / "BigEarthNet" / "bigearthnet-test.csv").open("a") as listing:
        listing.write("S2B_MSIL2A_GONE_1_1,S1_GONE\n")
    dataset = resolve("bigearthnet-ms", tmp_path)
    assert [entry for entry, _ in dataset.unlisted] == ["S2B_MSIL2A_GONE_1_1"]
    assert "bigearthnet-test.csv names patch S2B_MSIL2A_GONE_1_1" in dataset.unlisted[0][1]


def test_bigearthnet_v1_patches_labels_and_band_files(tmp_path):
    test = layouts.bigearthnet_v1(tmp_path / "BigEarthNet")
    dataset = resolve("bigearthnet-ms", tmp_path)
    assert dataset.task == "multi" and dataset.classes == BIGEARTHNET_19
    assert [s.name.rsplit("/", 1)[-1] for s in dataset.samples] == test  # split order kept
    targets = dataset.targets()
    # patch 0: arable land + pastures; patch 3: urban fabric (roads have no 19-class label)
    assert np.flatnonzero(targets[0]).tolist() == [2, 4]
    assert np.flatnonzero(targets[1]).tolist() == [9, 10, 13]
    assert np.flatnonzero(targets[3]).tolist() == [0]
    raster = sample_source(dataset.samples[0]).read()
    assert raster.array.shape == (12, 120, 120)  # 20 m and 60 m bands resampled to 120 px
    assert raster.bands == LAYOUTS["L2A"]  # named from the file names
    array, filled = prepare(raster, S2_10, InputOptions())
    assert array.shape == (10, 120, 120) and filled == 0.0


def test_bigearthnet_without_split_uses_every_patch(tmp_path):
    layouts.bigearthnet_v1(tmp_path, split=False)
    dataset = resolve(f"bigearthnet-ms={tmp_path}", tmp_path)
    assert len(dataset.samples) == 5 and "no split file" in dataset.notes[0]


def test_bigearthnet_v2_reben_layout(tmp_path):
    test = layouts.bigearthnet_v2(tmp_path / "reBEN")
    dataset = resolve("bigearthnet-v2-ms", tmp_path)
    assert [s.name.rsplit("/", 1)[-1] for s in dataset.samples] == test
    assert np.flatnonzero(dataset.targets()[0]).tolist() == [2, 4]
    assert sample_source(dataset.samples[0]).read().array.shape == (12, 120, 120)


def test_eurosat_rgb_zip_layout(tmp_path):
    files = layouts.rgb_folder(tmp_path / "EuroSAT" / "2750", classes=("Forest", "River"))
    dataset = resolve("eurosat-rgb", tmp_path)
    assert dataset.classes == ["forest", "river"] and len(dataset.samples) == len(files)


def test_meter_ml_folders_get_the_reference_class_names(tmp_path):
    files = layouts.meter_ml(tmp_path / "METERML_MS")
    dataset = resolve("meterml-ms", tmp_path)
    assert dataset.classes == [
        "concentrated animal feeding operations",
        "landfills",
        "coal mines",
        "other features",
    ]
    assert len(dataset.samples) == len(files)
    raster = sample_source(dataset.samples[0]).read()
    assert raster.bands[0] == "B01" and len(raster.bands) == 12  # 12-band L2A order


def test_meter_ml_release_layout(tmp_path, chip_paths):
    layouts.meter_ml_release(tmp_path / "METER-ML")
    dataset = resolve("meterml-ms", tmp_path)
    assert len(dataset.classes) == 7 and dataset.classes[3] == "other features"
    # img_1 (Landfills-Mines) has two types: left out; Roundabout counts as Negative
    assert [dataset.classes[s.target] for s in dataset.samples] == [
        "concentrated animal feeding operations", "other features", "wastewater treatment plants", "other features"
    ]  # fmt: skip
    raster = sample_source(dataset.samples[0]).read()
    assert raster.array.shape == (13, 72, 72)
    array, _ = prepare(raster, S2_10, InputOptions())
    chip = layouts.crop(read(chip_paths[0]).array, 0, 72)
    np.testing.assert_array_equal(array[:3], chip[[1, 2, 3]])  # 10 m bands B02 B03 B04 untouched, by name
    naip = resolve("meterml-naip", tmp_path)
    assert sample_source(naip.samples[0]).read().is_rgb8  # NAIP's NIR alpha channel is dropped


def test_generic_image_folder_and_rgb_sets(tmp_path):
    files = layouts.rgb_folder(tmp_path / "AID_RGB", classes=("Farm_Land", "Beach"))
    aid = resolve("aid", tmp_path)
    assert aid.classes == ["beach", "farm land"]
    assert len(aid.samples) == len(files)
    mine = resolve(f"my-crops={tmp_path / 'AID_RGB'}", tmp_path)
    assert mine.name == "my-crops" and mine.classes == aid.classes


def test_missing_and_unknown_datasets(tmp_path):
    with pytest.raises(MissingDataset, match="eurosat-ms: not found"):
        resolve("eurosat-ms", tmp_path)
    with pytest.raises(MSClipError, match="unknown dataset 'nope'"):
        resolve("nope", tmp_path)


def test_bigearthnet_archive_unpacked_into_the_data_dir(tmp_path):
    """``BigEarthNet-v1.0/`` straight in --data-dir (the archive unpacked there) is found one level down."""
    test = layouts.bigearthnet_v1(tmp_path)
    dataset = resolve("bigearthnet-ms", tmp_path)
    assert [s.name.rsplit("/", 1)[-1] for s in dataset.samples] == test
    eurosat = tmp_path / "eurosat_zip"
    test = layouts.eurosat_ms(eurosat)  # EuroSATallBands.zip unpacked: ds/images/... in the folder itself
    assert sorted(Path(s.source).name for s in resolve("eurosat-ms", eurosat).samples) == sorted(test)


def test_eurosat_in_the_reference_band_order_gives_the_model_the_channels_by_position(tmp_path):
    """IBM's evaluation reads EuroSAT as L1C and drops B01, B09, B10 by position: channels 2-9, 12, 13."""
    from msclip.evaluation.datasets import with_reference_band_order
    from msclip.io import Raster

    layouts.eurosat_ms(tmp_path, nested=False, split=False)
    dataset = with_reference_band_order(resolve(f"eurosat-ms={tmp_path}", tmp_path))
    sample = dataset.samples[0]
    model_input, _ = prepare(sample_source(sample, dataset.layout).read(), S2_10, InputOptions())
    raw = read(sample.source)
    by_position = Raster(raw.array[[1, 2, 3, 4, 5, 6, 7, 8, 11, 12]], S2_10, raw.path, tags=raw.tags)
    expected, _ = prepare(by_position, S2_10, InputOptions())
    np.testing.assert_array_equal(model_input, expected)
    by_name, _ = prepare(sample_source(sample, "EuroSAT").read(), S2_10, InputOptions())
    assert not np.array_equal(model_input[7:], by_name[7:])  # B8A, B11, B12 get B09, B12, B8A
    np.testing.assert_array_equal(model_input[:7], by_name[:7])


# ------------------------------------------------------------------------------- training splits (few-shot)


def file_names(dataset) -> list[str]:
    return sorted(Path(s.name).name for s in dataset.samples)


def test_eurosat_train_split_follows_eurosat_train_txt(tmp_path):
    test = layouts.eurosat_ms(tmp_path / "EuroSATallBands")
    listed = (tmp_path / "EuroSATallBands" / "eurosat-train.txt").read_text().split()
    train = resolve("eurosat-ms", tmp_path, split="train")
    assert file_names(train) == sorted(f"{Path(n).stem}.tif" for n in listed)
    assert not set(file_names(train)) & set(test) and train.split_source == "eurosat-train.txt"
    assert train.classes == resolve("eurosat-ms", tmp_path).classes
    assert file_names(resolve("eurosat-ms", tmp_path)) == sorted(test)  # the test split is unchanged


def test_a_missing_training_split_is_named_not_guessed(tmp_path):
    from msclip.evaluation.datasets import MissingSplit

    layouts.eurosat_ms(tmp_path / "EuroSATallBands", train=False)
    with pytest.raises(MissingSplit, match="eurosat-train.txt"):
        resolve("eurosat-ms", tmp_path, split="train")
    layouts.meter_ml(tmp_path / "METERML_MS", train=False)
    with pytest.raises(MissingSplit, match="train/"):
        resolve("meterml-ms", tmp_path, split="train")


def test_bigearthnet_v1_and_v2_training_splits(tmp_path):
    layouts.bigearthnet_v1(tmp_path / "BigEarthNet")
    listed = [
        line.split(",")[0] for line in (tmp_path / "BigEarthNet/bigearthnet-train.csv").read_text().split()
    ]
    train = resolve("bigearthnet-ms", tmp_path, split="train")
    assert [s.name.rsplit("/", 1)[-1] for s in train.samples] == listed
    assert train.split_source == "bigearthnet-train.csv" and train.targets().shape == (5, 19)
    test = layouts.bigearthnet_v2(tmp_path / "reBEN")
    train_v2 = resolve("bigearthnet-v2-ms", tmp_path, split="train")
    names = [s.name.rsplit("/", 1)[-1] for s in train_v2.samples]
    assert len(names) == 2 and not set(names) & set(test) and "'train'" in train_v2.split_source


def test_meter_ml_training_splits_in_both_layouts(tmp_path):
    files = layouts.meter_ml(tmp_path / "METERML_MS")
    test, train = resolve("meterml-ms", tmp_path), resolve("meterml-ms", tmp_path, split="train")
    assert file_names(test) == sorted(files)  # the train/ folder is not a class of the test split
    assert len(train.samples) == 2 * len(files) and all("/train/" in s.name for s in train.samples)
    assert train.classes == test.classes and train.split_source == "train/"
    release = tmp_path / "release"
    test_folders = layouts.meter_ml_release(release)
    train = resolve(f"meterml-ms={release}", tmp_path, split="train")
    assert train.split_source == "train_dataset.geojson"
    assert all("train_images" in s.name for s in train.samples)
    assert len(resolve(f"meterml-ms={release}", tmp_path).samples) == 4 and len(test_folders) == 5


def test_resisc45_style_lists_split_a_generic_folder(tmp_path):
    test = layouts.rgb_folder(tmp_path / "RESISC45_RGB", split=True)
    assert file_names(resolve("resisc45", tmp_path)) == sorted(test)
    train = resolve("resisc45", tmp_path, split="train")
    assert len(train.samples) == 2 * len(test) and all("_train" in s.name for s in train.samples)
    assert train.split_source == "resisc45_rgb-train.txt"
