"""Model input transforms. Both are plain picklable objects so DataLoader workers can run them."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


class MultispectralTransform:
    """As the reference: float32 reflectance, no scaling, antialiased bicubic resize of the shorter side,
    centre crop, per-band normalisation."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], size: int = 224):
        self.mean = list(mean)
        self.std = list(std)
        self.size = size

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if min(tensor.shape[-2:]) != self.size:
            tensor = F.resize(tensor, [self.size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        tensor = F.center_crop(tensor, [self.size, self.size])
        return F.normalize(tensor, self.mean, self.std)


class RGBTransform:
    """OpenCLIP's own preprocessing of a PIL image, fed from an 8-bit (3, H, W) array."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        from PIL import Image

        return self.preprocess(Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0))))
