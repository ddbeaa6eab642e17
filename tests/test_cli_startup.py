"""The command line answers help and argument errors without loading the deep-learning stack."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import msclip

HEAVY = ("torch", "open_clip", "rasterio", "pandas", "torchvision")
PROBE = """
import sys
from msclip.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def heavy_modules_after(argv: list[str]) -> list[str]:
    """Heavy modules a fresh interpreter holds after the command line handled ``argv``."""
    env = {**os.environ, "PYTHONPATH": str(Path(msclip.__file__).parents[1])}
    probe = PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, timeout=120
    )
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("loaded:"), done.stderr
    return [m for m in line.removeprefix("loaded:").strip().split(",") if m]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["classify", "--help"],
        ["classify", "chips/", "--classes", "forest", "--bogus-option"],
        ["classify", "chips/", "--classes", "forest", "--precision", "fp64"],
        ["evaluate", "--help"],
        ["train", "--help"],
        ["map", "--help"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_help_and_argument_errors_do_not_import_the_stack(argv):
    assert heavy_modules_after(argv) == []


def test_the_stack_is_loaded_on_first_use():
    assert "classify" in dir(msclip)
    assert callable(msclip.classify) and msclip.load_model.__module__ == "msclip.models.model"
    with pytest.raises(AttributeError):
        _ = msclip.no_such_name
