"""From a file on disk to the array a model's transform takes: bands by name, offset removed, gaps filled.

The :class:`SourceDataset` runs this in DataLoader workers for every capability; a bad input becomes the
failure record that the caller reports and skips, so one corrupt chip never stops a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from msclip.bands import (
    BASELINE_04_START,
    BOA_OFFSET,
    RGB,
    layout_key,
    remove_boa_offset,
    require_band,
    select_bands,
)
from msclip.errors import BoaOffsetWarning, MSClipError, SkippedImage, describe_failure
from msclip.io import Raster
from msclip.sources import ChipFile, Source

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
    """How to interpret input files: their channel order and the baseline-04.00 offset.

    Checked when made (the CLI, the app and the API all build one), so a wrong value is one clear error
    before any file is read; layout and band names are stored in their canonical spelling.
    """

    layout: str | None = None
    bands: tuple[str, ...] | None = None
    boa_offset: str | int = "auto"  # "auto", "0", "1000" or a number

    def __post_init__(self) -> None:
        if self.layout:
            object.__setattr__(self, "layout", layout_key(self.layout))
        if self.bands:
            object.__setattr__(self, "bands", tuple(require_band(b) for b in self.bands))
        if str(self.boa_offset) not in BOA_OFFSET_CHOICES:
            raise MSClipError(f"BOA offset must be {', '.join(BOA_OFFSET_CHOICES)}, not {self.boa_offset!r}")


#: What ``--boa-offset`` takes: read it from the file, or remove a known offset (DN).
BOA_OFFSET_CHOICES = ("auto", "0", str(BOA_OFFSET))


#: Bands whose dark pixels show whether a file can carry the offset (water, shadow and vegetation are dark there).
VISIBLE_BANDS = ("B02", "B03", "B04")
#: With the offset only negative reflectance (rare) lies below 1000 DN; from this share of the valid pixels'
#: visible-band values below it on, a file cannot carry the offset (it was harmonised before it reached us).
BELOW_OFFSET_SHARE = 0.05


@dataclass(frozen=True)
class OffsetDecision:
    """The offset subtracted from one image and what decided it, recorded per image in outputs.

    ``source``: ``option`` (given explicitly), ``tag`` (BOA_ADD_OFFSET), ``baseline`` (PROCESSING_BASELINE),
    ``date`` (the acquisition date alone: before 2022-01-25, or no visible band to check),
    ``date+data`` (a date since then, and data that can carry the offset), ``data`` (a date since then, but
    data that cannot carry it: not subtracted), ``none`` (nothing says: 0). ``contradicted``: a tag announced
    the offset but the data cannot carry it (the tag is trusted; callers warn).
    """

    offset: int
    source: str
    contradicted: bool = False


def decide_boa_offset(
    tags: dict[str, str], option: str | int = "auto", below_share: Callable[[], float | None] = lambda: None
) -> OffsetDecision:
    """The offset to subtract: given explicitly, else from the tags, checked against the data.

    ``auto`` trusts, in order: a BOA_ADD_OFFSET tag, a PROCESSING_BASELINE tag, an acquisition date
    (products from 2022-01-25 carry the offset), but a date is overruled by data that cannot carry the
    offset. ``below_share`` gives the share of valid visible-band values below the offset (None: no visible
    band); it is only called when the data is consulted, so a scene is read only when needed.
    """
    if str(option) != "auto":
        try:
            return OffsetDecision(int(option), "option")
        except ValueError:
            raise MSClipError(f"--boa-offset must be auto, 0 or 1000, not {option!r}") from None
    if "BOA_ADD_OFFSET" in tags:
        return _trusted(-int(float(tags["BOA_ADD_OFFSET"])), "tag", below_share)
    if "PROCESSING_BASELINE" in tags:
        baseline_offset = BOA_OFFSET if float(tags["PROCESSING_BASELINE"]) >= 4.0 else 0
        return _trusted(baseline_offset, "baseline", below_share)
    acquired = acquisition_time(tags)
    if acquired is None:
        return OffsetDecision(0, "none")
    if acquired.strftime("%Y-%m-%d") < BASELINE_04_START:
        return OffsetDecision(0, "date")
    share = below_share()
    if share is None:
        return OffsetDecision(BOA_OFFSET, "date")
    if share >= BELOW_OFFSET_SHARE:
        return OffsetDecision(0, "data")
    return OffsetDecision(BOA_OFFSET, "date+data")


def _trusted(offset: int, source: str, below_share: Callable[[], float | None]) -> OffsetDecision:
    """A tag's word, flagged when it announces the offset and the data cannot carry it."""
    contradicted = offset > 0 and (below_share() or 0.0) >= BELOW_OFFSET_SHARE
    return OffsetDecision(offset, source, contradicted)


