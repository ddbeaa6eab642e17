"""Every file a command writes follows the umask (0644 under 022), whichever library wrote it.

Temporary files are made 0600 by mkstemp; an output that skips the chmod would be unreadable to colleagues,
QGIS Server or a tile server on shared storage.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from msclip import io
from msclip.cli import main

from .scenes.synthetic import write_scene

TINY = ["--model", "msclip-tiny", "--device", "cpu", "--workers", "0"]


@pytest.fixture
def umask_022(monkeypatch):
    """The process and msclip both under umask 022, restored afterwards."""
    previous = os.umask(0o022)
    monkeypatch.setattr(io, "_UMASK", 0o022)
    yield
    os.umask(previous)


def _modes(folder) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_every_output_is_0644_under_umask_022(umask_022, tmp_path, chip_paths):
    scene = write_scene(tmp_path / "scene.tif", chip_paths, size=448, border=0)
    chips = [str(p) for p in chip_paths]
    out = tmp_path / "out"
    out.mkdir()
    runs = [
        ["classify", *chips, "--classes", "ocean", "snow", "--output", str(out / "classes.csv")],
        ["classify", *chips, "--classes", "ocean", "snow", "--output", str(out / "classes.parquet")],
        ["retrieve", *chips, "--query", "a river", "--output", str(out / "hits.json")],
        ["embed", *chips, "--output", str(out / "chips.parquet")],
        ["embed", str(scene), "--output", str(out / "windows")],
        ["map", str(scene), "--classes", "ocean", "snow", "--output", str(out / "map.tif")],
    ]
    for args in runs:
        assert main([*args, *TINY]) == 0, args
    assert main(["index", "build", str(out / "windows"), "--output", str(out / "index")]) == 0
    search = [
        "index",
        "search",
        str(out / "index"),
        "--query",
        "a river",
        "--output",
        str(out / "found.geojson"),
    ]
    assert main([*search, "--device", "cpu"]) == 0

    modes = _modes(out)
    assert {"classes.csv", "map.tif", "map.parquet", "found.geojson"} <= set(modes)
    assert any(name.startswith("index/") for name in modes)
    assert {name: oct(mode) for name, mode in modes.items() if mode != 0o644} == {}
    cache = _modes(Path(os.environ["MSCLIP_CACHE"]))  # text embeddings, as shared as the outputs
    assert cache and {name: oct(mode) for name, mode in cache.items() if mode != 0o644} == {}
