"""GradCache gives the full-batch gradient; gradient accumulation does not; recall@k counts right."""

from __future__ import annotations

import pytest
import torch

from msclip import load_model
from msclip.training.loss import contrastive_step, make_loss
from msclip.training.metrics import retrieval_recall


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    model = load_model("msclip-tiny", random_init=True, device="cpu")
    model.clip.train()
    images = torch.randn(7, 10, 224, 224)
    tokens = model.tokenizer([f"caption number {i} of a field" for i in range(7)])
    return model, images, tokens


def _gradients(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.clip.named_parameters() if p.grad is not None}
    model.clip.zero_grad(set_to_none=True)
    return grads


def test_grad_cache_equals_full_batch_gradient(batch):
    model, images, tokens = batch
    loss_fn = make_loss()
    full_loss = contrastive_step(model.clip, loss_fn, images, tokens)
    full = _gradients(model)
    cached_loss = contrastive_step(model.clip, loss_fn, images, tokens, chunk=3)  # chunks of 3, 3, 1
    cached = _gradients(model)
    assert cached_loss == pytest.approx(full_loss, rel=1e-6)
    assert full.keys() == cached.keys() and "logit_scale" in full and "visual.conv1.weight" in full
    for name in full:
        torch.testing.assert_close(cached[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_accumulation_is_not_the_same_loss(batch):
    """Why GradCache: summing small-batch gradients sees fewer negatives and gives another gradient."""
    model, images, tokens = batch
    loss_fn = make_loss()
    contrastive_step(model.clip, loss_fn, images, tokens)
    full = _gradients(model)
    for part in range(0, 7, 4):
        contrastive_step(model.clip, loss_fn, images[part : part + 4], tokens[part : part + 4])
    accumulated = _gradients(model)
    assert not torch.allclose(accumulated["visual.conv1.weight"], full["visual.conv1.weight"], rtol=1e-2)


def test_retrieval_recall_with_several_captions_per_image():
    images = torch.eye(3)
    # texts 0, 1 belong to image 0; text 2 to image 1 but is nearest image 2; text 3 to image 2
    texts = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0], [0, 0.2, 1.0], [0, 0.5, 0.9]])
    texts = torch.nn.functional.normalize(texts, dim=-1)
    owners = torch.tensor([0, 0, 1, 2])
    recall = retrieval_recall(images, texts, owners, ks=(1, 2))
    assert recall["t2i_R@1"] == pytest.approx(3 / 4)
    assert recall["i2t_R@1"] == pytest.approx(1 / 3)  # images 1 and 2 both rank a foreign text first
    assert recall["i2t_R@2"] == recall["t2i_R@2"] == 1.0
