"""Small copies of the benchmark datasets in their published layouts, cut from the real L2A example chips.

Each builder writes into a folder and returns what a test needs to know (labels, files). Images are
crops of the five 224 x 224 chips, so the pixels are real Sentinel-2 reflectance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from msclip.bands import LAYOUTS
from tests.conftest import L2A_CHIPS, RGB_CHIPS
from tests.helpers import read_array, write_geotiff

EUROSAT_CLASSES = ["AnnualCrop", "Forest", "SeaLake"]


def chips() -> list[Path]:
    return sorted(L2A_CHIPS.glob("*.tif"))


def crop(array: np.ndarray, index: int, size: int) -> np.ndarray:
    """The ``index``-th ``size`` x ``size`` window of a chip, on a diagonal walk."""
    step = (array.shape[-1] - size) // 3
    offset = (index % 4) * step
    return array[:, offset : offset + size, offset : offset + size]


def l2a_to(array: np.ndarray, layout: str) -> np.ndarray:
    """Re-order 12-band L2A channels into another layout (B10, absent from L2A, becomes zeros)."""
    source = LAYOUTS["L2A"]
    zeros = np.zeros_like(array[0])
    return np.stack([array[source.index(b)] if b in source else zeros for b in LAYOUTS[layout]])


def eurosat_ms(root: Path, nested: bool = True, split: bool = True, train: bool = True) -> dict[str, str]:
    """EuroSATallBands as unzipped (and by torchgeo): ``ds/.../tif/<Class>/<Class>_<n>.tif``, 13 bands with
    B8A last, 64 x 64 px; ``eurosat-test.txt`` lists the test images (the first crop of each chip) and
    ``eurosat-train.txt`` (with ``train``) the training images (its other three crops), as .jpg names like
    torchgeo's. Returns {file name: class folder} of the test images."""
    base = root / "ds/images/remote_sensing/otherDatasets/sentinel_2/tif" if nested else root
    test, training = {}, []
    for c, chip in enumerate(chips()):
        array = l2a_to(read_array(chip), "EuroSAT")
        name = EUROSAT_CLASSES[c % len(EUROSAT_CLASSES)]
        for i in range(4 if split and train else 2):
            number = c * 2 + i + 1 if i < 2 else 100 + c * 2 + i  # the first two crops keep their names
            path = base / name / f"{name}_{number}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_geotiff(path, np.ascontiguousarray(crop(array, i, 64)), like=chip)
            if i == 0 or not split:
                test[path.name] = name
            else:
                training.append(path.name)
    if split:
        (root / "eurosat-test.txt").write_text("".join(f"{Path(n).stem}.jpg\n" for n in sorted(test)))
    if split and train:
        (root / "eurosat-train.txt").write_text("".join(f"{Path(n).stem}.jpg\n" for n in sorted(training)))
    return test


BEN_LABELS = [
    ["Non-irrigated arable land", "Pastures"],
    ["Coniferous forest", "Mixed forest", "Transitional woodland/shrub"],
    ["Sea and ocean", "Beaches, dunes, sands"],
    ["Discontinuous urban fabric", "Road and rail networks and associated land"],
    ["Water bodies", "Broad-leaved forest"],
]
BEN_RESOLUTION = {"B02": 120, "B03": 120, "B04": 120, "B08": 120, "B01": 20, "B09": 20}


