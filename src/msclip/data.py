"""From a file on disk to the array a model's transform takes: bands by name, offset removed, gaps filled.

The :class:`ChipDataset` runs this in DataLoader workers; a bad file becomes an error record that the
caller reports and skips, so one corrupt chip never stops a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from msclip.bands import BASELINE_04_START, BOA_OFFSET, RGB, remove_boa_offset, select_bands
from msclip.errors import MSClipError, SkippedImage
from msclip.io import Raster, read

#: Reflectance (x 10000) that maps to 255 when a multispectral file is shown to an RGB model.
RGB_COMPOSITE_MAX = 3000.0

#: Metadata keys that carry the acquisition time (GDAL's SAFE driver, STAC items, msclip's own GeoTIFFs).
#: Not TIFFTAG_DATETIME: that is when the file was written, not when the image was taken.
DATE_TAGS = ("DATETIME", "PRODUCT_START_TIME", "SENSING_TIME", "DATATAKE_SENSING_START", "SENSING_DATE")


def acquisition_time(tags: dict[str, str]) -> pd.Timestamp | None:
    """Acquisition time (UTC) from a raster's metadata tags, when they say."""
    for key in DATE_TAGS:
        value = tags.get(key, "")
        if len(value) >= 10:
            stamp = pd.to_datetime(value[:10].replace(":", "-") + value[10:], utc=True, errors="coerce")
            if not pd.isna(stamp):
                return stamp
    return None


@dataclass(frozen=True)
class InputOptions:
    """How to interpret input files: their channel order and the baseline-04.00 offset."""

    layout: str | None = None
    bands: tuple[str, ...] | None = None
    boa_offset: Literal["auto", "0", "1000"] | int = "auto"


def boa_offset_of(raster: Raster, option: str | int = "auto") -> int:
    """The offset to subtract: given explicitly, or read from the file's metadata (0 when it says nothing).

    ``auto`` trusts, in order: a BOA_ADD_OFFSET tag, a PROCESSING_BASELINE tag, an acquisition date
    (products from 2022-01-25 carry the offset).
    """
    if str(option) != "auto":
        try:
            return int(option)
        except ValueError:
            raise MSClipError(f"--boa-offset must be auto, 0 or 1000, not {option!r}") from None
    tags = raster.tags
    if "BOA_ADD_OFFSET" in tags:
        return -int(float(tags["BOA_ADD_OFFSET"]))
    if "PROCESSING_BASELINE" in tags:
        return BOA_OFFSET if float(tags["PROCESSING_BASELINE"]) >= 4.0 else 0
    acquired = acquisition_time(tags)
    if acquired is not None:
        return BOA_OFFSET if acquired.strftime("%Y-%m-%d") >= BASELINE_04_START else 0
    return 0


def valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """(H, W) mask of usable pixels: no NaN in any band, and not nodata in every band.

    Without a declared nodata value, 0 in every band is nodata (the L2A convention).
    """
    finite = np.isfinite(array).all(axis=0) if np.issubdtype(array.dtype, np.floating) else True
    fill = 0 if nodata is None else nodata
    return finite & ~(array == fill).all(axis=0)


def fill_gaps(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of each band by the mean of that band's valid pixels in the same image."""
    if valid.all():
        return array
    out = array.astype(np.float32, copy=True)
    means = out[:, valid].mean(axis=1)
    out[:, ~valid] = means[:, None]
    return out


def prepare(raster: Raster, bands: tuple[str, ...], options: InputOptions) -> tuple[np.ndarray, float]:
    """Model-ready float32 reflectance (len(bands), H, W) and the fraction of pixels that were filled.

    ``bands == RGB`` with 8-bit pictures or multispectral files gives a uint8 true-colour image instead.
    """
    if bands == RGB and raster.is_rgb8:
        return raster.array, 0.0
    array = select_bands(raster.array, raster.bands, bands)
    valid = valid_mask(array, raster.nodata)
    valid_fraction = float(valid.mean())
    if valid_fraction == 0:
        raise SkippedImage(f"{raster.path}: no valid pixels (all nodata or NaN)")
    array = remove_boa_offset(array, boa_offset_of(raster, options.boa_offset), valid)
    array = fill_gaps(array.astype(np.float32, copy=False), valid)
    if bands == RGB:
        array = rgb_composite(array)
    return array, 1.0 - valid_fraction


def rgb_composite(reflectance: np.ndarray) -> np.ndarray:
    """8-bit true colour from reflectance x 10000 (B04, B03, B02), clipped, never wrapped around."""
    scaled = np.clip(reflectance / RGB_COMPOSITE_MAX * 255.0, 0, 255)
    return np.round(scaled).astype(np.uint8)


class ChipDataset(Dataset):
    """Paths -> (index, transformed tensor, filled fraction), or (index, error message) for a bad file."""

    def __init__(self, paths: list[str], bands: tuple[str, ...], transform, options: InputOptions):
        self.paths = paths
        self.bands = bands
        self.transform = transform
        self.options = options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        try:
            raster = read(path, self.options.layout, list(self.options.bands) if self.options.bands else None)
            array, filled = prepare(raster, self.bands, self.options)
            return {
                "index": index,
                "image": self.transform(array),
                "filled": filled,
                "crs": raster.crs,
                "bounds": raster.bounds,
                "datetime": acquisition_time(raster.tags),
            }
        except MSClipError as exc:
            return {"index": index, "error": str(exc) if path in str(exc) else f"{path}: {exc}"}


def collate_chips(records: list[dict]) -> dict:
    """Stack the good records of a batch; keep the bad ones as (index, message) pairs."""
    good = [r for r in records if "error" not in r]
    return {
        "index": [r["index"] for r in good],
        "image": torch.stack([r["image"] for r in good]) if good else None,
        "filled": [r["filled"] for r in good],
        # georeference and date are optional in a record (evaluation datasets have none)
        "crs": [r.get("crs") for r in good],
        "bounds": [r.get("bounds") for r in good],
        "datetime": [r.get("datetime") for r in good],
        "errors": [(r["index"], r["error"]) for r in records if "error" in r],
    }
