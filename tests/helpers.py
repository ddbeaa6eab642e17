"""Small builders shared by tests: copies of the real chips with changes made on purpose."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import rasterio


def write_geotiff(path: Path, array: np.ndarray, like: Path | None = None, **profile) -> Path:
    """Write (C, H, W) ``array`` as GeoTIFF, georeferenced like ``like`` when given."""
    base = {"driver": "GTiff", "count": array.shape[0], "height": array.shape[1], "width": array.shape[2]}
    if like is not None:
        with rasterio.open(like) as src:
            base.update(crs=src.crs, transform=src.transform)
    base.update(dtype=array.dtype.name, **profile)
    descriptions = base.pop("descriptions", None)
    tags = base.pop("tags", None)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(array)
        if descriptions:
            dst.descriptions = tuple(descriptions)
        if tags:
            dst.update_tags(**tags)
    return path


def read_array(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def write_zipped_zarr(dataset, path: Path) -> Path:
    """An xarray Dataset as a zipped Zarr v2 store with consolidated metadata, as SSL4EO-S12 v1.1 ships.

    Written to a folder, then zipped: writing through a ZipStore appends metadata entries twice.
    """
    folder = path.with_name(path.name + ".tmp")
    dataset.to_zarr(folder, zarr_format=2, consolidated=True)
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, file.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return path
