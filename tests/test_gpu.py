"""The CUDA path: --precision auto, pinned batches, agreement with the CPU (skipped without a GPU)."""

import pytest
import torch

from msclip import classify, embed, load_model
from msclip.runtime import resolve_precision
from tests.conftest import L2A_CHIPS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_precision_on_cuda_is_bf16_where_supported():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", "cuda") == expected
    model = load_model("msclip-tiny", device="cuda", precision="auto")
    assert model.precision == expected and next(model.clip.parameters()).is_cuda


def test_cuda_embeddings_agree_with_the_cpu():
    cpu = embed(load_model("msclip-tiny", device="cpu", precision="fp32"), [L2A_CHIPS]).table
    for precision, tolerance in (("fp32", 1e-4), ("auto", 2e-2)):
        gpu = embed(load_model("msclip-tiny", device="cuda", precision=precision), [L2A_CHIPS]).table
        for a, b in zip(cpu["embedding"], gpu["embedding"], strict=True):
            assert (
                torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=0) > 1 - tolerance
            )


def test_cuda_classify_keeps_the_top_class():
    names = ["ocean", "agriculture", "snow"]
    cpu = classify(load_model("msclip-tiny", device="cpu"), [L2A_CHIPS], names, ["a {c}"]).table
    gpu = classify(
        load_model("msclip-tiny", device="cuda", precision="fp32"), [L2A_CHIPS], names, ["a {c}"]
    ).table
    assert gpu["label"].tolist() == cpu["label"].tolist()


def test_pinned_batches_reach_the_gpu_without_blocking():
    model = load_model("msclip-tiny", device="cuda", precision="auto")
    images = torch.randn(4, len(model.bands), 224, 224).pin_memory()
    assert model.encode_image(images).shape == (4, model.clip.visual.output_dim)
