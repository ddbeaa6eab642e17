"""Whole scenes as sets of band files on one grid, read window by window (memory bounded by the window).

A scene is a multi-band GeoTIFF/COG, a Sentinel-2 L2A ``.SAFE`` folder, a folder of per-band JP2/COG files,
or a STAC item (JSON file or URL). Bands are found by name; 20 and 60 m bands are resampled on the fly to
the finest grid (a GDAL warped VRT, by the rule of :mod:`msclip.resample`), so a window is read the same
way whatever the band's resolution.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from msclip.bands import normalize_band_name, resolve_layout
from msclip.data import acquisition_time
from msclip.errors import MSClipError, SkippedImage, describe_failure
from msclip.io import Raster, make_raster
from msclip.resample import on_grid, stored

#: Scene classification (SCL) classes that hide the ground: cloud shadow, cloud medium/high, thin cirrus.
SCL_CLOUD = (3, 8, 9, 10)
#: SCL classes without a usable pixel: no data, saturated or defective.
SCL_INVALID = (0, 1)
#: GDAL block cache per reading process: a row of 512 px blocks across a 12-band 10,980 px scene is 135 MB,
#: so consecutive rows of windows find their blocks in it, and memory stays bounded whatever the scene.
READ_CACHE_MB = 256
#: Longer side (px) of the decimated view a scene's offset decision looks at (overviews when the file has them).
OVERVIEW_PX = 512
#: STAC asset keys (Earth Search, Planetary Computer) -> band names.
STAC_ASSETS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
    "scl": "SCL",
}  # fmt: skip
_BAND_FILE = re.compile(r"(?:^|[_.-])(B\d[\dA]|SCL)(?:_(\d+)m)?(?=[_.-]|$)", re.IGNORECASE)
_BAND_SUFFIXES = {".jp2", ".tif", ".tiff"}


@dataclass(frozen=True)
class BandSource:
    """Where one band lives: a file (or URL) and the 1-based band number in it."""

    href: str
    index: int = 1


@dataclass
class Scene:
    """A scene's bands by name on one grid (the finest band's): CRS, transform, size, offset tags.

    Plain data, so it pickles to DataLoader workers and Dask tasks, which open the files themselves.
    """

    name: str
    bands: dict[str, BandSource]
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int
    nodata: float | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def datetime(self) -> pd.Timestamp | None:
        """Acquisition time (UTC) from the scene's metadata, when it says."""
        return acquisition_time(self.tags)

    @property
    def resolution(self) -> float:
        return abs(self.transform[0])

    def require(self, names: tuple[str, ...]) -> None:
        missing = [b for b in names if b not in self.bands]
        if missing:
            raise MSClipError(
                f"{self.name}: no band {', '.join(missing)} (has {' '.join(sorted(self.bands))})"
            )


def open_scene(location: str, layout: str | None = None, bands: list[str] | None = None) -> Scene:
    """A scene from a raster file, a .SAFE or per-band folder, or a STAC item (.json file or URL).

    A scene that cannot be opened is a :class:`SkippedImage` naming it, whatever library failed.
    """
    try:
        return _open_scene(location, layout, bands)
    except MSClipError:
        raise
    except Exception as exc:
        raise SkippedImage(describe_failure(location, exc)) from exc


def _open_scene(location: str, layout: str | None, bands: list[str] | None) -> Scene:
    if location.startswith(("http://", "https://")) or location.lower().endswith(".json"):
        return _stac_scene(location)
    path = Path(location).resolve()  # absolute: outputs and indexes are read from elsewhere
    if path.is_dir():
        return _folder_scene(path)
    if not path.is_file():
        raise MSClipError(f"scene not found: {location}")
    return _raster_scene(str(path), layout, bands)


def is_scene(location: str, chip_size: int) -> bool:
    """Whether an input is a whole scene rather than a chip: a SAFE/per-band folder, a STAC item, or a
    raster at least twice the model's chip size on a side (smaller ones are resized like chips)."""
    return input_kind(location, chip_size) == "scene"


def input_kind(location: str, chip_size: int) -> Literal["scene", "chip", "unreadable"]:
    """``is_scene`` that tells apart a file it could not open: that one is neither, and is skipped with
    whichever kind of inputs it came with (a corrupt scene among scenes is not "a chip")."""
    if location.startswith(("http://", "https://")) or location.lower().endswith(".json"):
        return "scene"
    path = Path(location)
    if path.is_dir():
        return "scene" if _is_safe(path) or {"B02", "B03", "B04"} <= set(_band_files(path)) else "chip"
    if path.suffix.lower() not in {".tif", ".tiff", ".jp2", ".vrt"} or not path.is_file():
        return "chip"
    try:
        with _quiet(), rasterio.open(path) as src:
            return "scene" if max(src.width, src.height) >= 2 * chip_size else "chip"
    except rasterio.errors.RasterioError:
        return "unreadable"


