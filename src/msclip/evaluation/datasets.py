"""Benchmark test sets as they lie on the user's disk, in their published layouts (nothing is downloaded).

A loader turns a dataset root into an :class:`EvalSet`: class names in a fixed order and a sorted list of
samples (a file, or BigEarthNet's per-band files) with their labels. Reading pixels happens later, in
DataLoader workers, through each sample's :mod:`msclip.sources` source and :func:`msclip.data.prepare`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from msclip.bands import LAYOUTS
from msclip.errors import MSClipError
from msclip.io import RASTER_SUFFIXES
from msclip.sources import BandArrays, BandFiles, ChipFile, Source

Task = Literal["single", "multi"]
#: Which published split a loader reads: the test split (benchmarks) or the training split (few-shot draws).
Split = Literal["train", "test"]


@dataclass(frozen=True)
class Sample:
    """One test image: a file, or (BigEarthNet) the band files of one patch; its class index(es)."""

    source: str | tuple[str, ...]
    target: int | tuple[int, ...]

    @property
    def name(self) -> str:
        return self.source if isinstance(self.source, str) else str(Path(self.source[0]).parent)


@dataclass
class EvalSet:
    """A labelled test split: what to read, how its files store bands, and the class names to prompt."""

    name: str
    task: Task
    classes: list[str]
    samples: list[Sample]
    root: str
    layout: str | None = None
    notes: list[str] = field(default_factory=list)
    #: band names of the files' channels, when the user gives them (generic folders only)
    bands: tuple[str, ...] | None = None
    #: the published file (or column, folder) that defines the split read, "" when every image was read
    split_source: str = ""
    #: (entry, reason) for images the split file names but the disk lacks: reported with the run's skips
    unlisted: list[tuple[str, str]] = field(default_factory=list)

    def targets(self, indices: list[int] | None = None) -> np.ndarray:
        """(N,) class indices, or (N, classes) 0/1 for multi-label sets, for the kept samples."""
        picked = [self.samples[i] for i in (range(len(self.samples)) if indices is None else indices)]
        if self.task == "single":
            return np.array([s.target for s in picked], dtype=np.int64)
        matrix = np.zeros((len(picked), len(self.classes)), dtype=bool)
        for row, sample in enumerate(picked):
            matrix[row, np.asarray(sample.target, dtype=np.int64)] = True
        return matrix


def sample_source(sample: Sample, layout: str | None = None, bands: tuple[str, ...] | None = None) -> Source:
    """Where the sample's pixels come from: a file, METER-ML's per-resolution arrays or BigEarthNet's band files."""
    if isinstance(sample.source, str):
        return ChipFile(sample.source, layout, bands)
    if sample.source[0].endswith(".npy"):
        return BandArrays(sample.source, tuple(METER_ML_ARRAYS[Path(p).name] for p in sample.source))
    return BandFiles(sample.source, BIGEARTHNET_SIZE)


# ---------------------------------------------------------------------------------------------- class folders


def folder_class_name(folder: str) -> str:
    """The reference's prompt name of a class folder: '_' and '/' become spaces, lower case."""
    return folder.replace("_", " ").replace("/", " ").lower()


def image_folder(
    root: Path,
    name: str,
    layout: str | None = None,
    class_names: dict[str, str] | None = None,
    keep: Callable[[Path], bool] | None = None,
    skip: tuple[str, ...] = (),
) -> EvalSet:
    """torchvision-ImageFolder layout: one sub-folder per class (sorted = label order), images inside;
    ``skip`` names sub-folders that are not classes (another split's folder)."""
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip
    )
    samples: list[Sample] = []
    for label, folder in enumerate(folders):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in RASTER_SUFFIXES and p.is_file() and (keep is None or keep(p))
        )
        samples.extend(Sample(str(p), label) for p in files)
    if not samples:
        raise MissingDataset(f"{name}: no class folders with images in {root}")
    names = [(class_names or {}).get(f.name, folder_class_name(f.name)) for f in folders]
    return EvalSet(name, "single", names, samples, str(root), layout)


def split_filter(split_file: Path) -> Callable[[Path], bool]:
    """Keep the files named in a split list (one name per line; compared without extension, as torchgeo's
    EuroSAT lists name .jpg files for the .tif images)."""
    stems = split_stems(split_file)
    return lambda path: path.stem in stems


def split_stems(split_file: Path) -> set[str]:
    return {
        Path(line.strip().split(",")[0]).stem for line in split_file.read_text().splitlines() if line.strip()
    }


