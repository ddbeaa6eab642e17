"""An Overture-schema GeoParquet extract around the real example chips, written by the tests (no download)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from msclip.captioning.chips import footprint
from msclip.io import read
from tests.helpers import write_zipped_zarr


def _part(box, fx0, fy0, fx1, fy1):
    """The sub-rectangle of a chip's lon/lat box between fractions (fx0, fy0) and (fx1, fy1)."""
    minx, miny, maxx, maxy = box
    w, h = maxx - minx, maxy - miny
    return shapely.box(minx + fx0 * w, miny + fy0 * h, minx + fx1 * w, miny + fy1 * h)


def _names(primary):
    return None if primary is None else {"primary": primary, "common": None}


def write_extract(root: Path, chip_paths: list[Path]) -> dict[str, dict]:
    """Overture-like files under ``root`` (theme=/type= folders) and the expected tags per chip (by file name).

    Chip 0: forest (60 % of it) > farmland (30 %) > a named reservoir (5 %) > one unnamed building
    (polygons by area), then a bridge (a line), then two restaurants of one name (points). Chip 1: only a named lake that reaches over its edge.
    Other chips: nothing. A forest far away must never show up.
    """
    first, second = (footprint(read(p)).bounds for p in chip_paths[:2])
    far = shapely.box(first[0] + 5, first[1] + 5, first[2] + 5, first[3] + 5)
    features = {
        ("base", "land"): [
            (_part(first, 0.0, 0.0, 0.6, 1.0), "forest", "forest", None),
            (far, "forest", "forest", "Far Forest"),
        ],
        ("base", "land_use"): [(_part(first, 0.6, 0.0, 0.9, 1.0), "farmland", "agriculture", None)],
        ("base", "water"): [
            (_part(first, 0.9, 0.0, 1.0, 0.5), "reservoir", "reservoir", "Renhe Reservoir"),
            (_part(second, -0.5, -0.5, 0.5, 0.5), "lake", "lake", "Lago Grande"),
        ],
        ("base", "infrastructure"): [
            (
                shapely.LineString(
                    [_part(first, 0.1, 0.5, 0.1, 0.5).centroid, _part(first, 0.5, 0.5, 0.5, 0.5).centroid]
                ),
                "bridge",
                "bridge",
                None,
            ),
        ],
        ("buildings", "building"): [(_part(first, 0.7, 0.7, 0.71, 0.71), None, None, None)],
    }
    for (theme, kind), rows in features.items():
        frame = gpd.GeoDataFrame(
            {
                "id": [f"{kind}-{i}" for i in range(len(rows))],
                "class": [r[1] for r in rows],
                "subtype": [r[2] for r in rows],
                "names": [_names(r[3]) for r in rows],
            },
            geometry=[r[0] for r in rows],
            crs="EPSG:4326",
        )
        folder = root / f"theme={theme}" / f"type={kind}"
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-00000.parquet", write_covering_bbox=True)
    centre = _part(first, 0.3, 0.3, 0.3, 0.3).centroid
    places = gpd.GeoDataFrame(
        {
            "id": ["p0", "p1"],
            "categories": [{"primary": "fast_food_restaurant", "alternate": None}] * 2,
            "names": [_names("Chez Nous"), _names("Chez Nous")],
        },
        geometry=[centre, shapely.Point(centre.x + 1e-4, centre.y)],
        crs="EPSG:4326",
    )
    folder = root / "theme=places" / "type=place"
    folder.mkdir(parents=True)
    places.to_parquet(folder / "part-00000.parquet", write_covering_bbox=True)
    return {
        chip_paths[0].name: {
            "classes": ["forest", "farmland", "reservoir", "building", "bridge", "fast food restaurant"],
            "tags": [
                "forest",
                "agriculture",
                "farmland",
                "reservoir",
                "building",
                "bridge",
                "fast food restaurant",
            ],
            "names": ["Renhe Reservoir (reservoir)", "Chez Nous (fast food restaurant)"],
        },
        chip_paths[1].name: {"classes": ["lake"], "tags": ["lake"], "names": ["Lago Grande (lake)"]},
    }


@pytest.fixture(scope="session")
def overture_extract(tmp_path_factory, chip_paths) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("overture")
    return root, write_extract(root, chip_paths)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """Folder of a random tiny LLaVA-NeXT, loadable with from_pretrained like a downloaded model."""
    from tests.captioning.tiny_vlm import build_tiny_llava_next

    return build_tiny_llava_next(tmp_path_factory.mktemp("tiny-llava-next"))


@pytest.fixture(scope="session")
def ssl4eo_zarr(tmp_path_factory, chip_paths) -> Path:
    """A zipped SSL4EO-S12 v1.1-style Zarr file: samples 'a' (chip 1's pixels and centre) and 'b' (chip 4's),
    two timestamps each, per-sample centre lat/lon and EPSG code."""
    import numpy as np
    import xarray as xr

    rasters = [read(chip_paths[1]), read(chip_paths[4])]
    centres = [footprint(r).centroid for r in rasters]
    data = np.stack([np.stack([r.array, r.array]) for r in rasters]).astype("int16")
    dataset = xr.Dataset(
        {
            "bands": (("sample", "time", "band", "y", "x"), data),
            "center_lat": ("sample", [c.y for c in centres]),
            "center_lon": ("sample", [c.x for c in centres]),
            "crs": ("sample", [int(r.crs.split(":")[1]) for r in rasters]),
            "time_": (
                ("sample", "time"),
                np.array([["2021-03-01", "2021-07-01"]] * 2, dtype="datetime64[ns]"),
            ),
        },
        coords={"sample": np.array(["a", "b"], dtype=object), "band": list(rasters[0].bands)},
    )
    return write_zipped_zarr(dataset, tmp_path_factory.mktemp("ssl4eo") / "ssl4eo_s12_000001.zarr.zip")