def _raster_scene(path: str, layout: str | None, bands: list[str] | None) -> Scene:
    """One multi-band file; band names from ``bands``/``layout``, else its descriptions, else its band count."""
    with _quiet(), rasterio.open(path) as src:
        if src.crs is None:
            raise MSClipError(f"{path}: a scene needs a georeferenced raster (no CRS)")
        described = [d.strip().upper() if d else "" for d in src.descriptions]
        scl = described.index("SCL") + 1 if "SCL" in described else None
        count = src.count - (scl is not None)
        names = [
            normalize_band_name(d) if d else None for i, d in enumerate(src.descriptions) if i + 1 != scl
        ]
        if bands or layout or not all(names) or len(set(names)) != len(names):
            names = list(resolve_layout(layout, bands, count))
        indexes = [i for i in range(1, src.count + 1) if i != scl]
        named = cast(list[str], names)  # every channel has a name by now
        sources = {name: BandSource(path, i) for name, i in zip(named, indexes, strict=True)}
        if scl:
            sources["SCL"] = BandSource(path, scl)
        tags = {k.upper(): v for k, v in src.tags().items()}
        offsets = {src.tags(i).get("BOA_ADD_OFFSET") for i in indexes} - {None}
        if offsets:
            tags["BOA_ADD_OFFSET"] = offsets.pop()
        return Scene(
            path,
            sources,
            src.crs.to_string(),
            tuple(src.transform)[:6],
            src.width,
            src.height,
            src.nodata,
            tags,
        )


def _folder_scene(path: Path) -> Scene:
    """A .SAFE product (bands under GRANULE/*/IMG_DATA) or any folder of per-band files; finest file per band."""
    found = _band_files(path, recursive=_is_safe(path))
    if not found:
        raise MSClipError(f"{path}: no band files (names with B02, B8A, SCL, ...) in this folder")
    tags = _safe_tags(path)
    return _grid_scene(str(path), {name: BandSource(str(f)) for name, f in found.items()}, tags)


def _is_safe(folder: Path) -> bool:
    return folder.suffix.upper() == ".SAFE" or (folder / "MTD_MSIL2A.xml").is_file()