def missing_from_disk(dataset: EvalSet, split_file: Path) -> list[tuple[str, str]]:
    """Entries of a split list that no image of the dataset matches: named, so none is dropped silently."""
    found = {Path(s.source).stem for s in dataset.samples if isinstance(s.source, str)}
    return [
        (stem, f"{split_file.name} names {stem}, which is not on disk under {dataset.root}")
        for stem in sorted(split_stems(split_file) - found)
    ]


class MissingDataset(MSClipError):
    """The dataset is not on disk where it was looked for: reported and skipped, never a crash."""


class MissingSplit(MissingDataset):
    """The dataset is on disk but publishes no file for the asked (training) split."""


def split_list(root: Path, name: str, split: Split, *candidates: str) -> Path | None:
    """The split's list file among ``candidates``; a test split may have none (every image is then read),
    a training split must."""
    found = first_existing(root, *candidates)
    if found is None and split == "train":
        raise MissingSplit(f"{name}: no training split ({', '.join(candidates)}) in {root}")
    return found


def list_note(split_file: Path | None) -> str:
    return f"split file {split_file.name}" if split_file else "no split file: every image in the folders"


def first_existing(root: Path, *candidates: str) -> Path | None:
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    return None


# ----------------------------------------------------------------------------------------------- EuroSAT

#: Where the class folders sit inside the original EuroSATallBands.zip (and torchgeo's copy of it).
EUROSAT_MS_NESTED = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"


def eurosat(root: Path, name: str, multispectral: bool, split: Split = "test") -> EvalSet:
    """EuroSAT-MS (13-band L1C GeoTIFFs, B8A stored last) or EuroSAT-RGB (JPEGs), in class folders.

    Accepts the class folders themselves, the original zip's nesting (``ds/images/.../tif``, ``2750``) and
    torchgeo's copy; a ``eurosat-test.txt`` (``eurosat-train.txt``) split file (torchgeo) next to them
    restricts to the test (training) split.
    """
    split_file = split_list(root, name, split, f"eurosat-{split}.txt", f"{split}.txt")
    nested = first_existing(root, EUROSAT_MS_NESTED, "EuroSAT_MS", "tif") if multispectral else None
    nested = nested or (first_existing(root, "2750", "EuroSAT_RGB", "EuroSAT") if not multispectral else None)
    dataset = image_folder(
        nested or root,
        name,
        layout="EuroSAT" if multispectral else None,
        keep=split_filter(split_file) if split_file else None,
    )
    dataset.notes.append(list_note(split_file))
    dataset.split_source = split_file.name if split_file else ""
    dataset.unlisted = missing_from_disk(dataset, split_file) if split_file else []
    return dataset


#: How the reference evaluation (IBM/MS-CLIP) reads a layout's files, where that differs from their real order:
#: it takes EuroSAT's 13 channels for the L1C order (B8A 9th) and drops B01, B09 and B10 by position.
REFERENCE_LAYOUTS = {"EuroSAT": "L1C"}


def with_reference_band_order(dataset: EvalSet) -> EvalSet:
    """The test set read as the reference code reads it, to reproduce the published numbers: EuroSAT files
    read as L1C hand the file's B09, B12 and B8A to the model's B8A, B11 and B12 inputs."""
    reference = REFERENCE_LAYOUTS.get(dataset.layout or "")
    if reference is None:
        return dataset
    note = (
        f"--reference-band-order: channels read in the {reference} order, as the reference evaluation reads"
        " them (the model's B8A, B11, B12 inputs get the file's B09, B12, B8A)"
    )
    return replace(dataset, layout=reference, notes=[*dataset.notes, note])


# ------------------------------------------------------------------------------------------- BigEarthNet v1

#: The 19-class nomenclature (Sumbul et al. 2021), in its official order.
BIGEARTHNET_19 = [
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
]

#: CORINE level-3 labels of BigEarthNet v1 -> index in BIGEARTHNET_19 (labels without a class are dropped).
CORINE_TO_19 = {
    "Continuous urban fabric": 0,
    "Discontinuous urban fabric": 0,
    "Industrial or commercial units": 1,
    "Non-irrigated arable land": 2,
    "Permanently irrigated land": 2,
    "Rice fields": 2,
    "Vineyards": 3,
    "Fruit trees and berry plantations": 3,
    "Olive groves": 3,
    "Annual crops associated with permanent crops": 3,
    "Pastures": 4,
    "Complex cultivation patterns": 5,
    "Land principally occupied by agriculture, with significant areas of natural vegetation": 6,
    "Agro-forestry areas": 7,
    "Broad-leaved forest": 8,
    "Coniferous forest": 9,
    "Mixed forest": 10,
    "Natural grassland": 11,
    "Sparsely vegetated areas": 11,
    "Moors and heathland": 12,
    "Sclerophyllous vegetation": 12,
    "Transitional woodland/shrub": 13,
    "Beaches, dunes, sands": 14,
    "Inland marshes": 15,
    "Peatbogs": 15,
    "Salt marshes": 16,
    "Salines": 16,
    "Water courses": 17,
    "Water bodies": 17,
    "Coastal lagoons": 18,
    "Estuaries": 18,
    "Sea and ocean": 18,
}

