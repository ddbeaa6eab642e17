"""A core-only install (``pip install -e .``, no extras) classifies, retrieves and embeds, as the README says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import L2A_CHIPS

pytest.importorskip("tomllib")  # Python 3.11+ reads pyproject.toml itself
from tests.core_only import extras_only_modules

TINY = ["--model", "msclip-tiny", "--device", "cpu"]


def run_core_only(commands: list[list[str]]) -> tuple[list[int], str]:
    script = Path(__file__).with_name("core_only.py")
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(commands)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_the_extras_packages_are_what_core_only_hides():
    hidden = extras_only_modules()
    assert {"sklearn", "geopandas", "faiss", "transformers", "fastapi", "tensorboard", "zarr"} <= hidden
    assert not {"torch", "open_clip", "rasterio", "pandas", "numpy"} & hidden


def test_core_commands_run_without_any_extra(tmp_path):
    codes, errors = run_core_only(
        [
            ["classify", str(L2A_CHIPS), "--classes", "a", "b", "--output", str(tmp_path / "c.csv"), *TINY],
            ["retrieve", str(L2A_CHIPS), "--query", "a river", "--output", str(tmp_path / "r.csv"), *TINY],
            ["embed", str(L2A_CHIPS), "--output", str(tmp_path / "e.parquet"), *TINY],
            ["models"],
            [
                "map",
                str(L2A_CHIPS / "282D_485L_3_3.tif"),
                "--classes",
                "a",
                "--output",
                str(tmp_path / "m.tif"),
            ],
        ]
    )
    assert codes == [0, 0, 0, 0, 1], errors
    assert "Traceback" not in errors
    assert "msclip: error: map needs the [scenes] extra" in errors
