"""The app around the tiny model, the five real chips as examples, a small index of them, and a class map of
a scene tiled from them."""

from __future__ import annotations

import pytest

from tests.conftest import L2A_CHIPS

pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def chip_index(tiny_model, tmp_path_factory):
    """An index of the five example chips embedded by the tiny model (as `msclip embed` + index build)."""
    from msclip import embed
    from msclip.index import build_index, open_index
    from msclip.io import write_table

    folder = tmp_path_factory.mktemp("index")
    write_table(embed(tiny_model, [str(L2A_CHIPS)]).table, folder / "embeddings.parquet")
    return open_index(build_index([str(folder / "embeddings.parquet")], str(folder / "index")))


#: Classes of the test map (EuroSAT's): the tiny random model puts the 4 x 4 windows in two of them.
MAP_CLASSES = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]


@pytest.fixture(scope="session")
def scene_maps(tiny_model, chip_paths, tmp_path_factory):
    """A folder as `msclip map` leaves it (COG + footprints) for a 896 px scene of the real chips."""
    from msclip.app.maps import find_maps
    from msclip.scenes import map_scene, open_scene, write_geoparquet, write_map
    from tests.scenes.synthetic import write_scene

    scene = write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", chip_paths, size=896, border=0)
    result = map_scene(tiny_model, open_scene(str(scene)), MAP_CLASSES)
    folder = tmp_path_factory.mktemp("maps")
    write_map(result, str(folder / "tiled.tif"))
    write_geoparquet(result.windows, str(folder / "tiled.parquet"), tiny_model)
    (folder / "notes.tif").write_text("not a map")  # other files in the folder are not listed
    return find_maps(str(folder))


def window_centres(scene_map) -> list[tuple[int, float, float]]:
    """(window, lon, lat) of each window's map-pixel centre."""
    from rasterio.warp import transform

    grid, width, height, crs = scene_map.grid
    centres = [grid * (c + 0.5, r + 0.5) for r in range(height) for c in range(width)]
    lons, lats = transform(crs, "EPSG:4326", [x for x, _ in centres], [y for _, y in centres])
    return list(zip(range(len(centres)), lons, lats, strict=True))


@pytest.fixture(scope="session")
def six_chips(chip_paths, tmp_path_factory) -> list:
    """The five real chips and a mirrored copy of the first: three per class for two classes."""
    import numpy as np

    from tests.helpers import read_array, write_geotiff

    mirrored = tmp_path_factory.mktemp("chips") / "mirrored.tif"
    write_geotiff(mirrored, np.ascontiguousarray(read_array(chip_paths[0])[:, :, ::-1]), like=chip_paths[0])
    return [*chip_paths, mirrored]


@pytest.fixture(scope="session")
def app(tiny_model, chip_index, chip_paths, scene_maps):
    from msclip.app import create_app

    return create_app(tiny_model, chip_index, [str(p) for p in chip_paths], maps=scene_maps)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client
