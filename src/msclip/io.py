"""Readers for chips (GeoTIFF, npy/npz, PNG/JPEG), input lists, and atomic table writers.

A reader returns a :class:`Raster` and knows nothing of models: which bands a model needs is decided
later, by name, in :mod:`msclip.bands`.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from msclip.bands import RGB, normalize_band_name, resolve_layout
from msclip.errors import MSClipError, SkippedImage

RASTER_SUFFIXES = {".tif", ".tiff", ".npy", ".npz", ".png", ".jpg", ".jpeg", ".jp2"}
LIST_SUFFIXES = {".txt", ".yaml", ".yml"}

#: A chip whose shorter side exceeds this is read reduced (band averages, overviews when the file has
#: them): models resize to 224 px anyway, and a 10000 x 10000 file read whole takes gigabytes.
CHIP_READ_MAX_SIDE = 2048
#: Samples (bands x pixels) beyond which a file's header is refused before any pixel is read: more than
#: two full 12-band Sentinel-2 tiles is no chip (scenes go through ``msclip map`` / the scene API).
HEADER_MAX_SAMPLES = 3_000_000_000
#: GDAL's block cache while reading a chip (its default, 5% of RAM, kept 1.3 GB of blocks of a large chip).
READ_CACHE_BYTES = 128 * 2**20


@dataclass
class Raster:
    """An image as (C, H, W) array with the names of its bands and, when known, its georeference."""

    array: np.ndarray
    bands: tuple[str, ...]
    path: str = ""
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    nodata: float | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_rgb8(self) -> bool:
        """An 8-bit true-colour picture (PNG/JPEG or RGB GeoTIFF), not reflectance."""
        return self.array.dtype == np.uint8 and self.bands == RGB

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(left, bottom, right, top) in the raster's CRS, for north-up rasters."""
        if self.transform is None:
            return None
        a, _, c, _, e, f = self.transform[:6]
        height, width = self.array.shape[-2:]
        return (c, f + e * height, c + a * width, f)


def make_raster(
    array: np.ndarray,
    path: str,
    bands: tuple[str, ...] = (),
    layout: str | None = None,
    input_bands: list[str] | tuple[str, ...] | None = None,
    channels_last: bool | None = False,
    **georef,
) -> Raster:
    """The one way a Raster is made from pixels, whichever reader or source holds them.

    ``channels_last``: True for (H, W, C) arrays, None to tell by shape (``.npy`` files and shard samples
    come either way: the channel axis is the short one), False for (C, H, W). Band names: ``input_bands``
    (the user's), else ``layout``, else ``bands`` (what the source says), else the channel count.
    ``georef``: ``crs``, ``transform``, ``nodata``, ``tags``.
    """
    if channels_last is None:
        array = _channels_first(array, path)
    elif channels_last:
        array = np.ascontiguousarray(np.moveaxis(array, -1, 0))
    if input_bands or layout or not bands:
        bands = resolve_layout(layout, input_bands, array.shape[0])
    return Raster(array, tuple(bands), path, **georef)


