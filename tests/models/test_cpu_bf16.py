"""bf16 on the CPU: open_clip's blocks with oneDNN packed weights agree with open_clip's own forward."""

import copy

import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from msclip import load_model
from msclip.models import cpu_bf16

pytestmark = pytest.mark.skipif(
    not cpu_bf16.available(), reason="this torch build has no oneDNN packed products"
)

PROMPTS = ["a satellite image of a river", "snow", "an aerial photograph of fields next to a small town"]


def _blocks(model) -> list[torch.nn.Module]:
    return [m for m in model.clip.modules() if isinstance(m, ResidualAttentionBlock)]


def _open_clips_own(model, encode):
    """``encode()`` with the blocks as open_clip made them."""
    blocks = _blocks(model)
    for block in blocks:
        block.__class__ = ResidualAttentionBlock
    try:
        return encode()
    finally:
        for block in blocks:
            block.__class__ = cpu_bf16.PackedBlock


@pytest.fixture(scope="module")
def bf16_model():
    return load_model("msclip-tiny", device="cpu", precision="bf16")


def test_bf16_blocks_are_packed_and_agree_with_open_clip(bf16_model):
    blocks = _blocks(bf16_model)
    assert len(blocks) >= 2 and all(type(b) is cpu_bf16.PackedBlock for b in blocks)  # image and text towers
    images = torch.randn(3, 10, 224, 224)
    for encode in (lambda: bf16_model.encode_image(images), lambda: bf16_model.encode_text(PROMPTS)):
        agreement = F.cosine_similarity(encode(), _open_clips_own(bf16_model, encode))
        assert agreement.min() > 0.999


def test_state_dict_and_fp32_are_untouched(bf16_model):
    fp32 = load_model("msclip-tiny", device="cpu", precision="fp32")
    assert all(type(b) is ResidualAttentionBlock for b in _blocks(fp32))  # the exact path stays open_clip's
    assert list(bf16_model.clip.state_dict()) == list(fp32.clip.state_dict())


def test_gradients_take_open_clips_forward(bf16_model):
    block = _blocks(bf16_model)[0]
    x = torch.randn(2, 5, block.attn.embed_dim, dtype=torch.bfloat16)
    with torch.enable_grad():
        got = block(x)
    assert got.requires_grad and torch.equal(got, ResidualAttentionBlock.forward(block, x))


def test_packed_weights_follow_changes_and_copies():
    model = load_model("msclip-tiny", device="cpu", precision="bf16")
    images = torch.randn(2, 10, 224, 224)
    before = model.encode_image(images)
    with torch.no_grad():
        for block in _blocks(model):
            block.mlp.c_fc.weight.mul_(-1.5)  # in place: the packed copy is now stale
    after = model.encode_image(images)
    assert F.cosine_similarity(after, before).min() < 0.99
    assert (
        F.cosine_similarity(after, _open_clips_own(model, lambda: model.encode_image(images))).min() > 0.999
    )
    twin = copy.deepcopy(model)
    assert F.cosine_similarity(twin.encode_image(images), after).min() > 0.9999
