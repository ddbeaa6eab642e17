"""open_clip starts without transformers and timm, and gets them back for a model whose towers need them."""

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
print("after msclip-tiny:", "transformers" in sys.modules or "timm" in sys.modules)
from msclip.models.openclip_import import open_clip_for, needed_libraries
import open_clip
assert needed_libraries(open_clip, "ViT-B-16") == []
assert needed_libraries(open_clip, "roberta-ViT-B-32") == ["transformers"]
assert needed_libraries(open_clip, "ViT-SO400M-14-SigLIP") == ["timm"]
open_clip_for("roberta-ViT-B-32")
print("after roberta:", sys.modules["open_clip.hf_model"].transformers is not None)
open_clip_for("ViT-SO400M-14-SigLIP")
print("after siglip:", sys.modules["open_clip.timm_model"].timm is not None)
"""


@pytest.mark.skipif(
    not (importlib.util.find_spec("transformers") and importlib.util.find_spec("timm")),
    reason="needs transformers and timm installed",
)
def test_optional_libraries_are_loaded_only_for_models_that_need_them():
    env = {**os.environ, "PYTHONPATH": str(Path(msclip.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "after msclip-tiny: False" in done.stdout
    assert "after roberta: True" in done.stdout and "after siglip: True" in done.stdout