def read(path: str | os.PathLike, layout: str | None = None, bands: list[str] | None = None) -> Raster:
    """Read one chip; band names come from ``bands``, else ``layout``, else the file, else the band count."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise SkippedImage(f"{path}: no such file")
    try:
        if suffix in {".tif", ".tiff", ".jp2"}:
            array, named, georef = _read_geotiff(path)
        elif suffix in {".npy", ".npz"}:
            array, named, georef = _read_numpy(path), (), {}
        elif suffix in {".png", ".jpg", ".jpeg"}:
            array, named, georef = _read_picture(path), RGB, {}
        else:
            raise SkippedImage(f"{path}: unsupported file type {suffix!r}")
    except (SkippedImage, MSClipError):
        raise
    except Exception as exc:  # any library's complaint about a corrupt file becomes a skip
        raise SkippedImage(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    channels_last = None if suffix in {".npy", ".npz"} else False
    return make_raster(array, path, named, layout, bands, channels_last, **georef)


def _check_header_size(path: str, count: int, height: int, width: int) -> None:
    if count * height * width > HEADER_MAX_SAMPLES:
        raise SkippedImage(
            f"{path}: {count} x {height} x {width} is too large for a chip; "
            "map or embed it as a scene (msclip map / msclip embed)"
        )


def _reduced_shape(count: int, height: int, width: int) -> tuple[int, int, int] | None:
    """The shape to read a chip at: whole up to CHIP_READ_MAX_SIDE, else reduced keeping its aspect."""
    shorter = min(height, width)
    if shorter <= CHIP_READ_MAX_SIDE:
        return None
    factor = CHIP_READ_MAX_SIDE / shorter
    return count, max(1, round(height * factor)), max(1, round(width * factor))


def _read_geotiff(path: str) -> tuple[np.ndarray, tuple[str, ...], dict]:
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for plain TIFFs is expected
        with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES), rasterio.open(path) as src:
            _check_header_size(path, src.count, src.height, src.width)
            out_shape = _reduced_shape(src.count, src.height, src.width)
            array = src.read(out_shape=out_shape, resampling=Resampling.average)
            scale = (src.width / array.shape[2], src.height / array.shape[1])
            names = tuple(normalize_band_name(d) if d else None for d in src.descriptions)
            tags = {k.upper(): v for k, v in src.tags().items()}
            offsets = {src.tags(i + 1).get("BOA_ADD_OFFSET") for i in range(src.count)} - {None}
            if offsets:
                tags["BOA_ADD_OFFSET"] = offsets.pop()
            georeferenced = src.crs is not None
            crs = src.crs.to_string() if georeferenced else None
            transform = tuple(src.transform * Affine.scale(*scale))[:6] if georeferenced else None
            nodata = src.nodata
    if array.dtype == np.uint8 and array.shape[0] == 3:
        file_bands: tuple[str, ...] = RGB
    elif all(names) and len(set(names)) == len(names):
        file_bands = tuple(names)  # type: ignore[arg-type]
    else:
        file_bands = ()
    return array, file_bands, {"crs": crs, "transform": transform, "nodata": nodata, "tags": tags}


def _read_numpy(path: str) -> np.ndarray:
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            if not archive.files:
                raise SkippedImage(f"{path}: empty .npz archive")
            return archive[archive.files[0]]
    header = np.load(path, mmap_mode="r", allow_pickle=False)  # the shape, before any pixel is read
    _check_header_size(path, 1, 1, int(np.prod(header.shape)))
    return np.array(header)


def _read_picture(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _channels_first(array: np.ndarray, path: str) -> np.ndarray:
    """(C, H, W) from a 2-D, channels-first or channels-last array: the channel axis is the short one."""
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise SkippedImage(f"{path}: expected a 2-D or 3-D array, got shape {array.shape}")
    if array.shape[-1] < array.shape[0] and array.shape[-1] <= 32:
        return np.ascontiguousarray(np.moveaxis(array, -1, 0))
    return array


def iter_paths(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Image paths from folders (recursive), globs, .txt/.yaml lists and single files; sorted, unique."""
    found: set[str] = set()
    for item in inputs:
        found.update(_expand(str(item)))
    if not found:
        raise MSClipError(f"no images found in {', '.join(map(str, inputs))}")
    return sorted(found)


def _expand(item: str) -> list[str]:
    path = Path(item)
    if path.is_dir():
        return [str(p) for p in path.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and p.is_file()]
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        return [str(path.parent / entry) for entry in read_list(path, key="images")]
    if path.exists():
        return [str(path)]
    if glob.has_magic(item):
        return [p for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in RASTER_SUFFIXES]
    raise MSClipError(f"input not found: {item}")


def read_list(path: str | os.PathLike, key: str) -> list[str]:
    """Entries of a .txt (one per line, # comments) or .yaml file (a list, or a mapping with ``key``)."""
    path = Path(path)
    if not path.is_file():
        raise MSClipError(f"file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        data = yaml.safe_load(text)
        if isinstance(data, dict):
            data = data.get(key)
        if not isinstance(data, list) or not data:
            raise MSClipError(f"{path}: expected a list, or a mapping with a '{key}' list")
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Run ``write(tmp_path)`` then move the result into place, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any other file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    """The process umask; reading it means setting it, so this runs once, at import, before any thread."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


TABLE_SUFFIXES = (".csv", ".parquet", ".json")


def check_table_path(path: str | os.PathLike | None) -> None:
    """Fail early (before hours of work) when an output's extension names no table format we write."""
    if path is not None and Path(path).suffix.lower() not in TABLE_SUFFIXES:
        raise MSClipError(
            f"unsupported output type {Path(path).suffix!r} for {path}; use .csv, .parquet or .json"
        )


#: Parquet key-value metadata key where msclip records how embeddings were made (model name, bands).
METADATA_KEY = b"msclip"


def write_table(table, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame as .csv, .parquet or .json (records), chosen by extension, atomically.

    A Parquet file keeps ``table.attrs["msclip"]`` (e.g. the model name) under :data:`METADATA_KEY`.
    """
    check_table_path(path)
    suffix = Path(path).suffix.lower()
    writers = {
        ".csv": lambda tmp: table.to_csv(tmp, index=False),
        ".parquet": lambda tmp: _write_parquet(table, tmp),
        ".json": lambda tmp: Path(tmp).write_text(
            json.dumps(table.to_dict(orient="records"), indent=1, default=_json_default), encoding="utf-8"
        ),
    }
    atomic_write(path, writers[suffix])


def _write_parquet(table, path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = with_msclip_record(pa.Table.from_pandas(table, preserve_index=False), table.attrs.get("msclip"))
    pq.write_table(arrow, path)


def with_msclip_record(arrow, record: dict | None):
    """The Arrow table with ``record`` (how its embeddings were made) in its schema metadata."""
    if not record:
        return arrow
    return arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(record).encode()}
    )


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