#: BigEarthNet v1 patches are 120 x 120 px at 10 m; 20 m and 60 m bands are resampled to it (as torchgeo;
#: the rule: :mod:`msclip.resample`).
BIGEARTHNET_SIZE = 120


def bigearthnet_labels(labels: list[str]) -> tuple[int, ...]:
    """19-class indices of a patch from its CORINE names (or names already in the 19-class nomenclature)."""
    found = set()
    for label in labels:
        if label in CORINE_TO_19:
            found.add(CORINE_TO_19[label])
        elif label in BIGEARTHNET_19:
            found.add(BIGEARTHNET_19.index(label))
    return tuple(sorted(found))


def bigearthnet_v1(root: Path, name: str, split: Split = "test") -> EvalSet:
    """BigEarthNet-S2 v1.0: a folder per patch with ``<patch>_B01.tif`` ... and ``<patch>_labels_metadata.json``.

    Patch folders sit in ``BigEarthNet-v1.0/`` (the archive), ``sentinel-2/`` (the reference) or the root. The
    test split is the official list ``bigearthnet-test.csv`` (torchgeo, reference) or ``test.csv``
    (first column: the S2 patch name); without one, every patch is used and the notes say so. The training
    split is ``bigearthnet-train.csv`` or ``train.csv``.
    """
    patches_dir = first_existing(root, "BigEarthNet-v1.0", "sentinel-2") or root
    split_file = split_list(root, name, split, f"bigearthnet-{split}.csv", f"{split}.csv")
    if split_file:
        with open(split_file, newline="") as handle:
            names = [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
        folders = [patches_dir / n for n in names]
    else:
        folders = sorted(p for p in patches_dir.iterdir() if (p / f"{p.name}_labels_metadata.json").is_file())
    samples: list[Sample] = []
    missing: list[tuple[str, str]] = []
    for folder in folders:
        # file names follow the patch name: no directory listing per patch (the test split has ~125k)
        metadata = folder / f"{folder.name}_labels_metadata.json"
        if not metadata.is_file():
            missing.append(
                (
                    folder.name,
                    f"{split_file.name if split_file else 'the split'} names patch "
                    f"{folder.name}, which is not on disk under {patches_dir}",
                )
            )
            continue
        labels = json.loads(metadata.read_text())["labels"]
        band_files = tuple(str(folder / f"{folder.name}_{band}.tif") for band in LAYOUTS["L2A"])
        samples.append(Sample(band_files, bigearthnet_labels(labels)))
    if not samples:
        raise MissingDataset(f"{name}: no patch folders with *_labels_metadata.json in {patches_dir}")
    notes = [f"split file {split_file.name}" if split_file else "no split file: every patch folder"]
    if missing:
        notes.append(f"{len(missing)} patch(es) of the split list not found on disk")
    source = split_file.name if split_file else ""
    dataset = EvalSet(
        name, "multi", list(BIGEARTHNET_19), samples, str(root), None, notes, split_source=source
    )
    dataset.unlisted = missing
    return dataset


def bigearthnet_v2(root: Path, name: str, split: Split = "test") -> EvalSet:
    """BigEarthNet v2 (reBEN): ``metadata.parquet`` (patch_id, labels in the 19-class names, split) and
    ``BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif`` ..., the layout torchgeo's BigEarthNetV2 reads."""
    import pandas as pd

    metadata_file = root / "metadata.parquet"
    if not metadata_file.is_file():
        raise MissingDataset(f"{name}: no metadata.parquet in {root}")
    metadata = pd.read_parquet(metadata_file, columns=["patch_id", "labels", "split"])
    metadata = metadata[metadata["split"] == split].sort_values("patch_id")
    if metadata.empty and split == "train":
        raise MissingSplit(f"{name}: no 'train' rows in the split column of {metadata_file}")
    patches_dir = first_existing(root, "BigEarthNet-S2") or root
    samples, missing = [], 0
    for patch_id, labels in zip(metadata["patch_id"], metadata["labels"], strict=True):
        folder = patches_dir / "_".join(patch_id.split("_")[:-2]) / patch_id
        band_files = tuple(sorted(str(p) for p in folder.glob("*_B*.tif")))
        if not band_files:
            missing += 1
            continue
        samples.append(Sample(band_files, bigearthnet_labels(list(labels))))
    if not samples:
        raise MissingDataset(f"{name}: no {split} patches of metadata.parquet found under {patches_dir}")
    source = f"split column of metadata.parquet == '{split}'"
    notes = [source]
    if missing:
        notes.append(f"{missing} {split} patch(es) not found on disk")
    return EvalSet(name, "multi", list(BIGEARTHNET_19), samples, str(root), None, notes, split_source=source)


# -------------------------------------------------------------------------------------------------- METER-ML

#: METER-ML class folders -> the reference's prompt names (folder order = the reference's label order).
METER_ML_CLASSES = {
    "CAFOs": "concentrated animal feeding operations",
    "Landfills": "landfills",
    "Mines": "coal mines",
    "Negative": "other features",
    "ProcessingPlants": "natural gas processing plants",
    "RefineriesAndTerminals": "oil refineries and petroleum terminals",
    "WWTreatment": "wastewater treatment plants",
}


#: The arrays of one METER-ML release folder (channels last) and the bands they hold.
METER_ML_ARRAYS = {
    "sentinel-2-10m.npy": ("B04", "B03", "B02", "B08"),
    "sentinel-2-20m.npy": ("B05", "B06", "B07", "B8A", "B11", "B12"),
    "sentinel-2-60m.npy": ("B01", "B09", "B10"),
}


def meter_ml(root: Path, name: str, multispectral: bool, split: Split = "test") -> EvalSet:
    """METER-ML images, single-label with 7 classes ("Negative" = "other features") as the reference.

    Two layouts: the reference's class folders of 12-band GeoTIFFs (band names from the files'
    descriptions, else L2A order) or NAIP PNGs (the test split in the root or ``test/``, the training split
    in ``train/``); or the release itself, ``test_dataset.geojson`` / ``train_dataset.geojson`` (``Type``,
    ``Image_Folder``) with per-image folders of ``sentinel-2-{10,20,60}m.npy`` and ``naip.png``.
    """
    metadata = first_existing(root, f"{split}_dataset.geojson")
    if metadata is None:
        return meter_ml_folders(root, name, split)
    codes = list(METER_ML_CLASSES)
    samples, multi, missing = [], 0, 0
    for feature in sorted(
        json.loads(metadata.read_text())["features"], key=lambda f: f["properties"]["Image_Folder"]
    ):
        kinds = [k.strip() for k in feature["properties"]["Type"].split("-")]
        kinds = ["Negative" if k == "Roundabout" else k for k in kinds]  # no emitter: "other features"
        if len(kinds) != 1 or kinds[0] not in codes:
            multi += 1
            continue
        folder = root / feature["properties"]["Image_Folder"]
        files = tuple(str(folder / f) for f in METER_ML_ARRAYS) if multispectral else str(folder / "naip.png")
        if not folder.is_dir():
            missing += 1
            continue
        samples.append(Sample(files, codes.index(kinds[0])))
    if not samples:
        raise MissingDataset(f"{name}: no image folders of {metadata.name} found in {root}")
    notes = [f"{metadata.name}; {multi} image(s) with several or unknown types left out (single-label)"]
    if missing:
        notes.append(f"{missing} image folder(s) not found on disk")
    classes = list(METER_ML_CLASSES.values())
    return EvalSet(name, "single", classes, samples, str(root), None, notes, split_source=metadata.name)


def meter_ml_folders(root: Path, name: str, split: Split) -> EvalSet:
    """The reference's class-folder layout: ``train/`` beside the test classes (root or ``test/``)."""
    folder = first_existing(root, split)
    if split == "train" and folder is None:
        raise MissingSplit(f"{name}: no train/ class folders or train_dataset.geojson in {root}")
    dataset = image_folder(folder or root, name, class_names=METER_ML_CLASSES, skip=("train", "test"))
    dataset.split_source = f"{split}/" if folder else ""
    return dataset


def generic(
    root: Path,
    name: str,
    layout: str | None = None,
    bands: tuple[str, ...] | None = None,
    split: Split = "test",
) -> EvalSet:
    """Any ImageFolder of GeoTIFFs or pictures; a ``*-test.txt``/``test.txt`` (``*-train.txt``/``train.txt``)
    list restricts it to the test (training) split (torchgeo's RESISC45 style)."""
    lists = (
        f"{root.name.lower()}-{split}.txt",
        f"{name.lower()}-{split}.txt",
        f"resisc45-{split}.txt",
        f"{split}.txt",
    )
    split_file = split_list(root, name, split, *dict.fromkeys(lists))
    dataset = image_folder(root, name, layout=layout, keep=split_filter(split_file) if split_file else None)
    dataset.bands = bands
    dataset.notes.append(list_note(split_file))
    dataset.split_source = split_file.name if split_file else ""
    dataset.unlisted = missing_from_disk(dataset, split_file) if split_file else []
    return dataset


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetInfo:
    """A named benchmark: folder names it is found under (in --data-dir), how to load it, and the folders
    of its archive that make --data-dir itself its root when it was unpacked there."""

    name: str
    folders: tuple[str, ...]
    load: Callable[[Path, str, Split], EvalSet]
    description: str
    archive_folders: tuple[str, ...] = ()


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "eurosat-ms",
            ("EuroSAT_MS", "eurosat-ms", "EuroSATallBands", "eurosat", "EuroSAT"),
            lambda root, name, split: eurosat(root, name, multispectral=True, split=split),
            "EuroSAT 13-band L1C, 10 classes",
            (EUROSAT_MS_NESTED,),
        ),
        DatasetInfo(
            "eurosat-rgb",
            ("EuroSAT_RGB", "eurosat-rgb", "EuroSAT"),
            lambda root, name, split: eurosat(root, name, multispectral=False, split=split),
            "EuroSAT RGB JPEGs, 10 classes",
            ("2750",),
        ),
        DatasetInfo(
            "bigearthnet-ms",
            ("BigEarthNet", "bigearthnet", "BigEarthNet-S2", "bigearthnet-ms"),
            bigearthnet_v1,
            "BigEarthNet-S2 v1.0, 19 classes, multi-label",
            ("BigEarthNet-v1.0",),
        ),
        DatasetInfo(
            "bigearthnet-v2-ms",
            ("reBEN", "BigEarthNetV2", "bigearthnet-v2", "bigearthnet-v2-ms"),
            bigearthnet_v2,
            "BigEarthNet v2 (reBEN) Sentinel-2, 19 classes, multi-label",
        ),
        DatasetInfo(
            "meterml-ms",
            ("METERML_MS", "meterml-ms", "METER-ML", "meter-ml"),
            lambda root, name, split: meter_ml(root, name, multispectral=True, split=split),
            "METER-ML Sentinel-2, 7 classes",
        ),
        DatasetInfo(
            "meterml-naip",
            ("METERML_NAIP", "meterml-naip", "METER-ML", "meter-ml"),
            lambda root, name, split: meter_ml(root, name, multispectral=False, split=split),
            "METER-ML NAIP RGB, 7 classes",
        ),
        DatasetInfo(
            "resisc45",
            ("RESISC45_RGB", "NWPU-RESISC45", "resisc45"),
            lambda root, name, split: generic(root, name, split=split),
            "RESISC45 RGB, 45 classes",
        ),
        DatasetInfo(
            "aid",
            ("AID_RGB", "AID", "aid"),
            lambda root, name, split: generic(root, name, split=split),
            "AID RGB, 30 classes",
        ),
    )
}


