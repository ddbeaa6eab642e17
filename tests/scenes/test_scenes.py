"""Scene maps and embeddings on a synthetic 2,240 px scene made from the real chips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio import Affine
from rasterio.windows import Window

from msclip import classify, embed
from msclip.bands import BOA_OFFSET, LAYOUTS
from msclip.data import InputOptions, OffsetDecision, offset_decision
from msclip.errors import BoaOffsetWarning
from msclip.index import build_index, open_index
from msclip.scenes import (
    WindowOptions,
    embed_scene,
    is_scene,
    map_scene,
    open_scene,
    write_geoparquet,
    write_map,
)
from msclip.scenes.embed import scene_offset
from msclip.scenes.source import SceneReader
from msclip.scenes.windows import window_grid
from tests.helpers import read_array, write_geotiff

from .synthetic import write_safe, write_scene

CLASSES = ["ocean", "agriculture", "snow", "urban area"]


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory, chip_paths):
    folder = tmp_path_factory.mktemp("scene")
    return write_scene(folder / "scene.tif", chip_paths, DATETIME="2023-06-01T13:22:41Z")


@pytest.fixture(scope="module")
def safe_path(tmp_path_factory, chip_paths):
    return write_safe(
        tmp_path_factory.mktemp("safe") / "S2A_MSIL2A_20230601T132241_N0509_R038_T22JGT.SAFE", chip_paths
    )


def test_map_is_georeferenced_skips_nodata_and_matches_classify(tiny_model, scene_path, tmp_path):
    scene = open_scene(str(scene_path))
    result = map_scene(tiny_model, scene, CLASSES, batch_size=16)
    write_map(result, str(tmp_path / "map.tif"))
    with rasterio.open(tmp_path / "map.tif") as src, rasterio.open(scene_path) as original:
        assert src.driver == "GTiff" and src.count == len(CLASSES) + 1 and src.shape == (10, 10)
        assert src.crs == original.crs and src.transform == original.transform @ Affine.scale(224)
        assert src.descriptions == (*CLASSES, "label")
        probabilities, label = src.read()[:-1], src.read(len(CLASSES) + 1)
    ring = np.ones((10, 10), bool)
    ring[1:-1, 1:-1] = False  # the 260 px nodata border fills the outer windows completely
    assert np.isnan(probabilities[:, ring]).all() and np.isnan(label[ring]).all()
    assert not np.isnan(probabilities[:, ~ring]).any()
    np.testing.assert_allclose(probabilities[:, ~ring].sum(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(label[~ring], probabilities[:, ~ring].argmax(axis=0))
    windows = result.windows
    assert (windows["status"] == np.where(ring.ravel(), "nodata", "ok")).all()
    assert windows.crs == original.crs
    for row, col in [(4, 5), (1, 1)]:  # an inner window, and one with its top-left corner in the border
        crop = tmp_path / f"crop_{row}_{col}.tif"
        _write_crop(scene_path, Window(col * 224, row * 224, 224, 224), crop)
        chip = classify(tiny_model, [str(crop)], CLASSES).table.iloc[0]
        np.testing.assert_allclose(probabilities[:, row, col], chip[CLASSES].to_numpy(float), atol=1e-5)
        assert windows.iloc[row * 10 + col]["filled_fraction"] == pytest.approx(chip["filled_fraction"])


def test_a_map_keeps_its_window_embeddings_and_records_its_weights(tiny_model, scene_path, tmp_path):
    """The footprints keep each kept window's embedding (what msclip.embed gives its crop); the COG records
    the weights' sha256, so that kept embeddings are only reused with the same weights."""
    import hashlib
    from dataclasses import replace

    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"stand-in weights")  # mapping never reads it: the model is already loaded
    model = replace(tiny_model, checkpoint=str(weights))
    result = map_scene(model, open_scene(str(scene_path)), CLASSES, batch_size=16)
    assert result.made_with["weights_sha256"] == hashlib.sha256(b"stand-in weights").hexdigest()
    write_map(result, str(tmp_path / "map.tif"))
    with rasterio.open(tmp_path / "map.tif") as src:
        assert src.tags()["weights_sha256"] == result.made_with["weights_sha256"]
    kept = result.windows["status"] == "ok"
    assert result.windows.loc[~kept, "embedding"].isna().all()
    crop = tmp_path / "crop.tif"
    _write_crop(scene_path, Window(5 * 224, 4 * 224, 224, 224), crop)
    chip = embed(tiny_model, [str(crop)]).table["embedding"].iloc[0]
    np.testing.assert_allclose(result.windows["embedding"].iloc[4 * 10 + 5], chip, atol=1e-5)


