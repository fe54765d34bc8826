"""The losses and the measure that projection and pivotal tuning share, as small pure functions: a multi-scale pixel
loss (`multiscale_pixel_loss`), discriminator feature matching (`discriminator_features`, `feature_matching_loss`)
and the PSNR of 8-bit images (`psnr_rgb`); and `ProjectionError`, the user-facing error of the photo -> latent path
(projection, tuning, saved latents). Images are (N, C, H, W) in [-1, 1]."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionError(ValueError):
    """Bad projection input (wrong image shape, unknown space, a latent for another model)."""


def multiscale_pixel_loss(x: torch.Tensor, y: torch.Tensor, scales: int = 3, l1_weight: float = 1.0) -> torch.Tensor:
    """Mean over scales (1, 1/2, 1/4, ...) of MSE + l1_weight * L1 between (N, C, H, W) images in [-1, 1]."""
    assert x.shape == y.shape, f"{tuple(x.shape)} vs {tuple(y.shape)}"
    total = x.new_zeros(())
    n = 0
    for s in range(scales):
        if s:
            if min(x.shape[-2:]) < 4:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + F.mse_loss(x, y) + l1_weight * F.l1_loss(x, y)
        n += 1
    return total / n


def discriminator_features(d: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Intermediate activations of a discriminator: after each LeakyReLU of a DCGAN D (`features`), after
    `from_rgb` and each residual block of a StyleGAN2 D (`blocks`). x: (N, C, R, R) in [-1, 1]."""
    feats = []
    if hasattr(d, "blocks") and hasattr(d, "from_rgb"):
        h = d.from_rgb(x)
        feats.append(h)
        for block in d.blocks:
            h = block(h)
            feats.append(h)
        return feats
    if isinstance(getattr(d, "features", None), nn.Sequential):
        h = x
        for m in d.features:
            h = m(h)
            if isinstance(m, nn.LeakyReLU):
                feats.append(h)
        return feats
    raise ProjectionError(f"no feature layers known for discriminator {type(d).__name__}")


def feature_matching_loss(fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of L1(fx, fy) / mean |fy| (each layer counts the same whatever its scale)."""
    return sum((a - b).abs().mean() / (b.abs().mean() + 1e-8) for a, b in zip(fx, fy)) / max(1, len(fx))


def psnr_rgb(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of two (N, 3, H, W) images in [-1, 1], after rounding to 8 bits as they would be saved."""
    a = x.detach().float().add(1).mul(127.5).round().clamp(0, 255)
    b = y.detach().float().add(1).mul(127.5).round().clamp(0, 255)
    mse = float((a - b).square().mean())
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))
