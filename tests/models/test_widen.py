import pytest
import torch

from msclip import load_model
from msclip.bands import RGB, S2_10
from msclip.models.widen import widen_patch_embedding


def test_rgb_filters_go_to_b04_b03_b02_and_new_bands_start_at_zero():
    weight = torch.randn(4, 3, 2, 2)
    widened = widen_patch_embedding(weight, S2_10)
    assert widened.shape == (4, 10, 2, 2)
    for rgb_index, band in enumerate(RGB):
        assert torch.equal(widened[:, S2_10.index(band)], weight[:, rgb_index])
    others = [i for i, b in enumerate(S2_10) if b not in RGB]
    assert widened[:, others].abs().sum() == 0


def test_mean_init_fills_new_bands_with_mean_rgb_filter():
    weight = torch.randn(4, 3, 2, 2)
    widened = widen_patch_embedding(weight, S2_10, init="mean")
    assert torch.allclose(widened[:, S2_10.index("B11")], weight.mean(dim=1))


def test_widening_needs_rgb_bands():
    with pytest.raises(ValueError, match="missing"):
        widen_patch_embedding(torch.randn(4, 3, 2, 2), ("B05", "B06", "B07"))


def test_widened_model_equals_rgb_model_on_the_rgb_part_of_the_input():
    torch.manual_seed(0)
    rgb = load_model("msclip-tiny", bands=RGB, device="cpu")
    ms = load_model("msclip-tiny", bands=S2_10, device="cpu")
    state = {k: v for k, v in rgb.clip.state_dict().items() if k != "visual.conv1.weight"}
    ms.clip.load_state_dict(state, strict=False)
    ms.clip.visual.conv1.weight.data = widen_patch_embedding(rgb.clip.visual.conv1.weight.data, S2_10)
    x_rgb = torch.randn(2, 3, 224, 224)
    x_ms = torch.randn(2, 10, 224, 224)  # other bands hold anything: their filters are zero
    for rgb_index, band in enumerate(RGB):
        x_ms[:, S2_10.index(band)] = x_rgb[:, rgb_index]
    assert torch.allclose(rgb.encode_image(x_rgb), ms.encode_image(x_ms), atol=1e-5)
