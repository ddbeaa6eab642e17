"""open_clip starts without transformers, and gets it back for a model whose text tower needs it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import msclip

PROBE = """
import sys
from msclip import load_model
load_model("msclip-tiny", device="cpu")
print("after msclip-tiny:", "transformers" in sys.modules)
from msclip.models.openclip_import import open_clip_for, needs_transformers
import open_clip
assert not needs_transformers(open_clip, "ViT-B-16") and needs_transformers(open_clip, "roberta-ViT-B-32")
open_clip_for("roberta-ViT-B-32")
print("after roberta:", sys.modules["open_clip.hf_model"].transformers is not None)
"""


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers installed")
def test_transformers_is_loaded_only_for_models_that_need_it():
    env = {**os.environ, "PYTHONPATH": str(Path(msclip.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "after msclip-tiny: False" in done.stdout and "after roberta: True" in done.stdout
