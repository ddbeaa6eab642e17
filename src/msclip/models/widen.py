"""Widening an RGB patch embedding to Sentinel-2 bands, as the paper did for Llama3-MS-CLIP."""

from __future__ import annotations

from typing import Literal

import torch

from msclip.bands import RGB


def widen_patch_embedding(
    weight: torch.Tensor, bands: tuple[str, ...], init: Literal["zeros", "mean"] = "zeros"
) -> torch.Tensor:
    """(D, 3, P, P) RGB filters -> (D, len(bands), P, P): R, G, B go to B04, B03, B02; other bands start
    at zero (the paper) or at the mean of the RGB filters."""
    missing = [b for b in RGB if b not in bands]
    if missing:
        raise ValueError(f"widening needs the RGB bands {RGB} among the target bands; missing {missing}")
    out_channels, _, height, width = weight.shape
    if init == "zeros":
        widened = weight.new_zeros(out_channels, len(bands), height, width)
    elif init == "mean":
        widened = weight.mean(dim=1, keepdim=True).repeat(1, len(bands), 1, 1)
    else:
        raise ValueError(f"unknown init {init!r}; use 'zeros' or 'mean'")
    for rgb_index, band in enumerate(RGB):
        widened[:, bands.index(band)] = weight[:, rgb_index]
    return widened
