"""The one rule by which Sentinel-2's 20 and 60 m bands meet the 10 m grid, for every reader of band files.

Rule: GDAL's warper, **bilinear** for reflectance (**nearest** for categorical bands such as SCL), pixel
centres aligned and edges clamped (the same weights as torch's ``interpolate(mode="bilinear",
align_corners=False)``), computed in float32 onto the grid of the finest band, then stored in the band's own
data type with integer digital numbers rounded half up (:func:`stored`: what GDAL's RasterIO and torchgeo's
BigEarthNet reader give).

- A scene (SAFE granule, per-band folder, STAC item) puts each coarser band on the grid of its finest
  band by georeference, lazily, window by window: :func:`on_grid`.
- A patch of per-band files (BigEarthNet) stretches each whole band file over the finest band's pixel
  count, whatever the files' georeference says (as torchgeo reads them): :func:`read_resized`.
- Arrays already in memory (METER-ML's per-resolution ``.npy`` files) go through the same warper:
  :func:`resize_array`.

Where bands share bounds (every Sentinel-2 product) a band comes out with the same pixels from a patch, a
granule or an array.
"""

from __future__ import annotations

import numpy as np

#: Placeholder CRS for resampling arrays in pixel space (same CRS on both sides: the warp is a pure stretch).
PIXEL_CRS = "EPSG:3857"


def resampling(categorical: bool = False):
    """The rasterio resampling of the rule: bilinear for reflectance, nearest for class codes."""
    from rasterio.enums import Resampling

    return Resampling.nearest if categorical else Resampling.bilinear


def on_grid(src, crs: str, transform: tuple[float, ...], width: int, height: int, categorical: bool = False):
    """``src`` (an open rasterio dataset) as read on a grid: itself when it lies on it, else a warped view."""
    import rasterio
    from rasterio.vrt import WarpedVRT

    same_grid = (src.width, src.height) == (width, height) and tuple(src.transform)[:6] == tuple(transform)[
        :6
    ]
    if same_grid:
        return src
    return WarpedVRT(
        src,
        crs=crs,
        transform=rasterio.Affine(*transform[:6]),
        width=width,
        height=height,
        resampling=resampling(categorical),
        dtype=None if categorical else "float32",  # rounded by the reader, see stored()
    )


def stored(values: np.ndarray, dtype) -> np.ndarray:
    """Resampled ``values`` in a band's own ``dtype``: integers rounded half up (a warper rounding on its own
    breaks ties the other way, 1 DN on a few percent of a 20 m band's pixels), clipped to the type's range."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype, copy=False)
    limits = np.iinfo(dtype)
    return np.clip(np.floor(values + 0.5), limits.min, limits.max).astype(dtype)


def read_resized(src, height: int, width: int, index: int = 1) -> np.ndarray:
    """Band ``index`` of an open rasterio dataset stretched over ``height`` x ``width`` pixels (its own
    extent, whatever its georeference), by :func:`resize_array`."""
    return resize_array(src.read(index)[None], height, width)[0]


def resize_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) ``array`` stretched to (C, height, width) by the same warper and weights, in its dtype."""
    from affine import Affine
    from rasterio.warp import reproject

    if array.shape[-2:] == (height, width):
        return array
    out = np.zeros((array.shape[0], height, width), dtype=np.float32)
    scale = Affine.scale(width / array.shape[-1], height / array.shape[-2])
    reproject(
        np.ascontiguousarray(array, dtype=np.float32),
        out,
        src_transform=scale,
        dst_transform=Affine.identity(),
        src_crs=PIXEL_CRS,
        dst_crs=PIXEL_CRS,
        src_nodata=None,
        dst_nodata=None,
        init_dest_nodata=False,
        resampling=resampling(),
    )
    return stored(out, array.dtype)
