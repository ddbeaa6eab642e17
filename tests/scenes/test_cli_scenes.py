"""msclip map / embed SCENE / index build, add, search, and the Dask engine, end to end."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from msclip.cli import main

from .synthetic import write_scene

TINY = ["--model", "msclip-tiny", "--device", "cpu", "--workers", "0"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, chip_paths):
    folder = tmp_path_factory.mktemp("scenes")
    return [
        write_scene(folder / "north.tif", chip_paths, size=672, border=0, DATETIME="2023-06-01T10:00:00Z"),
        write_scene(
            folder / "south.tif", chip_paths[::-1], size=448, border=0, DATETIME="2024-02-01T10:00:00Z"
        ),
    ]


def test_map_writes_cog_and_footprints(scenes, tmp_path, capsys):
    code = main(
        ["map", str(scenes[0]), "--classes", "ocean", "snow", "--output", str(tmp_path / "m.tif"), *TINY]
    )
    assert code == 0
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.shape == (3, 3) and src.count == 3 and src.tags()["classes"] == "ocean|snow"
    windows = gpd.read_parquet(tmp_path / "m.parquet")
    assert len(windows) == 9 and (windows["status"] == "ok").all()
    np.testing.assert_allclose(windows[["ocean", "snow"]].sum(axis=1), 1, atol=1e-5)


def test_map_records_how_its_windows_were_cut_and_kept(scenes, tmp_path):
    args = ["map", str(scenes[0]), "--classes", "ocean", "--output", str(tmp_path / "m.tif"), *TINY]
    assert main([*args, "--stride", "112", "--min-valid", "0.3", "--max-cloud", "0.8"]) == 0
    with rasterio.open(tmp_path / "m.tif") as src:
        tags = src.tags()
    assert {k: tags[k] for k in ("window_size", "stride", "min_valid", "max_cloud")} == {
        "window_size": "224",
        "stride": "112",
        "min_valid": "0.3",
        "max_cloud": "0.8",
    }


def test_embed_scenes_index_and_search(scenes, tmp_path, chip_paths):
    out = tmp_path / "embeddings"
    assert main(["embed", *map(str, scenes), "--output", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["north.parquet", "south.parquet"]
    north = gpd.read_parquet(out / "north.parquet")
    assert len(north) == 9 and north.crs.to_epsg() == 32722 and len(north["embedding"].iloc[0]) == 32

    idx = str(tmp_path / "idx")
    assert main(["index", "build", str(out / "north.parquet"), "--output", idx]) == 0
    assert main(["index", "add", idx, str(out)]) == 0  # north is in already; south is added
    hits_file = tmp_path / "hits.geojson"
    args = ["index", "search", idx, "--query", "a river", "snow", "--top-k", "20", "--output", str(hits_file)]
    assert main([*args, "--start", "2024-01-01", "--device", "cpu"]) == 0
    with warnings.catch_warnings(record=True) as caught:  # GDAL saw duplicate feature ids when `id` repeated
        warnings.simplefilter("always")
        hits = gpd.read_file(hits_file)
    assert not [w for w in caught if "Several features with id" in str(w.message)]
    assert hits["id"].duplicated().any()  # the same window found by both queries keeps its index id
    assert hits.crs.to_epsg() == 4326 and len(hits) == 2 * 4  # only south (4 windows) is dated 2024
    assert set(hits["query"]) == {"a river", "snow"} and (hits["image"] == str(scenes[1])).all()
    like = tmp_path / "like.parquet"
    assert (
        main(["index", "search", idx, "--like", str(chip_paths[0]), "--top-k", "5", "--output", str(like)])
        == 0
    )
    assert len(gpd.read_parquet(like)) == 5


def test_dask_engine_matches_local_and_resumes(scenes, tmp_path):
    from dask.distributed import LocalCluster

    local_out, dask_out = tmp_path / "local", tmp_path / "dask"
    assert main(["embed", *map(str, scenes), "--output", str(local_out), *TINY]) == 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        args = [
            "embed",
            *map(str, scenes),
            "--output",
            str(dask_out),
            *TINY,
            "--cluster",
            cluster.scheduler_address,
        ]
        assert main(args) == 0
        stamps = {p: p.stat().st_mtime_ns for p in dask_out.iterdir()}
        assert main(args) == 0  # finished scenes are not redone
        assert {p: p.stat().st_mtime_ns for p in dask_out.iterdir()} == stamps
    for name in ("north.parquet", "south.parquet"):
        a, b = pd.read_parquet(local_out / name), pd.read_parquet(dask_out / name)
        np.testing.assert_allclose(np.stack(a["embedding"]), np.stack(b["embedding"]), atol=1e-6)


def test_scene_mistakes(scenes, chip_paths, tmp_path, capsys):
    assert main(["embed", str(scenes[0]), str(chip_paths[0]), "--output", str(tmp_path / "x"), *TINY]) == 1
    assert "separate calls" in capsys.readouterr().err
    assert main(["embed", *map(str, scenes), "--output", str(tmp_path / "x.parquet"), *TINY]) == 1
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(scenes[1]) as src:
        profile = src.profile | {"count": 3}
        with rasterio.open(rgb, "w", **profile) as dst:
            dst.write(src.read([4, 3, 2]))
    assert main(["embed", str(rgb), str(scenes[1]), "--output", str(tmp_path / "y"), *TINY]) == 3
    assert "no band" in capsys.readouterr().err


@pytest.fixture(scope="module")
def broken_scenes(tmp_path_factory, scenes):
    """A file that is no raster, and a scene cut short (its later tiles missing), beside good scenes."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "notes.tif").write_text("not a raster")
    from rasterio.shutil import copy

    copy(scenes[0], folder / "cog.tif", driver="COG", blocksize=256)  # header first, then the tiles
    whole = (folder / "cog.tif").read_bytes()
    (folder / "cut.tif").write_bytes(whole[: len(whole) // 2])
    return folder / "notes.tif", folder / "cut.tif"


def test_map_of_an_unreadable_scene_is_a_named_skip(broken_scenes, tmp_path, capsys):
    out = tmp_path / "m.tif"
    code = main(["map", str(broken_scenes[0]), "--classes", "ocean", "snow", "--output", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 3 and "notes.tif: cannot read" in err and "Traceback" not in err
    assert not out.exists()


def test_map_of_a_cut_scene_names_its_unreadable_windows(broken_scenes, tmp_path, capsys):
    out = tmp_path / "m.tif"
    code = main(["map", str(broken_scenes[1]), "--classes", "ocean", "snow", "--output", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 3 and "windows could not be read" in err
    windows = gpd.read_parquet(tmp_path / "m.parquet")
    assert (windows["status"] == "ok").any() and windows["status"].str.contains("cannot read").any()


def test_a_bad_scene_among_good_ones_is_skipped_and_named(scenes, broken_scenes, tmp_path, capsys):
    out = tmp_path / "embeddings"
    code = main(["embed", str(scenes[1]), str(broken_scenes[0]), "--output", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 3 and "notes.tif: cannot read" in err and "separate calls" not in err
    assert [p.name for p in out.iterdir()] == ["south.parquet"]


def test_an_unreachable_scheduler_is_a_one_line_error(scenes, tmp_path, capfd):
    out = tmp_path / "out"
    for engine in ((), ("--engine", "dask")):  # --cluster alone means the Dask engine
        args = [
            "embed",
            str(scenes[0]),
            "--output",
            str(out),
            *TINY,
            *engine,
            "--cluster",
            "tcp://127.0.0.1:1",
        ]
        assert main(args) == 1
        err = capfd.readouterr().err.strip()
        assert err.startswith("msclip: error:") and "tcp://127.0.0.1:1" in err and "\n" not in err
        assert not out.exists()


def test_cluster_with_the_local_engine_is_refused(scenes, tmp_path, capsys):
    args = ["embed", str(scenes[0]), "--output", str(tmp_path / "o"), *TINY, "--engine", "local"]
    assert main([*args, "--cluster", "tcp://127.0.0.1:1"]) == 1
    assert "--cluster" in capsys.readouterr().err


def test_map_does_not_take_dask_options(scenes, tmp_path, capsys):
    """One scene is mapped here: a scheduler address would be ignored, so it is refused."""
    args = ["map", str(scenes[0]), "--classes", "ocean", "--output", str(tmp_path / "m.tif"), *TINY]
    with pytest.raises(SystemExit) as exit_code:
        main([*args, "--engine", "dask", "--cluster", "tcp://127.0.0.1:1"])
    assert exit_code.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    assert not (tmp_path / "m.tif").exists()


def test_a_local_dask_cluster_closes_cleanly(scenes, tmp_path, capfd, caplog):
    """Worker processes that loaded torch take seconds to exit: they are given the time, not killed."""
    args = ["embed", str(scenes[1]), "--output", str(tmp_path / "out"), *TINY, "--engine", "dask"]
    assert main(args) == 0
    said = capfd.readouterr().err + caplog.text  # the CLI's log lines go to stderr, pytest's to caplog
    assert "still alive" not in said and "killing" not in said
    assert (tmp_path / "out" / "south.parquet").is_file()