def below_offset_share(array: np.ndarray, bands: tuple[str, ...], valid: np.ndarray) -> float | None:
    """Share of the valid pixels' visible-band values below the offset; None without a visible band."""
    visible = tuple(b for b in VISIBLE_BANDS if b in bands)
    if not visible or not valid.any():
        return None
    values = select_bands(array, bands, visible)[:, valid]
    return float((values < BOA_OFFSET).mean())


def offset_decision(
    raster: Raster, option: str | int = "auto", valid: np.ndarray | None = None
) -> OffsetDecision:
    """:func:`decide_boa_offset` for one image, its data checked on the ``valid`` pixels (default: not nodata)."""

    def below_share() -> float | None:
        mask = valid_mask(raster.array, raster.nodata) if valid is None else valid
        return below_offset_share(raster.array, raster.bands, mask)

    return decide_boa_offset(raster.tags, option, below_share)


def warn_offset_decisions(decisions: dict[str, OffsetDecision]) -> None:
    """Once per run: how many images the data kept from subtracting, and which tags the data contradicts."""
    by_data = [name for name, d in decisions.items() if d.source == "data"]
    contradicted = [name for name, d in decisions.items() if d.contradicted]
    rule = f">= {BELOW_OFFSET_SHARE:.0%} of the valid {'/'.join(VISIBLE_BANDS)} values below {BOA_OFFSET}"
    if by_data:
        warnings.warn(
            f"{len(by_data)} image(s) dated on or after {BASELINE_04_START} cannot carry the +{BOA_OFFSET} "
            f"BOA offset ({rule}): not subtracted (boa_offset_source 'data'; --boa-offset {BOA_OFFSET} "
            f"subtracts anyway), e.g. {by_data[0]}",
            BoaOffsetWarning,
            stacklevel=2,
        )
    if contradicted:
        warnings.warn(
            f"{len(contradicted)} image(s) tagged with the +{BOA_OFFSET} BOA offset hold data that cannot "
            f"carry it ({rule}): subtracted as tagged, dark pixels clip at 0 (--boa-offset 0 keeps them), "
            f"e.g. {contradicted[0]}",
            BoaOffsetWarning,
            stacklevel=2,
        )


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


@dataclass
class Prepared:
    """A model-ready array, the share of its pixels that were filled, and the offset decision behind it."""

    array: np.ndarray
    filled: float
    offset: OffsetDecision = field(default_factory=lambda: OffsetDecision(0, "none"))


def prepare_image(raster: Raster, bands: tuple[str, ...], options: InputOptions) -> Prepared:
    """Model-ready float32 reflectance (len(bands), H, W), the filled share and the offset decision.

    ``bands == RGB`` with 8-bit pictures or multispectral files gives a uint8 true-colour image instead.
    """
    if bands == RGB and raster.is_rgb8:
        return Prepared(raster.array, 0.0)
    array = select_bands(raster.array, raster.bands, bands)
    valid = valid_mask(array, raster.nodata)
    valid_fraction = float(valid.mean())
    if valid_fraction == 0:
        raise SkippedImage(f"{raster.path}: no valid pixels (all nodata or NaN)")
    decision = offset_decision(raster, options.boa_offset, valid)
    array = remove_boa_offset(array, decision.offset, valid)
    array = fill_gaps(array.astype(np.float32, copy=False), valid)
    if bands == RGB:
        array = rgb_composite(array)
    return Prepared(array, 1.0 - valid_fraction, decision)


