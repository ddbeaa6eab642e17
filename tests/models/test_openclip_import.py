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


DYNAMO_PROBE = """
import sys
from msclip.models.openclip_import import import_open_clip
import_open_clip()
print("dynamo after open_clip:", "torch._dynamo" in sys.modules)
import torch, torchvision, open_clip
from torchvision.ops import nms, roi_align
from torchvision.ops import roi_align as roi_align_module
assert roi_align(torch.rand(1, 1, 8, 8), torch.tensor([[0.0, 0, 0, 4, 4]]), output_size=2).shape == (1, 1, 2, 2)
assert nms(torch.tensor([[0.0, 0, 4, 4], [0, 0, 4, 4]]), torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
assert sys.modules["torchvision.ops.roi_align"].is_compile_supported("cpu") is True
import torch._dynamo.utils
assert torch._dynamo.utils.is_compile_supported.__module__ == "torch._dynamo.utils"
assert torch.compile(lambda x: x + 1, backend="eager")(torch.ones(1)).item() == 2
assert open_clip.image_transform(32, is_train=False)(__import__("PIL.Image").Image.new("RGB", (40, 40))).shape == (3, 32, 32)
print("torchvision, torch._dynamo and open_clip's transforms work")
"""


def test_torchvision_loads_without_torch_dynamo_and_both_work_after():
    """open_clip's torchvision import leaves torch._dynamo unloaded (~1.4 s of every start); a user's own
    torchvision ops, torch.compile and open_clip's transforms still work afterwards."""
    env = {**os.environ, "PYTHONPATH": str(Path(msclip.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", DYNAMO_PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "dynamo after open_clip: False" in done.stdout
    assert "torchvision, torch._dynamo and open_clip's transforms work" in done.stdout