def test_overlapping_windows_put_map_pixels_at_window_centres(scene_path):
    scene = open_scene(str(scene_path))
    grid = window_grid(scene, 224, stride=112)
    assert (grid.rows, grid.cols) == (19, 19) and grid.window(20) == Window(112, 112, 224, 224)
    assert grid.map_transform(scene) == Affine(*scene.transform) @ Affine.translation(56, 56) @ Affine.scale(
        112
    )
    centre = grid.footprints(scene)[20].centroid
    assert grid.map_transform(scene) * (1.5, 1.5) == pytest.approx((centre.x, centre.y))


def test_scene_embeddings_feed_the_index(tiny_model, scene_path, tmp_path):
    table = embed_scene(tiny_model, open_scene(str(scene_path)), windows=WindowOptions(stride=448))
    assert len(table) == 5 * 5 and table["embedding"].isna().sum() == (table["status"] != "ok").sum() == 9
    write_geoparquet(table, str(tmp_path / "scene.parquet"), tiny_model)
    build_index([str(tmp_path / "scene.parquet")], str(tmp_path / "idx"))
    index = open_index(str(tmp_path / "idx"))
    assert index.model_name == "msclip-tiny" and len(index) == 16
    kept = table[table["status"] == "ok"]
    query = np.asarray(kept["embedding"].iloc[4], dtype=np.float32)[None]
    hits = index.search(query, top_k=2, start="2023-06-01", end="2023-06-01")
    best = hits["id"].iloc[0]  # the mosaic repeats chips: the top hit is window 4 or an identical one
    np.testing.assert_allclose(kept["embedding"].iloc[best], query[0], atol=1e-6)
    assert hits["score"].iloc[0] == pytest.approx(1, abs=1e-5) and hits["image"].iloc[0] == str(scene_path)
    assert str(hits["datetime"].iloc[0]) == "2023-06-01 13:22:41+00:00"
    assert index.metadata["window"].iloc[best] == kept["window"].iloc[best]
    assert hits.geometry.iloc[0].equals_exact(kept.to_crs(4326).geometry.iloc[best], tolerance=1e-9)
    assert index.search(query, bbox=(0, 0, 1, 1)).empty  # far from this scene


def test_one_offset_decision_per_scene_from_its_data(tiny_model, scene_path, chip_paths, tmp_path):
    """The dated mosaic of harmonised chips keeps its values; the same scene +1000 is corrected."""
    with rasterio.open(scene_path) as src:
        array, profile = src.read(), src.profile
    with rasterio.open(tmp_path / "offset.tif", "w", **profile) as dst:
        dst.write(np.where(array == 0, 0, array + 1000).astype(array.dtype))
        dst.update_tags(DATETIME="2023-06-01T13:22:41Z")
    windows = WindowOptions(stride=448)
    with pytest.warns(BoaOffsetWarning, match="1 image"):
        harmonised = embed_scene(tiny_model, open_scene(str(scene_path)), windows=windows)
    corrected = embed_scene(tiny_model, open_scene(str(tmp_path / "offset.tif")), windows=windows)
    assert set(zip(harmonised["boa_offset"], harmonised["boa_offset_source"], strict=True)) == {(0, "data")}
    assert set(zip(corrected["boa_offset"], corrected["boa_offset_source"], strict=True)) == {
        (1000, "date+data")
    }
    kept = harmonised["status"] == "ok"
    np.testing.assert_allclose(
        np.stack(corrected["embedding"][kept]), np.stack(harmonised["embedding"][kept]), atol=1e-6
    )


def test_safe_folder_bands_by_name_cloud_mask_and_offset(tiny_model, safe_path):
    assert is_scene(str(safe_path), 224)
    scene = open_scene(str(safe_path))
    assert (scene.width, scene.height, scene.resolution) == (672, 672, 10.0)
    assert set(scene.bands) >= {*tiny_model.bands, "SCL"}
    assert "R10m" in scene.bands["B02"].href and "R20m" in scene.bands["B05"].href
    reader = SceneReader(scene)
    raster = reader.read(Window(224, 224, 224, 224), ("B02", "B05", "B01"))
    assert raster.array.shape == (3, 224, 224) and offset_decision(raster).offset == 1000
    assert str(scene.datetime) == "2023-06-01 13:22:41.024000+00:00"
    table = embed_scene(tiny_model, scene)
    assert table["status"].tolist() == ["cloud"] + ["ok"] * 8
    assert set(zip(table["boa_offset"], table["boa_offset_source"], strict=True)) == {(1000, "tag")}
    assert table["cloud_fraction"].tolist() == [1.0] + [0.0] * 8


