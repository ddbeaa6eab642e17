"""Everything that yields pixels, as one kind of object: a :class:`Source` has a ``name`` (what a skip or an
output row names) and ``read() -> Raster``.

Kinds: a chip file (:class:`ChipFile`), the per-band files of one patch (:class:`BandFiles`, BigEarthNet),
per-resolution arrays of one image (:class:`BandArrays`, METER-ML), a sample of a Zarr cube
(:class:`ZarrSample`, SSL4EO-S12), a window of a scene (:class:`SceneWindow`) and pixels already in memory
(:class:`InMemory`: a WebDataset sample, an upload). Capabilities choose their sources; reading, the Raster
(:func:`msclip.io.make_raster`) and the resampling of 20/60 m bands (:mod:`msclip.resample`) happen here.
Sources are plain data, so they pickle to DataLoader workers, which open the files themselves.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from msclip.bands import BOA_OFFSET, normalize_band_name
from msclip.errors import MSClipError, SkippedImage
from msclip.io import Raster, make_raster, read
from msclip.resample import read_resized, resize_array


class Source(Protocol):
    """Something that yields the pixels of one image."""

    @property
    def name(self) -> str: ...

    def read(self) -> Raster: ...


@dataclass(frozen=True)
class ChipFile:
    """A chip file (GeoTIFF, npy/npz, PNG/JPEG); ``layout``/``bands`` name its channels when it does not."""

    path: str
    layout: str | None = None
    bands: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.path

    def read(self) -> Raster:
        return read(self.path, self.layout, list(self.bands) if self.bands else None)


@dataclass(frozen=True)
class BandFiles:
    """Single-band GeoTIFFs of one patch named ``..._B02.tif`` (BigEarthNet), stacked on ``size`` x ``size``
    pixels (default: the largest band's width), coarser bands resampled by :func:`msclip.resample.read_resized`.
    Georeference comes from a band already at that size, so bounds stay right."""

    paths: tuple[str, ...]
    size: int | None = None

    @property
    def name(self) -> str:
        return str(Path(self.paths[0]).parent)

    def read(self) -> Raster:
        import rasterio

        named = [(b, p) for b, p in ((_band_of_file(p), p) for p in self.paths) if b]
        if not named:
            raise SkippedImage(f"{self.name}: no band files named *_B01.tif ... *_B12.tif")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # plain band files lack georeference; the stack needs none
                files = [rasterio.open(p) for _, p in named]
                try:
                    return self._stack(files, tuple(b for b, _ in named))
                finally:
                    for file in files:
                        file.close()
        except rasterio.errors.RasterioError as exc:
            raise SkippedImage(f"{self.name}: cannot read ({exc})") from exc

    def _stack(self, files: list, bands: tuple[str, ...]) -> Raster:
        size = self.size or max(f.width for f in files)
        layers = [read_resized(f, size, size) for f in files]
        reference = next((f for f in files if f.width == size and f.crs is not None), None)
        georef: dict[str, Any] = {}
        if reference is not None:
            georef = {"crs": reference.crs.to_string(), "transform": tuple(reference.transform)[:6]}
        return make_raster(np.stack(layers), self.name, bands, **georef)


def _band_of_file(path: str) -> str | None:
    return normalize_band_name(Path(path).stem.rsplit("_", 1)[-1])


@dataclass(frozen=True)
class BandArrays:
    """Channels-last arrays of one image at several resolutions (METER-ML's ``sentinel-2-{10,20,60}m.npy``),
    the bands each holds; stacked on the first array's grid by :func:`msclip.resample.resize_array`."""

    paths: tuple[str, ...]
    bands: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return str(Path(self.paths[0]).parent)

    def read(self) -> Raster:
        try:
            arrays = [np.load(p, allow_pickle=False) for p in self.paths]
        except (OSError, ValueError) as exc:
            raise SkippedImage(f"{self.name}: cannot read ({exc})") from exc
        rasters = [
            make_raster(a, p, b, channels_last=True)
            for a, p, b in zip(arrays, self.paths, self.bands, strict=True)
        ]
        height, width = rasters[0].array.shape[-2:]
        layers = [resize_array(r.array, height, width) for r in rasters]
        return make_raster(np.concatenate(layers), self.name, tuple(b for r in rasters for b in r.bands))


#: SSL4EO-S12 v1.1 Zarr: the data variable (sample, time, band, y, x) and the metadata read with a sample.
ZARR_DATA_VARIABLE = "bands"
#: Raster tags that carry a Zarr sample's centre (the captioner draws its footprint from them).
CENTER_TAGS = ("CENTER_LAT", "CENTER_LON")


def open_zarr(path: str | Path):
    """A Zarr dataset from a ``.zarr.zip`` file or a ``.zarr`` folder, lazily (nothing read yet)."""
    import xarray as xr
    import zarr

    path = str(path)
    store = zarr.storage.ZipStore(path, mode="r") if path.endswith(".zip") else path
    try:
        return xr.open_zarr(store, consolidated=None)
    except Exception as exc:
        raise MSClipError(f"{path}: not a readable Zarr dataset ({type(exc).__name__}: {exc})") from exc


def zarr_files(path: str | Path) -> list[Path]:
    """The SSL4EO-S12 Zarr files at ``path``: a ``.zarr.zip`` file, a ``.zarr`` folder, or a folder of them."""
    path = Path(path)
    if path.is_dir() and not path.name.endswith(".zarr"):
        files = sorted([*path.glob("*.zarr.zip"), *path.glob("*.zarr")])
    else:
        files = [path]
    if not files or not files[0].exists():
        raise MSClipError(f"no SSL4EO-S12 Zarr files (*.zarr.zip) at {path}")
    return files


_OPEN_ZARR: dict[tuple[int, str], Any] = {}


def opened_zarr(path: str):
    """``path`` opened once per process (a forked worker must not share its parent's file handle)."""
    key = (os.getpid(), path)
    if key not in _OPEN_ZARR:
        _OPEN_ZARR[key] = open_zarr(path)
    return _OPEN_ZARR[key]


@dataclass(frozen=True)
class ZarrSample:
    """One (sample, timestamp) of an SSL4EO-S12 v1.1 Zarr file: its bands, CRS, centre and BOA offset."""

    file: str
    sample_index: int
    time_index: int
    sample_id: str = ""

    @property
    def name(self) -> str:
        return f"{Path(self.file).name}:{self.sample_id}:{self.time_index}"

    def read(self) -> Raster:
        ds = opened_zarr(self.file)
        try:
            data = ds[ZARR_DATA_VARIABLE].isel(sample=self.sample_index, time=self.time_index)
            array = np.asarray(data.transpose("band", "y", "x").values)
            bands = tuple(normalize_band_name(b) or str(b) for b in ds["band"].values)
            tags = {"BOA_ADD_OFFSET": str(ds.attrs.get("BOA_ADD_OFFSET", -BOA_OFFSET))}
            for tag, variable in zip(CENTER_TAGS, ("center_lat", "center_lon"), strict=True):
                if variable in ds.variables:
                    tags[tag] = str(float(ds[variable].values[self.sample_index]))
            crs = ds["crs"].values[self.sample_index] if "crs" in ds.variables else None
        except (KeyError, ValueError, IndexError) as exc:
            raise SkippedImage(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        crs_name = f"EPSG:{int(crs)}" if crs is not None else None
        return make_raster(array, self.name, bands, crs=crs_name, tags=tags)


@dataclass(frozen=True)
class SceneWindow:
    """Window ``index`` of a scene, read through a :class:`msclip.scenes.source.SceneReader` (which puts
    20/60 m bands on the scene grid by :func:`msclip.resample.on_grid`)."""

    reader: Any
    index: int
    window: Any
    bands: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"window {self.index}"

    def read(self) -> Raster:
        return self.reader.read(self.window, self.bands)

    def read_scl(self) -> np.ndarray | None:
        return self.reader.read_scl(self.window)


@dataclass(frozen=True)
class InMemory:
    """Pixels already decoded (a WebDataset sample, an upload): channels first or last, named like a file's."""

    array: np.ndarray = field(repr=False)
    key: str
    layout: str | None = None
    bands: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.key

    def read(self) -> Raster:
        return make_raster(self.array, self.key, (), self.layout, self.bands, channels_last=None)