def prepare(raster: Raster, bands: tuple[str, ...], options: InputOptions) -> tuple[np.ndarray, float]:
    """:func:`prepare_image` for callers that need only the array and the filled share."""
    prepared = prepare_image(raster, bands, options)
    return prepared.array, prepared.filled


def rgb_composite(reflectance: np.ndarray) -> np.ndarray:
    """8-bit true colour from reflectance x 10000 (B04, B03, B02), clipped, never wrapped around."""
    scaled = np.clip(reflectance / RGB_COMPOSITE_MAX * 255.0, 0, 255)
    return np.round(scaled).astype(np.uint8)


class SourceDataset(Dataset):
    """Sources -> records, the one Dataset of every capability: ``{"index", "name", **prepare(source)}`` for a
    usable source, the failure record ``{"index", "name", "error"}`` for one that fails, whatever failed.

    ``prepare`` reads the source and returns the record's fields (at least ``image``); it may also return an
    ``error`` field itself for a deliberate skip (a scene window without enough valid data).
    """

    def __init__(self, sources: Sequence[Source], prepare: Callable[[Any], dict]):
        self.sources = sources
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        source = self.sources[index]
        try:
            return {"index": index, "name": source.name, **self.prepare(source)}
        except Exception as exc:  # whatever failed for this input skips it, named, not the batch
            return failure_record(index, source.name, exc)


def failure_record(index: int, name: str, exc: BaseException) -> dict:
    """The one record of an input that could not be used: its position, its name and one line why."""
    return {"index": index, "name": name, "error": describe_failure(name, exc)}


def collate_records(records: list[dict]) -> dict:
    """The one collate: the usable records' fields as lists (``image`` stacked, None when there is none) and
    the failure records, whole, under ``failed``."""
    good = [r for r in records if "error" not in r]
    keys = dict.fromkeys(key for r in good for key in r if key != "image")
    batch: dict = {key: [r.get(key) for r in good] for key in ("index", "name", *keys)}
    batch["image"] = torch.stack([r["image"] for r in good]) if good else None
    batch["failed"] = [r for r in records if "error" in r]
    return batch


@dataclass(frozen=True)
class ForModel:
    """A source as a model takes it (picklable, for DataLoader workers): bands by name, offset removed, gaps
    filled, the model's transform; with its georeference, date and offset decision.

    ``scene_side``: rasters this large on a side are scenes, refused (embed gives them windows elsewhere).
    """

    bands: tuple[str, ...]
    transform: Callable
    options: InputOptions
    scene_side: int | None = None

    def __call__(self, source: Source) -> dict:
        raster = source.read()
        if self.scene_side and max(raster.array.shape[-2:]) >= self.scene_side:
            raise SkippedImage(
                f"{source.name}: a scene, not a chip; embed its windows with `msclip embed` or "
                "msclip.scenes.embed_scene(model, msclip.scenes.open_scene(path))"
            )
        prepared = prepare_image(raster, self.bands, self.options)
        return {
            "image": self.transform(prepared.array),
            "filled": prepared.filled,
            "boa_offset": prepared.offset,
            "crs": raster.crs,
            "bounds": raster.bounds,
            "datetime": acquisition_time(raster.tags),
        }


def chip_dataset(
    paths: Sequence[str],
    bands: tuple[str, ...],
    transform,
    options: InputOptions,
    scene_side: int | None = None,
) -> SourceDataset:
    """Chip files as model-ready records (see :class:`ForModel`)."""
    sources = [ChipFile(path, options.layout, options.bands) for path in paths]
    return SourceDataset(sources, ForModel(bands, transform, options, scene_side))


def chip_loader(dataset, device: str, batch_size: int, workers: int | None = None):
    """The one DataLoader of source records: in order, bad records kept for the report, reader processes
    only where the machine has cores to spare for them (see :func:`msclip.runtime.reader_processes`)."""
    from torch.utils.data import DataLoader

    from msclip.runtime import reader_processes

    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=reader_processes(len(dataset)) if workers is None else workers,
        collate_fn=collate_records,
        shuffle=False,
        pin_memory=device.startswith("cuda"),
    )