def _band_files(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """Band name -> file, preferring the finest resolution when a band comes at several (as in SAFE R10m/R20m)."""
    best: dict[str, tuple[int, Path]] = {}
    for file in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        match = _BAND_FILE.search(file.stem)
        if not match or file.suffix.lower() not in _BAND_SUFFIXES or "QI_DATA" in file.parts:
            continue
        name = match.group(1).upper()
        name = "SCL" if name == "SCL" else normalize_band_name(name)
        resolution = int(match.group(2) or 0)
        if name and (name not in best or resolution < best[name][0]):
            best[name] = (resolution, file)
    return {name: file for name, (_, file) in best.items()}


def _safe_tags(folder: Path) -> dict[str, str]:
    """Processing baseline, BOA offset and start time from a SAFE's MTD_MSIL2A.xml, when there is one."""
    metadata = next(iter(sorted(folder.glob("MTD_MSIL2A.xml"))), None)
    if metadata is None:
        return {}
    text = metadata.read_text(encoding="utf-8", errors="replace")
    tags = {}
    for key in ("PROCESSING_BASELINE", "BOA_ADD_OFFSET", "PRODUCT_START_TIME"):
        match = re.search(rf"<{key}\b[^>]*>([^<]+)</{key}>", text)
        if match:
            tags[key] = match.group(1).strip()
    return tags


def _stac_scene(href: str) -> Scene:
    """A STAC item's band assets (COGs); the offset from its processing baseline, or none if already removed."""
    import pystac

    try:
        item = pystac.Item.from_file(href)
    except Exception as exc:  # network errors, bad JSON, not an item: all mean "cannot use this input"
        raise SkippedImage(f"{href}: cannot read the STAC item ({type(exc).__name__}: {exc})") from exc
    sources = {}
    for key, asset in item.assets.items():
        name = STAC_ASSETS.get(key.lower()) or ("SCL" if key.upper() == "SCL" else normalize_band_name(key))
        if name and name not in sources:
            sources[name] = BandSource(asset.get_absolute_href() or asset.href)
    props = item.properties
    tags = {"DATETIME": str(props.get("datetime") or props.get("start_datetime") or "")}
    if "s2:processing_baseline" in props:
        tags["PROCESSING_BASELINE"] = str(props["s2:processing_baseline"])
    if props.get("earthsearch:boa_offset_applied") is True:
        tags["BOA_ADD_OFFSET"] = "0"  # Earth Search already removed it from the COGs
    return _grid_scene(href, sources, tags)


def _grid_scene(name: str, sources: dict[str, BandSource], tags: dict[str, str]) -> Scene:
    """A per-band scene on the grid of its finest reflectance band."""
    grids = []
    for band, source in sources.items():
        if band == "SCL":
            continue
        with _quiet(), rasterio.open(source.href) as src:
            grids.append((abs(src.transform.a), src.crs, src.transform, src.width, src.height, src.nodata))
    if not grids:
        raise MSClipError(f"{name}: no reflectance bands found")
    _, crs, transform, width, height, nodata = min(grids, key=lambda g: g[0])
    if crs is None:
        raise MSClipError(f"{name}: the band files carry no CRS")
    return Scene(name, sources, crs.to_string(), tuple(transform)[:6], width, height, nodata, tags)


class SceneReader:
    """Open band files of one scene (once per process) and read windows of named bands on the scene grid."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self._open: dict[tuple[str, bool], tuple] = {}  # (href, categorical) -> (file, view on scene grid)
        self._env: rasterio.Env | None = None

    def read(self, window: Window, bands: tuple[str, ...]) -> Raster:
        """(len(bands), h, w) array of a window; bands sharing a file are read together."""
        scene = self.scene
        scene.require(bands)
        out = np.empty((len(bands), int(window.height), int(window.width)), dtype=np.float32)
        by_file: dict[str, list[int]] = {}
        for i, band in enumerate(bands):
            by_file.setdefault(scene.bands[band].href, []).append(i)
        for href, positions in by_file.items():
            dataset = self._dataset(href, categorical=False)
            values = dataset.read([scene.bands[bands[i]].index for i in positions], window=window)
            out[positions] = stored(values, self._source_dtype(href))
        transform = _window_transform(scene, window)
        return make_raster(
            out, scene.name, bands, crs=scene.crs, transform=transform, nodata=scene.nodata, tags=scene.tags
        )

    def overview(self, bands: tuple[str, ...], size: int = OVERVIEW_PX) -> np.ndarray:
        """(len(bands), h, w) decimated view of the whole scene, at most ``size`` px a side: a cheap look."""
        scene = self.scene
        scene.require(bands)
        scale = max(scene.width, scene.height, size) / size
        shape = (max(1, round(scene.height / scale)), max(1, round(scene.width / scale)))
        out = np.empty((len(bands), *shape), dtype=np.float32)
        for i, band in enumerate(bands):
            source = scene.bands[band]
            out[i] = self._dataset(source.href, categorical=False).read(
                source.index, out_shape=shape, resampling=Resampling.nearest
            )
        return out

    def read_scl(self, window: Window) -> np.ndarray | None:
        """The window's scene classification (nearest-neighbour resampled), if the scene has one."""
        source = self.scene.bands.get("SCL")
        if source is None:
            return None
        return self._dataset(source.href, categorical=True).read(source.index, window=window)

    def _source_dtype(self, href: str) -> str:
        return self._open[(href, False)][0].dtypes[0]

    def _dataset(self, href: str, categorical: bool):
        key = (href, categorical)
        if self._env is None:  # GDAL's default block cache (5% of RAM) per process would dwarf a window
            self._env = rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB * 2**20)
            self._env.__enter__()
        if key not in self._open:
            with _quiet():
                src = rasterio.open(href)
            scene = self.scene
            view = on_grid(src, scene.crs, scene.transform, scene.width, scene.height, categorical)
            self._open[key] = (src, view)
        return self._open[key][1]

    def close(self) -> None:
        for src, view in self._open.values():
            if view is not src:
                view.close()
            src.close()
        self._open.clear()
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None

    def __getstate__(self) -> dict:  # open datasets do not pickle: each process opens its own
        return {"scene": self.scene, "_open": {}, "_env": None}


def _window_transform(scene: Scene, window: Window) -> tuple[float, ...]:
    a, b, c, d, e, f = scene.transform
    x, y = window.col_off, window.row_off
    return (a, b, c + a * x + b * y, d, e, f + d * x + e * y)


@contextlib.contextmanager
def _quiet():
    """Plain (non-georeferenced) band files are fine here: the scene grid comes from elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        yield
