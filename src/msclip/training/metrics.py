"""Retrieval recall@k on held-out pairs, the validation figure of contrastive training."""

from __future__ import annotations

import torch


def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Image-to-text and text-to-image recall@k from L2-normalised features.

    ``text_to_image[j]`` is the image of caption j (an image may have several captions): an image counts
    as found when any of its captions is among its k best texts.
    """
    similarity = image_features @ text_features.T  # (images, texts)
    n_images, n_texts = similarity.shape
    owner = text_to_image.view(1, -1) == torch.arange(n_images).view(-1, 1)  # (images, texts)
    text_ranks = similarity.argsort(dim=1, descending=True)
    hits_i2t = owner.gather(1, text_ranks).float()  # ranked texts, 1 where the text belongs to the image
    first_i2t = torch.where(hits_i2t.any(dim=1), hits_i2t.argmax(dim=1), torch.full((n_images,), n_texts))
    image_ranks = similarity.T.argsort(dim=1, descending=True)  # (texts, images)
    first_t2i = (image_ranks == text_to_image.view(-1, 1)).float().argmax(dim=1)
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = float((first_i2t < k).float().mean())
        out[f"t2i_R@{k}"] = float((first_t2i < k).float().mean())
    return out