def find_root(data_dir: Path, info: DatasetInfo) -> Path | None:
    """The dataset's folder in ``data_dir``, or ``data_dir`` itself when its archive was unpacked there."""
    found = first_existing(data_dir, *info.folders)
    if found is None and first_existing(data_dir, *info.archive_folders):
        return data_dir
    return found


def resolve(
    entry: str,
    data_dir: str | Path = ".",
    layout: str | None = None,
    bands: tuple[str, ...] | None = None,
    split: Split = "test",
) -> EvalSet:
    """``NAME`` (looked up in ``data_dir``), ``NAME=PATH``, or an unregistered ``NAME=PATH`` / folder path
    (a generic ImageFolder, whose files' bands ``layout``/``bands`` name), read at its test (or training)
    split. Raises MissingDataset when the files are not there, MissingSplit when the split is not."""
    name, _, path = entry.partition("=")
    data_dir = Path(data_dir)
    if not path and name not in DATASETS and Path(name).is_dir():
        path, name = name, Path(name).name
    if name in DATASETS:
        info = DATASETS[name]
        root = Path(path) if path else find_root(data_dir, info)
        if root is None or not root.is_dir():
            where = root or f"{data_dir}/{{{','.join(info.folders)}}}"
            raise MissingDataset(f"{name}: not found at {where}")
        return info.load(root, name, split)
    if not path:
        raise MSClipError(
            f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, NAME=FOLDER or a class-folder path"
        )
    if not Path(path).is_dir():
        raise MissingDataset(f"{name}: not found at {path}")
    return generic(Path(path), name, layout, bands, split)
