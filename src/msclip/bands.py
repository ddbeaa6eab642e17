"""Sentinel-2 band catalogue, known file layouts and the processing-baseline 04.00 offset.

Inputs are always matched to a model by band *name*: a file's layout says which band sits in which
channel, and ``select_bands`` picks the model's bands from it, whatever their order in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from msclip.errors import MSClipError


@dataclass(frozen=True)
class Band:
    name: str
    wavelength_nm: int
    resolution_m: int


BANDS: dict[str, Band] = {
    b.name: b
    for b in (
        Band("B01", 443, 60),
        Band("B02", 490, 10),
        Band("B03", 560, 10),
        Band("B04", 665, 10),
        Band("B05", 705, 20),
        Band("B06", 740, 20),
        Band("B07", 783, 20),
        Band("B08", 842, 10),
        Band("B8A", 865, 20),
        Band("B09", 945, 60),
        Band("B10", 1375, 60),
        Band("B11", 1610, 20),
        Band("B12", 2190, 20),
    )
}

#: The model's own bands (Llama3-MS-CLIP): the 10 and 20 m bands of L2A.
S2_10 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: True-colour composite order, also where widening puts the RGB filters of a CLIP checkpoint.
RGB = ("B04", "B03", "B02")

#: Named channel orders of the files people have. EuroSAT-MS stores B8A *last*.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "L2A": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
    "L1C": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"),
    "EuroSAT": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"),
    "S2-10": S2_10,
    "RGB": RGB,
}

#: Layout assumed from the band count alone when the file names no bands and the user names no layout.
DEFAULT_LAYOUT_BY_COUNT = {12: "L2A", 13: "L1C", 10: "S2-10", 3: "RGB"}

#: Since processing baseline 04.00 (products from 2022-01-25 on) L2A digital numbers carry +1000.
BOA_OFFSET = 1000
BASELINE_04_START = "2022-01-25"

_BAND_RE = re.compile(r"^\s*B0?(\d{1,2}A?)\b", re.IGNORECASE)


def normalize_band_name(name: str) -> str | None:
    """'b2', 'B02', 'B8a', 'B02 (blue)' -> canonical 'B02'/'B8A'; None when it names no Sentinel-2 band."""
    match = _BAND_RE.match(str(name))
    if not match:
        return None
    code = match.group(1).upper()
    canonical = "B8A" if code == "8A" else f"B{int(code):02d}"
    return canonical if canonical in BANDS else None


def resolve_layout(
    layout: str | None, bands: list[str] | tuple[str, ...] | None, count: int
) -> tuple[str, ...]:
    """Band names of a file's channels: an explicit ``bands`` list beats a named layout beats the count."""
    if bands:
        names = tuple(require_band(b) for b in bands)
        source = f"--input-bands ({len(names)} names)"
    elif layout:
        key = layout_key(layout)
        names = LAYOUTS[key]
        source = f"layout {key} ({len(names)} bands)"
    else:
        if count not in DEFAULT_LAYOUT_BY_COUNT:
            raise MSClipError(
                f"cannot tell the bands of a {count}-channel image: pass --layout "
                f"({', '.join(LAYOUTS)}) or --input-bands"
            )
        return LAYOUTS[DEFAULT_LAYOUT_BY_COUNT[count]]
    if len(names) != count:
        raise MSClipError(f"{source} does not match the image's {count} channels")
    return names


def select_bands(array: np.ndarray, file_bands: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray:
    """Channels of ``array`` (C, H, W) in the order of ``wanted``, matched by name."""
    missing = [b for b in wanted if b not in file_bands]
    if missing:
        raise MSClipError(
            f"image lacks band(s) {', '.join(missing)} needed by the model (it has {', '.join(file_bands)})"
        )
    index = [file_bands.index(b) for b in wanted]
    return array[index]


def remove_boa_offset(array: np.ndarray, offset: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Subtract the baseline-04.00 offset from valid pixels, clipping at 0 (dark pixels, never negative).

    Nodata pixels (``valid`` False) are left untouched so that they stay recognisable as nodata.
    """
    if not offset:
        return array
    out = np.clip(array.astype(np.float32) - offset, 0, None)
    if valid is not None:
        out = np.where(valid, out, array.astype(np.float32))
    return out


def layout_key(layout: str) -> str:
    for key in LAYOUTS:
        if key.lower() == layout.lower():
            return key
    raise MSClipError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")


def require_band(name: str) -> str:
    canonical = normalize_band_name(name)
    if canonical is None:
        raise MSClipError(f"unknown Sentinel-2 band {name!r}; known bands: {', '.join(BANDS)}")
    return canonical
