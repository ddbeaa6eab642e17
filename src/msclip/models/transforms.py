"""Model input transforms. Both are plain picklable objects so DataLoader workers can run them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


class MultispectralTransform:
    """As the reference: float32 reflectance, no scaling, antialiased bicubic resize of the shorter side,
    centre crop, per-band normalisation. Training's transform extends it (random crop and flips in place of
    the centre crop) and shares :meth:`resize`, so a model trains on the scale it is used at."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int = 224, scale: float = 1.0):
        self.mean = list(mean)
        self.std = list(std)
        self.size = size
        self.scale = scale  # 1/255 for 8-bit pictures (RGB models in training)

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        return self.normalize(F.center_crop(self.resize(array), [self.size, self.size]))

    def resize(self, array: np.ndarray) -> torch.Tensor:
        """The one resize rule: float32 (times ``scale``), shorter side to ``size`` (antialiased bicubic)."""
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.scale != 1.0:
            tensor = tensor * self.scale
        if min(tensor.shape[-2:]) != self.size:
            tensor = F.resize(tensor, [self.size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        return tensor

    def normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        return F.normalize(tensor, self.mean, self.std)


class RGBTransform:
    """OpenCLIP's own preprocessing of a PIL image, fed from an 8-bit (3, H, W) array."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        from PIL import Image

        return self.preprocess(Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0))))
