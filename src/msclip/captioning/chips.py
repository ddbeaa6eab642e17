"""Chips as the captioner sees them: a footprint on the ground (WGS84) and a true-colour view for the VLM."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import shapely
from PIL import Image

from msclip.bands import RGB, select_bands
from msclip.data import valid_mask
from msclip.errors import MSClipError, SkippedImage
from msclip.io import Raster
from msclip.sources import CENTER_TAGS, ChipFile, Source, ZarrSample, opened_zarr, zarr_files

#: SSL4EO-S12 v1.1 samples: 264 x 264 pixels at 10 m around the metadata's centre.
SSL4EO_SIZE_PX = 264
SSL4EO_RESOLUTION_M = 10.0
#: LLaVA-NeXT's base crop is 336 px; twice that lets its any-resolution tiling see the full chip.
VIEW_SIZE = 672


@dataclass(frozen=True)
class ChipSource:
    """One image to caption, not yet read: ``key`` holds its output identity columns (``image``, or
    ``file``/``sample_id``/``time_id``) so finished chips are skipped without opening them."""

    key: dict[str, str]
    load: Callable[[], tuple[shapely.Polygon, Image.Image]]

    @property
    def id(self) -> str:
        return "|".join(str(v) for v in self.key.values())


def footprint(raster: Raster) -> shapely.Polygon:
    """The raster's bounds as a WGS84 polygon (edges densified so UTM -> lon/lat stays exact enough)."""
    if raster.crs is None or raster.bounds is None:
        raise SkippedImage(f"{raster.path}: not georeferenced (no CRS), so it has no footprint")
    return to_wgs84(shapely.box(*raster.bounds), raster.crs)


def ssl4eo_footprint(lat: float, lon: float, crs: str, size_px: int = SSL4EO_SIZE_PX) -> shapely.Polygon:
    """Footprint of an SSL4EO-S12 sample from its metadata: a square of ``size_px`` x 10 m centred in ``crs``."""
    x, y = _transformer("EPSG:4326", crs).transform(lon, lat)
    half = size_px * SSL4EO_RESOLUTION_M / 2
    return to_wgs84(shapely.box(x - half, y - half, x + half, y + half), crs)


def to_wgs84(geometry: shapely.Geometry, crs: str) -> shapely.Geometry:
    transformer = _transformer(crs, "EPSG:4326")
    dense = shapely.segmentize(geometry, max_segment_length=_span(geometry) / 16)
    return shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=64)
def _transformer(source: str, target: str):
    """pyproj transformers are slow to build and a dataset has few CRSs (one per UTM zone)."""
    from pyproj import Transformer

    return Transformer.from_crs(source, target, always_xy=True)


def _span(geometry: shapely.Geometry) -> float:
    minx, miny, maxx, maxy = geometry.bounds
    return max(maxx - minx, maxy - miny, 1e-9)


def rgb_view(
    raster: Raster, size: int = VIEW_SIZE, percentiles: tuple[float, float] = (2.0, 98.0)
) -> Image.Image:
    """True colour (B04 B03 B02) with a per-band percentile stretch over valid pixels, upsampled to ``size``.

    A robust stretch, not a fixed 0-3000 scale, because the VLM needs contrast in dark water and bright
    snow alike; nodata pixels stay black.
    """
    array = raster.array if raster.is_rgb8 else select_bands(raster.array, raster.bands, RGB)
    valid = valid_mask(array, raster.nodata)
    if not valid.any():
        raise SkippedImage(f"{raster.path}: no valid pixels (all nodata or NaN)")
    out = np.zeros(array.shape, dtype=np.uint8)
    for band, channel in zip(array.astype(np.float32), out, strict=True):
        low, high = np.percentile(band[valid], percentiles)
        scaled = (band - low) / max(high - low, 1e-6) * 255.0
        channel[...] = np.where(valid, np.clip(scaled, 0, 255), 0).round().astype(np.uint8)
    image = Image.fromarray(out.transpose(1, 2, 0), mode="RGB")
    return image.resize((size, size), Image.Resampling.BICUBIC) if size else image


