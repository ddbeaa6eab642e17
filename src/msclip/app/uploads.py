"""Uploaded files: copied into a per-request temporary folder under generated names and checked (type, bytes,
pixels) before any library decodes them, so a user never names a server path and a bomb never expands."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msclip.errors import MSClipError, SkippedImage
from msclip.io import RASTER_SUFFIXES, Raster
from msclip.sources import ChipFile

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one request may carry; larger uploads get a message in the page, not an out-of-memory server."""

    max_file_mb: float = 64.0
    max_files: int = 32
    max_values: int = 64_000_000  # pixels x bands of one image (12 bands of 2300 x 2300)
    max_classes: int = 100
    max_top_k: int = 100

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1e6)

    @property
    def max_request_bytes(self) -> int:
        return self.max_file_bytes * self.max_files + 1_000_000  # plus the form fields


@dataclass(frozen=True)
class Staged:
    """An image of this request: the name the user knows it by and where it lies on the server."""

    name: str
    path: str


def display_name(filename: str | None) -> str:
    """The base name of an upload, whatever folders a browser (or an attacker) put in front of it."""
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return name[:120] or "upload"


def stage(upload, folder: Path, number: int, limits: Limits) -> Staged:
    """Copy one upload (a Starlette ``UploadFile``) into ``folder``; raise :class:`SkippedImage` when unfit."""
    name = display_name(upload.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        kinds = "GeoTIFF (.tif), .npy/.npz, PNG or JPEG"
        raise SkippedImage(f"{name}: not a supported image type ({suffix or 'no extension'}); upload {kinds}")
    path = folder / f"upload-{number:03d}{suffix}"
    copied = 0
    with open(path, "wb") as target:
        while chunk := upload.file.read(_CHUNK):
            copied += len(chunk)
            if copied > limits.max_file_bytes:
                raise SkippedImage(f"{name}: too large (over {limits.max_file_mb:g} MB per file)")
            target.write(chunk)
    if copied == 0:
        raise SkippedImage(f"{name}: empty file")
    return Staged(name, str(path))


def open_checked(item: Staged, limits: Limits, layout: str | None) -> Raster:
    """Read a staged image after checking its size from the header; messages name the user's file."""
    try:
        values = _header_values(item.path)
        if values > limits.max_values:
            raise SkippedImage(
                f"{item.name}: too large ({values / 1e6:.0f} million values; at most {limits.max_values / 1e6:.0f}"
                " million, e.g. 12 bands of 2300 x 2300 pixels)"
            )
        return ChipFile(item.path, layout).read()
    except MSClipError as exc:
        raise SkippedImage(for_page(str(exc), item)) from None
    except Exception as exc:  # a header no reader understands
        raise SkippedImage(f"{item.name}: not a readable raster ({type(exc).__name__})") from None


def for_page(message: str, item: Staged) -> str:
    """A reader's message as the page shows it: the user's file name, never the temporary path."""
    message = message.replace(item.path, item.name).replace("pass --layout", "choose a layout")
    message = message.replace(" or --input-bands", "")
    return message if message.startswith(item.name) else f"{item.name}: {message}"


def _header_values(path: str) -> int:
    """Pixels x bands of an image, read from its header only (no decoding)."""
    suffix = Path(path).suffix.lower()
    if suffix in {".tif", ".tiff", ".jp2"}:
        import rasterio

        try:
            with rasterio.open(path) as src:
                return src.width * src.height * src.count
        except rasterio.errors.RasterioIOError:
            raise SkippedImage(f"{path}: not a raster (the file is not a readable GeoTIFF)") from None
    if suffix in {".png", ".jpg", ".jpeg"}:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return image.width * image.height * len(image.getbands())
        except UnidentifiedImageError:
            raise SkippedImage(f"{path}: not a readable {suffix[1:].upper()} picture") from None
    if suffix == ".npy":
        return int(np.prod(np.load(path, mmap_mode="r", allow_pickle=False).shape))
    with zipfile.ZipFile(path) as archive:  # .npz: uncompressed bytes / 2, at worst int16 values
        return sum(info.file_size for info in archive.infolist()) // 2
