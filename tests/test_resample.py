"""One resampler for 20/60 m bands: a patch of band files, a scene and in-memory arrays give the same pixels,
and the same as the three readers they replace (BigEarthNet's rasterio ``out_shape`` read, the scene's warped
VRT, METER-ML's ``torch.nn.functional.interpolate``)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from msclip.bands import BANDS, LAYOUTS
from msclip.resample import resize_array, stored
from msclip.scenes.source import SceneReader, open_scene
from msclip.sources import BandArrays, BandFiles
from tests.conftest import L2A_CHIPS
from tests.helpers import read_array

SIZE = 120


@pytest.fixture(scope="module")
def patch(tmp_path_factory):
    """A BigEarthNet-like patch from a real chip: each band at its own resolution over the same bounds."""
    chip = sorted(L2A_CHIPS.glob("*.tif"))[0]
    with rasterio.open(chip) as src:
        crs, origin = src.crs, src.transform
    array = read_array(chip)[:, :SIZE, :SIZE]
    folder = tmp_path_factory.mktemp("patch") / "S2A_MSIL2A_patch"
    folder.mkdir()
    for b, band in enumerate(LAYOUTS["L2A"]):
        step = BANDS[band].resolution_m // 10
        layer = array[b].reshape(SIZE // step, step, SIZE // step, step).mean(axis=(1, 3)).round()
        transform = origin * Affine.scale(step)
        profile = {"driver": "GTiff", "count": 1, "height": SIZE // step, "width": SIZE // step}
        with rasterio.open(
            folder / f"{folder.name}_{band}.tif", "w", dtype="int16", crs=crs, transform=transform, **profile
        ) as dst:
            dst.write(layer.astype(np.int16)[None])
    return folder


def _band_files(folder) -> tuple[str, ...]:
    return tuple(str(folder / f"{folder.name}_{band}.tif") for band in LAYOUTS["L2A"])


def test_scene_and_patch_give_the_same_pixels(patch):
    by_patch = BandFiles(_band_files(patch), SIZE).read()
    scene = open_scene(str(patch))
    reader = SceneReader(scene)
    try:
        by_scene = reader.read(Window(0, 0, SIZE, SIZE), by_patch.bands)
    finally:
        reader.close()
    assert scene.width == SIZE and by_scene.bounds == by_patch.bounds
    np.testing.assert_array_equal(by_scene.array, by_patch.array)


def test_scene_pixels_moved_only_at_rounding_ties(patch):
    """Before, the scene's warped view rounded in GDAL's own way: 1 DN apart from the patch reader on the
    ties (x.5) of a few percent of a 20 m band's pixels; those now round half up, like the patch reader."""
    from rasterio.vrt import WarpedVRT

    scene = open_scene(str(patch))
    reader = SceneReader(scene)
    try:
        now = reader.read(Window(0, 0, SIZE, SIZE), ("B05",)).array[0]
    finally:
        reader.close()
    grid = {"crs": scene.crs, "transform": Affine(*scene.transform), "width": SIZE, "height": SIZE}
    with rasterio.open(patch / f"{patch.name}_B05.tif") as src:
        with WarpedVRT(src, resampling=Resampling.bilinear, **grid) as view:
            before = view.read(1)
        with WarpedVRT(src, resampling=Resampling.bilinear, dtype="float32", **grid) as view:
            exact = view.read(1)
    moved = now != before
    assert 0 < moved.mean() < 0.1 and np.abs(now - before).max() == 1
    np.testing.assert_array_equal(exact[moved] % 1, 0.5)


def test_patch_pixels_are_those_of_the_old_bigearthnet_reader(patch):
    """Before: ``src.read(1, out_shape=(120, 120), resampling=bilinear)`` per band file."""
    files = _band_files(patch)
    raster = BandFiles(files, SIZE).read()
    for position, path in enumerate(files):
        with rasterio.open(path) as src:
            before = src.read(1, out_shape=(SIZE, SIZE), resampling=Resampling.bilinear)
        np.testing.assert_array_equal(raster.array[position], before, err_msg=raster.bands[position])


def test_arrays_meet_the_grid_as_band_files_do(patch, tmp_path):
    """METER-ML's channels-last arrays: the same pixels as band files; before (torch bilinear, kept as
    float) they differed from BigEarthNet's reading by the rounding alone."""
    import torch
    import torch.nn.functional as F

    groups = {"10m": ("B02", "B03", "B04", "B08"), "20m": ("B05", "B06", "B07", "B8A", "B11", "B12")}
    groups["60m"] = ("B01", "B09")
    paths = []
    for resolution, bands in groups.items():
        layers = [read_array(patch / f"{patch.name}_{band}.tif")[0] for band in bands]
        paths.append(str(tmp_path / f"sentinel-2-{resolution}.npy"))
        np.save(paths[-1], np.stack(layers, axis=-1))
    by_arrays = BandArrays(tuple(paths), tuple(groups.values())).read()
    by_files = BandFiles(_band_files(patch), SIZE).read()
    order = [by_files.bands.index(band) for band in by_arrays.bands]
    np.testing.assert_array_equal(by_arrays.array, by_files.array[order])

    twenty = np.load(paths[1]).astype(np.float32)
    before = F.interpolate(
        torch.from_numpy(twenty).permute(2, 0, 1)[None], size=(SIZE, SIZE), mode="bilinear"
    )
    assert np.abs(by_arrays.array[4:10] - before[0].numpy()).max() <= 0.5


def test_integers_round_half_up_within_their_type():
    values = np.array([0.5, 1.5, 2.49, -0.5, 70000.0], dtype=np.float32)
    np.testing.assert_array_equal(stored(values, np.uint16), [1, 2, 2, 0, 65535])
    assert stored(values, np.float32) is values


def test_resize_array_keeps_dtype_and_leaves_a_grid_band_untouched():
    array = np.arange(2 * 6 * 6, dtype=np.uint16).reshape(2, 6, 6)
    assert resize_array(array, 6, 6) is array
    resized = resize_array(array, 12, 12)
    assert resized.dtype == np.uint16 and resized.shape == (2, 12, 12)
    assert resized[:, 1:-1, 1:-1].min() >= array.min() and resized.max() <= array.max()