def geotiff_sources(
    paths: list[str], layout: str | None = None, bands: list[str] | None = None, view_size: int = VIEW_SIZE
) -> list[ChipSource]:
    """Chips from GeoTIFF files (any layout msclip.io reads); the footprint comes from the file's CRS."""
    return [
        ChipSource({"image": os.fspath(p)}, partial(_load_geotiff, p, layout, bands, view_size))
        for p in paths
    ]


def _load_geotiff(path: str, layout, bands, view_size: int) -> tuple[shapely.Polygon, Image.Image]:
    raster = _read(ChipFile(path, layout, tuple(bands) if bands else None))
    return footprint(raster), _view(raster, view_size)


def _read(source: Source) -> Raster:
    """The source's pixels; any problem with them skips this chip, named."""
    try:
        return source.read()
    except SkippedImage:
        raise
    except MSClipError as exc:  # a file whose channels cannot be named is skipped, not fatal
        raise SkippedImage(f"{source.name}: {exc}") from exc


def _view(raster: Raster, view_size: int) -> Image.Image:
    try:
        return rgb_view(raster, view_size)
    except SkippedImage:
        raise
    except MSClipError as exc:  # a file without RGB bands is skipped, not fatal
        raise SkippedImage(f"{raster.path}: {exc}") from exc


def ssl4eo_sources(path: str | os.PathLike, view_size: int = VIEW_SIZE) -> list[ChipSource]:
    """Every (file, sample, timestamp) of SSL4EO-S12 v1.1 Zarr files (:class:`msclip.sources.ZarrSample`);
    footprints come from the per-sample metadata (centre lat/lon, UTM CRS, 264 x 264 px at 10 m)."""
    sources = []
    for file in zarr_files(Path(path)):
        ds = opened_zarr(str(file))
        stem = file.name.split(".")[0]
        for sample_index, sample_id in enumerate(ds["sample"].values):
            for time_index in range(ds.sizes["time"]):
                key = {"file": stem, "sample_id": str(sample_id), "time_id": str(time_index)}
                sample = ZarrSample(str(file), sample_index, time_index, str(sample_id))
                sources.append(ChipSource(key, partial(_load_ssl4eo, sample, view_size)))
    return sources


def chip_sources(
    inputs: list[str], layout: str | None = None, bands: list[str] | None = None, view_size: int = VIEW_SIZE
) -> list[ChipSource]:
    """SSL4EO-S12 Zarr files (``*.zarr.zip``, ``*.zarr``, or folders of them) and GeoTIFF chips, in one list."""
    from msclip.io import iter_paths

    zarr_inputs = [i for i in inputs if _is_zarr(Path(i))]
    tiffs = [i for i in inputs if i not in zarr_inputs]
    sources = [s for i in zarr_inputs for s in ssl4eo_sources(i, view_size)]
    return sources + (geotiff_sources(iter_paths(tiffs), layout, bands, view_size) if tiffs else [])


def _is_zarr(path: Path) -> bool:
    if path.name.endswith((".zarr", ".zarr.zip")):
        return True
    return path.is_dir() and (any(path.glob("*.zarr.zip")) or any(path.glob("*.zarr")))


def _load_ssl4eo(sample: ZarrSample, view_size: int) -> tuple[shapely.Polygon, Image.Image]:
    raster = _read(sample)
    if raster.crs is None or not set(CENTER_TAGS) <= set(raster.tags):
        raise SkippedImage(f"{sample.name}: no centre or CRS in the Zarr metadata, so it has no footprint")
    lat, lon = (float(raster.tags[tag]) for tag in CENTER_TAGS)
    return ssl4eo_footprint(lat, lon, raster.crs), _view(raster, view_size)
