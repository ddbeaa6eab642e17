"""What the package declares is what it ships and uses."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]


def test_the_declared_py_typed_marker_ships():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in declared["msclip"]
    assert resources.files("msclip").joinpath("py.typed").is_file()


def test_every_dependency_is_imported_somewhere():
    """No dependency that nothing imports (typer was one)."""
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requirements]
    imports = {
        "open_clip_torch": "open_clip",
        "pillow": "PIL",
        "pyyaml": "yaml",
        "onnx": None,
        "onnxscript": None,
    }
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "msclip").rglob("*.py"))
    for name in names:
        module = imports.get(name, name.replace("-", "_"))
        if module is None:  # used by torch.onnx.export, never imported by name
            continue
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.MULTILINE), name


def test_the_web_apps_vendored_files_are_declared_and_ship():
    """The app serves its map library and countries itself (scripts/vendor_web.sh); no page asks a CDN."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "app/static/**/*" in declared["msclip"]
    static = resources.files("msclip.app").joinpath("static")
    for name in (
        "vendor/leaflet/leaflet.js",
        "vendor/leaflet/leaflet.css",
        "vendor/leaflet/LICENSE",
        "vendor/topojson-client/topojson-client.min.js",
        "vendor/topojson-client/LICENSE",
        "vendor/world-atlas/countries-50m.json",
        "vendor/world-atlas/LICENSE",
    ):
        assert static.joinpath(name).is_file(), name
    for page in ("index.html", "app.js", "style.css"):
        assert "http" not in static.joinpath(page).read_text(), page