def write_band_files(folder: Path, name: str, chip: Path, corner: int = 0) -> None:
    """One BigEarthNet patch: ``<name>_<band>.tif`` per band at its own resolution, from a chip's 120 px
    window at (``corner``, ``corner``)."""
    folder.mkdir(parents=True)
    array = read_array(chip)[:, corner : corner + 120, corner : corner + 120]
    for b, band in enumerate(LAYOUTS["L2A"]):
        size = BEN_RESOLUTION.get(band, 60)
        layer = array[b, :: 120 // size, :: 120 // size][None]
        write_geotiff(folder / f"{name}_{band}.tif", np.ascontiguousarray(layer), like=chip)


def bigearthnet_v2(root: Path) -> list[str]:
    """reBEN: ``metadata.parquet`` (patch_id, 19-class labels, split) and ``BigEarthNet-S2/<tile>/<patch>/``.
    Returns the test patch ids (patches 1 and 3 are in the train split)."""
    import pandas as pd

    rows = []
    for p, chip in enumerate(chips()):
        patch_id = f"S2B_MSIL2A_20170808T094029_N9999_R036_T35ULA_{p}_{p + 10}"
        write_band_files(root / "BigEarthNet-S2" / patch_id.rsplit("_", 2)[0] / patch_id, patch_id, chip)
        labels = ["Arable land", "Pastures"] if p % 2 == 0 else ["Coniferous forest"]
        rows.append({"patch_id": patch_id, "labels": labels, "split": "train" if p in (1, 3) else "test"})
    pd.DataFrame(rows).to_parquet(root / "metadata.parquet")
    return [r["patch_id"] for r in rows if r["split"] == "test"]


def bigearthnet_v1(root: Path, split: bool = True, train: bool = True) -> list[str]:
    """BigEarthNet-S2 v1.0: ``BigEarthNet-v1.0/<patch>/<patch>_B01.tif`` (10 m bands 120 px, 20 m 60 px,
    60 m 20 px) with ``<patch>_labels_metadata.json``; ``bigearthnet-test.csv`` pairs S2 and S1 names.
    With ``train``, five more patches (the chips' opposite corners, same labels) listed in
    ``bigearthnet-train.csv``. Returns the test patch names (all but the last of the first five)."""
    names = []
    for p, chip in enumerate(chips()):
        name = f"S2A_MSIL2A_20170717T113321_{p}_{p + 40}"
        write_patch(root / "BigEarthNet-v1.0" / name, name, chip, BEN_LABELS[p])
        names.append(name)
    test = names[:-1]
    if split:
        (root / "bigearthnet-test.csv").write_text("".join(f"{n},S1_{n}\n" for n in test))
    if split and train:
        training = bigearthnet_v1_train_patches(root)
        (root / "bigearthnet-train.csv").write_text("".join(f"{n},S1_{n}\n" for n in training))
    return test


def bigearthnet_v1_train_patches(root: Path) -> list[str]:
    """The training patches of :func:`bigearthnet_v1`: each chip's bottom-right 120 px window."""
    names = []
    for p, chip in enumerate(chips()):
        name = f"S2A_MSIL2A_20170717T113321_{p}_{p + 80}"
        write_patch(root / "BigEarthNet-v1.0" / name, name, chip, BEN_LABELS[p], corner=104)
        names.append(name)
    return names


def write_patch(folder: Path, name: str, chip: Path, labels: list[str], corner: int = 0) -> None:
    """A v1.0 patch folder: band files and ``<name>_labels_metadata.json``."""
    write_band_files(folder, name, chip, corner)
    metadata = {
        "labels": labels,
        "coordinates": {},
        "projection": "",
        "tile_source": "",
        "acquisition_date": "",
    }
    (folder / f"{name}_labels_metadata.json").write_text(json.dumps(metadata))


METER_FOLDERS = ["CAFOs", "Landfills", "Mines", "Negative"]


def meter_ml(root: Path, train: bool = True) -> dict[str, str]:
    """METER-ML Sentinel-2 test images as the reference keeps them: class folders of 12-band GeoTIFFs; with
    ``train``, a ``train/`` tree of the same class folders beside them (two other crops per chip).
    Returns {file name: class folder} of the test images."""
    files = {}
    for c, chip in enumerate(chips()):
        folder = METER_FOLDERS[c % len(METER_FOLDERS)]
        array = read_array(chip)
        path = root / folder / f"{c}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_geotiff(path, np.ascontiguousarray(crop(array, c, 72)), like=chip)
        files[path.name] = folder
        for i in range(1, 3) if train else ():
            path = root / "train" / folder / f"{c}_{i}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_geotiff(path, np.ascontiguousarray(crop(array, c + i, 72)), like=chip)
    return files


METER_TYPES = ["CAFOs", "Landfills-Mines", "Negative", "WWTreatment", "Roundabout"]


def meter_ml_release(root: Path, train: bool = True) -> list[str]:
    """METER-ML as released: ``test_dataset.geojson`` (Type, Image_Folder) and per-image folders with
    ``sentinel-2-10m.npy`` (72 x 72 x 4: B04 B03 B02 B08), ``-20m`` (36 x 36 x 6), ``-60m`` (12 x 12 x 3)
    and a 4-channel ``naip.png`` (NIR as alpha); with ``train``, ``train_dataset.geojson`` and
    ``train_images/`` the same way (another crop per chip). Returns the test image folders, in the
    geojson's order."""
    if train:
        write_meter_ml_release(root, "train", offset=1)
    return write_meter_ml_release(root, "test", offset=0)


def write_meter_ml_release(root: Path, split: str, offset: int) -> list[str]:
    """``<split>_dataset.geojson`` and ``<split>_images/img_<c>/`` from crop ``c + offset`` of each chip."""
    from PIL import Image

    features = []
    for c, chip in enumerate(chips()):
        array = crop(read_array(chip), c + offset, 72)
        band = {b: array[i] for i, b in enumerate(LAYOUTS["L2A"])}
        band["B10"] = np.zeros_like(array[0])
        folder = root / f"{split}_images" / f"img_{c}"
        folder.mkdir(parents=True)
        for name, bands, step in (
            ("sentinel-2-10m.npy", ("B04", "B03", "B02", "B08"), 1),
            ("sentinel-2-20m.npy", ("B05", "B06", "B07", "B8A", "B11", "B12"), 2),
            ("sentinel-2-60m.npy", ("B01", "B09", "B10"), 6),
        ):
            np.save(
                folder / name, np.stack([band[b][::step, ::step] for b in bands], axis=-1).astype(np.uint16)
            )
        rgbn = np.stack([band[b] for b in ("B04", "B03", "B02", "B08")], axis=-1) // 12
        Image.fromarray(np.clip(rgbn, 0, 255).astype(np.uint8), "RGBA").save(folder / "naip.png")
        features.append(
            {
                "type": "Feature",
                "geometry": None,
                "properties": {"Type": METER_TYPES[c], "Image_Folder": f"{split}_images/img_{c}"},
            }
        )
    (root / f"{split}_dataset.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return [f["properties"]["Image_Folder"] for f in features]


def rgb_folder(
    root: Path, classes: tuple[str, ...] = ("farm_land", "sea"), split: bool = False
) -> dict[str, str]:
    """An ImageFolder of the 8-bit RGB example chips (RESISC45 / AID / EuroSAT-RGB style). With ``split``,
    each chip is also copied twice more as training images (``<stem>_train<n>.tif``) and
    ``<folder>-test.txt`` / ``<folder>-train.txt`` list the two splits (torchgeo's RESISC45 style).
    Returns {file name: class} of the test images (every image without ``split``)."""
    files, training = {}, []
    for i, chip in enumerate(sorted(RGB_CHIPS.glob("*.tif"))):
        target = root / classes[i % len(classes)] / chip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chip, target)
        files[chip.name] = classes[i % len(classes)]
        for n in range(2) if split else ():
            copy = target.with_name(f"{chip.stem}_train{n}.tif")
            shutil.copy(chip, copy)
            training.append(copy.name)
    if split:
        (root / f"{root.name.lower()}-test.txt").write_text("".join(f"{n}\n" for n in sorted(files)))
        (root / f"{root.name.lower()}-train.txt").write_text("".join(f"{n}\n" for n in sorted(training)))
    return files