def test_stac_item_with_band_assets(tiny_model, safe_path, tmp_path):
    import pystac

    scene = open_scene(str(safe_path))
    item = pystac.Item(
        "T22JGT", None, None, scene.datetime.to_pydatetime(), {"s2:processing_baseline": "05.09"}
    )
    keys = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2", "B07": "rededge3",
            "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}  # fmt: skip
    for band, key in keys.items():
        item.add_asset(key, pystac.Asset(scene.bands[band].href))
    item.save_object(dest_href=str(tmp_path / "item.json"), include_self_link=False)
    stac = open_scene(str(tmp_path / "item.json"))
    assert stac.bands["B8A"] == scene.bands["B8A"] and stac.tags["PROCESSING_BASELINE"] == "05.09"
    table = embed_scene(tiny_model, stac)
    np.testing.assert_allclose(
        np.stack(table["embedding"].iloc[1:]),
        np.stack(embed_scene(tiny_model, scene)["embedding"].iloc[1:]),
        atol=1e-6,
    )


def test_chips_are_not_scenes(chip_paths, scene_path):
    assert not is_scene(str(chip_paths[0]), 224) and is_scene(str(scene_path), 224)


def _write_crop(path, window: Window, target) -> None:
    with rasterio.open(path) as src:
        profile = src.profile | {"width": 224, "height": 224, "transform": src.window_transform(window)}
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.update_tags(**src.tags())


def test_multiband_scene_with_described_bands_and_scl(tiny_model, chip_paths, tmp_path):
    from .synthetic import mosaic

    array, profile = mosaic(chip_paths, 448, border=0)
    scl = np.full((1, 448, 448), 4, dtype=array.dtype)
    scl[:, 224:, 224:] = 8  # cloud, medium probability, over the last window
    order = [3, 2, 1, *range(4, 12), 0]  # bands stored out of the usual order, found by their descriptions
    names = [
        ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")[i] for i in order
    ]
    path = tmp_path / "described.tif"
    with rasterio.open(path, "w", **(profile | {"width": 448, "height": 448, "count": 13})) as dst:
        dst.write(np.concatenate([array[order], scl]))
        for i, name in enumerate([*names, "SCL"], start=1):
            dst.set_band_description(i, name)
    scene = open_scene(str(path))
    assert scene.bands["B04"].index == 1 and scene.bands["SCL"].index == 13
    table = embed_scene(tiny_model, scene, windows=WindowOptions(max_cloud=0.3))
    assert table["status"].tolist() == ["ok", "ok", "ok", "cloud"]
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", **(profile | {"width": 448, "height": 448})) as dst:
        dst.write(array)
    expected = embed_scene(tiny_model, open_scene(str(plain)))["embedding"].iloc[:3]
    np.testing.assert_allclose(np.stack(table["embedding"].iloc[:3]), np.stack(expected), atol=1e-6)


def test_a_scene_whose_visible_bands_cannot_be_read_is_decided_by_its_date(tmp_path, chip_paths):
    """Its windows name what they cannot read (the readable part is still mapped); the decision says
    that the data was not looked at."""
    folder = tmp_path / "scene"
    folder.mkdir()
    for name, band in zip(LAYOUTS["L2A"], read_array(chip_paths[0]), strict=True):
        if name in ("B02", "B03", "B04"):
            write_geotiff(folder / f"T22JGT_{name}_10m.tif", band[None], like=chip_paths[0])
    (folder / "MTD_MSIL2A.xml").write_text(
        "<r><PRODUCT_START_TIME>2023-06-01T10:00:00Z</PRODUCT_START_TIME></r>"
    )
    scene = open_scene(str(folder))  # dated, untagged: its data will be looked at
    (folder / "T22JGT_B02_10m.tif").write_bytes(b"not a GeoTIFF any more")
    assert scene_offset(scene, InputOptions()) == OffsetDecision(BOA_OFFSET, "date")


def test_a_stac_item_whose_files_are_missing_is_a_named_skip(tmp_path):
    import pystac

    from msclip.errors import SkippedImage

    item = pystac.Item("T22JGT", None, None, pd.Timestamp("2023-06-01", tz="UTC").to_pydatetime(), {})
    for key in ("blue", "green", "red"):
        item.add_asset(key, pystac.Asset(str(tmp_path / f"gone_{key}.tif")))
    item.save_object(dest_href=str(tmp_path / "item.json"), include_self_link=False)
    with pytest.raises(SkippedImage, match="item.json: cannot read") as skipped:
        open_scene(str(tmp_path / "item.json"))
    assert "\n" not in str(skipped.value)
