"""Progressive face super-resolution GAN (after Wang et al. 2018, "A Fully Progressive Approach to
Single-Image Super-Resolution", ProSR), sized to run on a CPU.

Generator: x2 stages stacked to x4.
- Stage 1 works at the input resolution: a 3x3 head, `blocks1` residual dense blocks (RDB-lite: `dense_layers`
  3x3 convolutions with growth `growth`, densely connected, a 1x1 fuse and a scaled residual), then a 3x3
  convolution and pixel shuffle to 2x the resolution with `channels2` features.
- Stage 2 works at 2x: `blocks2` smaller residual dense blocks on those features, then pixel shuffle to 4x with
  `channels4` features.
- Each stage has its own to-RGB convolution; it predicts a residual over the bicubic upscale of the input, so
  the untrained network already equals bicubic and training only has to learn the missing detail.
  `forward(x, factor=2)` runs stage 1 only (x2 is the first stage alone); `factor=4` runs both.
- No batch norm, no noise, no state: one image's output does not depend on the rest of the batch, and the
  same input always gives the same output (what makes upscaled clips stable frame to frame).

Discriminator: a small all-convolutional patch critic on 4x outputs; it also returns its intermediate
activations so the generator can be trained with feature matching (Salimans et al. 2016).

Images are float in [-1, 1], (N, 3, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FACTORS = (2, 4)


@dataclass
class UpscalerConfig:
    channels: int = 32  # features at the input resolution (stage 1)
    growth: int = 16  # channels added by each dense layer of a stage-1 block
    dense_layers: int = 3  # 3x3 convolutions per residual dense block
    blocks1: int = 3  # residual dense blocks in stage 1 (at the input resolution)
    channels2: int = 16  # features at 2x (after the first pixel shuffle)
    growth2: int = 8
    blocks2: int = 1  # residual dense blocks in stage 2 (at 2x)
    channels4: int = 8  # features at 4x (after the second pixel shuffle)
    d_channels: int = 32  # discriminator width at its first layer
    d_layers: int = 4  # stride-2 stages of the discriminator
    res_scale: float = 0.2  # residual scaling inside the dense blocks (ESRGAN)
    img_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("channels", "growth", "dense_layers", "channels2", "growth2", "channels4", "d_channels",
                     "d_layers", "img_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"upscaler {name} must be positive, got {getattr(self, name)}")
        if self.blocks1 < 0 or self.blocks2 < 0:
            raise ValueError("upscaler blocks1/blocks2 must be >= 0")


class ResidualDenseBlock(nn.Module):
    """x -> x + res_scale * fuse([x, c1, c2, ...]), each c_i = lrelu(conv3x3([x, c1, ..., c_{i-1}]))."""

    def __init__(self, channels: int, growth: int, layers: int, res_scale: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + i * growth, growth, 3, padding=1) for i in range(layers))
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + self.res_scale * self.fuse(torch.cat(feats, 1))


class UpsampleStage(nn.Module):
    """(N, c_in, H, W) -> (N, c_out, 2H, 2W): blocks, a global skip, conv to 4*c_out, pixel shuffle."""

    def __init__(self, c_in: int, growth: int, layers: int, blocks: int, c_out: int, res_scale: float) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(c_in, growth, layers, res_scale) for _ in range(blocks)))
        self.up = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.blocks(x)
        return F.leaky_relu(F.pixel_shuffle(self.up(x), 2), 0.2)


def bicubic(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The reference upscale every stage adds its residual to (align_corners=False, like PIL's centres)."""
    return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)


class Generator(nn.Module):
    def __init__(self, cfg: UpscalerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.head = nn.Conv2d(cfg.img_channels, c, 3, padding=1)
        self.stage1 = UpsampleStage(c, cfg.growth, cfg.dense_layers, cfg.blocks1, cfg.channels2, cfg.res_scale)
        self.stage2 = UpsampleStage(cfg.channels2, cfg.growth2, cfg.dense_layers, cfg.blocks2, cfg.channels4, cfg.res_scale)
        self.to_rgb2 = nn.Conv2d(cfg.channels2, cfg.img_channels, 3, padding=1)
        self.to_rgb4 = nn.Conv2d(cfg.channels4, cfg.img_channels, 3, padding=1)
        # start as exact bicubic: zero residual outputs
        for conv in (self.to_rgb2, self.to_rgb4):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, h, w) in [-1, 1] -> (x2 (N, 3, 2h, 2w), x4 (N, 3, 4h, 4w)); what training supervises."""
        f2 = self.stage1(F.leaky_relu(self.head(x), 0.2))
        out2 = bicubic(x, 2) + self.to_rgb2(f2)
        out4 = bicubic(x, 4) + self.to_rgb4(self.stage2(f2))
        return out2, out4

    def forward(self, x: torch.Tensor, factor: int = 4) -> torch.Tensor:
        """(N, 3, h, w) in [-1, 1] -> (N, 3, factor*h, factor*w), not clamped."""
        assert x.ndim == 4 and x.shape[1] == self.cfg.img_channels, f"expected (N, 3, h, w), got {tuple(x.shape)}"
        if factor not in FACTORS:
            raise ValueError(f"factor must be one of {FACTORS}, got {factor}")
        f2 = self.stage1(F.leaky_relu(self.head(x), 0.2))
        if factor == 2:
            return bicubic(x, 2) + self.to_rgb2(f2)
        return bicubic(x, 4) + self.to_rgb4(self.stage2(f2))


class Discriminator(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (patch logits (N, 1, H/2^L, W/2^L), [features per stage])."""

    def __init__(self, cfg: UpscalerConfig) -> None:
        super().__init__()
        layers, c_in = [], cfg.img_channels
        for i in range(cfg.d_layers):
            c_out = min(cfg.d_channels * 2**i, 256)
            layers.append(nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(c_out, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            ))
            c_in = c_out
        self.stages = nn.ModuleList(layers)
        self.out = nn.Conv2d(c_in, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return self.out(x), feats
