"""Synthetic scenes made from the real example chips (tiled, every other tile mirrored, nodata border)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio import Affine

from msclip.bands import LAYOUTS


def mosaic(chips: list[Path], size: int, border: int) -> tuple[np.ndarray, dict]:
    """(12, size, size) int16 L2A mosaic of the chips with a zero (nodata) border, and chip 0's profile."""
    tiles = []
    for path in chips:
        with rasterio.open(path) as src:
            tiles.append(src.read())
    with rasterio.open(chips[0]) as src:
        profile = src.profile
    n = -(-size // 224)
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            tile = tiles[(i * n + j) % len(tiles)]
            row.append(tile[:, :, ::-1] if (i + j) % 2 else tile)
        rows.append(np.concatenate(row, axis=2))
    array = np.ascontiguousarray(np.concatenate(rows, axis=1)[:, :size, :size])
    if border:
        array[:, :border] = array[:, -border:] = 0
        array[:, :, :border] = array[:, :, -border:] = 0
    return array, profile


def write_scene(path: Path, chips: list[Path], size: int = 2240, border: int = 260, **tags) -> Path:
    """A 12-band L2A GeoTIFF scene (tiled, as a COG would be) on chip 0's grid."""
    array, profile = mosaic(chips, size, border)
    profile.update(width=size, height=size, tiled=True, blockxsize=256, blockysize=256, interleave="band")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
        dst.update_tags(**tags)
    return path


def write_safe(folder: Path, chips: list[Path], size: int = 672, cloud_px: int = 224) -> Path:
    """A minimal L2A .SAFE: per-band files at 10/20/60 m (+1000 offset, baseline 05.09), SCL with a cloud
    in the top-left ``cloud_px`` square. Band files are GeoTIFFs named as in a real product."""
    array, profile = mosaic(chips, size, border=0)
    granule = folder / "GRANULE" / "L2A_T22JGT_A000001_20230601T132241" / "IMG_DATA"
    transform = profile["transform"]
    for name, band in zip(LAYOUTS["L2A"], array + 1000, strict=True):
        resolution = 10 if name in {"B02", "B03", "B04", "B08"} else 60 if name in {"B01", "B09"} else 20
        _write_band(
            granule / f"R{resolution}m" / f"T22JGT_20230601T132241_{name}_{resolution}m.jp2",
            band,
            resolution,
            transform,
            profile["crs"],
        )
        if resolution == 10:  # real products also ship coarser copies of the 10 m bands
            _write_band(
                granule / "R20m" / f"T22JGT_20230601T132241_{name}_20m.jp2",
                band,
                20,
                transform,
                profile["crs"],
            )
    scl = np.full((size, size), 4, dtype=np.uint8)  # vegetation
    scl[:cloud_px, :cloud_px] = 9  # cloud, high probability
    _write_band(granule / "R20m" / "T22JGT_20230601T132241_SCL_20m.jp2", scl, 20, transform, profile["crs"])
    (folder / "MTD_MSIL2A.xml").write_text(
        "<root><PRODUCT_START_TIME>2023-06-01T13:22:41.024Z</PRODUCT_START_TIME>"
        "<PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>"
        '<BOA_ADD_OFFSET band_id="0">-1000</BOA_ADD_OFFSET></root>'
    )
    return folder


def _write_band(path: Path, band: np.ndarray, resolution: int, transform: Affine, crs) -> None:
    factor = resolution // 10
    h, w = band.shape
    coarse = band.reshape(h // factor, factor, w // factor, factor).max(axis=(1, 3)) if factor > 1 else band
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = transform @ Affine.scale(factor)
    with rasterio.open(
        path, "w", driver="GTiff", width=coarse.shape[1], height=coarse.shape[0], count=1, dtype=coarse.dtype,
        crs=crs, transform=grid,
    ) as dst:  # fmt: skip
        dst.write(coarse, 1)
