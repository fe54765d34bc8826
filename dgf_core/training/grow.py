"""Start a StyleGAN2 at a higher resolution from a trained one at half of it (`train --init-from` a 64-px model for a
128-px run), so that the new model begins where the old one was instead of from noise.

- G: every layer of the small model is copied (the mapping, the constant, the 4..R/2 convolutions, their ToRGBs and
  const-noise buffers). The new R-px block (two convolutions) starts from its random init, and its ToRGB from zero:
  with the skip architecture the output is then exactly the small model's image, upsampled by G's own FIR filter,
  and the new block fades in as its ToRGB grows (ProGAN's fade-in, learned instead of scheduled).
- D: every block of the small discriminator is copied one position deeper. The new input path (from_rgb at R and
  the first residual block, R -> R/2) is set so that it computes the small D's input layer on the image
  downsampled by D's own blur-and-stride: from_rgb writes +x and -x, each through the leaky ReLU (so that
  x = (lrelu(x) - lrelu(-x)) / 1.2 stays recoverable), conv1 passes those six channels on, conv2 takes x back out
  of them with the small D's from_rgb weights and bias, and the skip is off. D at R then scores an image as the small
  D scored its downsampled copy (up to the blur). The remaining weights of the new path get a small random init
  (GROW_NOISE of their usual scale) so that they learn (a weight that is exactly zero in a chain of zeros would
  get no gradient).
Both need the same architecture apart from resolution: `check_growable` says why not, otherwise.
"""
from __future__ import annotations

import dataclasses

import torch

from ..models.stylegan import SQRT2, Discriminator, Generator, StyleGAN2Config

GROW_NOISE = 0.05  # the new D path's free weights: this times their usual (unit-variance, equalized) init


def check_growable(small: StyleGAN2Config, big: StyleGAN2Config) -> None:
    """ValueError unless `big` is `small` at twice the resolution, with room for the +-RGB channels in D."""
    if big.resolution != 2 * small.resolution:
        raise ValueError(f"can grow a {small.resolution}-px StyleGAN2 to {2 * small.resolution} px only, "
                         f"not to {big.resolution} px")
    a, b = dataclasses.asdict(small), dataclasses.asdict(big)
    a.pop("resolution"), b.pop("resolution")
    if a != b:
        diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        raise ValueError(f"can grow only the same architecture at twice the resolution; these differ: {diff}")
    if big.d_channels(big.resolution) < 2 * big.img_channels:
        raise ValueError(f"D has {big.d_channels(big.resolution)} channels at {big.resolution} px, fewer than the "
                         f"{2 * big.img_channels} that carry the image into the grown input path")


@torch.no_grad()
def grow_generator(small: Generator, big: Generator) -> None:
    """Copy `small` into `big` (twice its resolution); the new block's ToRGB starts at zero (see the module note)."""
    check_growable(small.cfg, big.cfg)
    big.load_state_dict(small.state_dict(), strict=False)  # the missing keys are the new block's
    new_rgb = big.to_rgbs[-1]
    new_rgb.conv.weight.zero_()
    new_rgb.bias.zero_()


@torch.no_grad()
def grow_discriminator(small: Discriminator, big: Discriminator) -> None:
    """Copy `small` into `big` (twice its resolution) one block deeper, and set the new input path to compute
    small's input layer on the blur-downsampled image (see the module note)."""
    check_growable(small.cfg, big.cfg)
    state = {}
    for k, v in small.state_dict().items():
        if k.startswith("blocks."):
            i, rest = k[len("blocks."):].split(".", 1)
            k = f"blocks.{int(i) + 1}.{rest}"
        elif k.startswith("from_rgb."):
            continue
        state[k] = v
    missing, unexpected = big.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    c = big.cfg.img_channels
    rgb, block = big.from_rgb, big.blocks[0]
    for conv in (rgb, block.conv1, block.conv2, block.skip):  # small random init everywhere, then the exact part
        conv.weight.normal_().mul_(GROW_NOISE)
        if conv.bias is not None:
            conv.bias.zero_()
    # from_rgb (1x1): channel j <- +x_j, channel c + j <- -x_j, before its leaky ReLU and gain sqrt 2
    eye = torch.eye(c) / rgb.scale
    rgb.weight[:c, :, 0, 0] = eye
    rgb.weight[c:2 * c, :, 0, 0] = -eye
    # conv1 (3x3): the 2c channels pass through the centre tap (another leaky ReLU and gain); then
    # p - n = (2 + 2 * 0.2**2) x = 2.08 x for either sign of x
    k = block.conv1
    k.weight[:2 * c, :2 * c] = 0.0
    k.weight[:2 * c, :2 * c, 1, 1] = torch.eye(2 * c) / k.scale
    # conv2 (3x3, blur + stride 2): sqrt 2 * small's from_rgb applied to (p - n) / 2.08 at the centre tap; the
    # residual block divides by sqrt 2, and lrelu(sqrt 2 * z) = sqrt 2 * lrelu(z)
    gain = 2.0 + 2.0 * 0.2**2
    w_small = small.from_rgb.weight[:, :, 0, 0] * small.from_rgb.scale  # (C_out, c) effective
    k = block.conv2
    k.weight[:, :2 * c] = 0.0
    k.weight[:, :c, 1, 1] = SQRT2 * w_small / gain / k.scale
    k.weight[:, c:2 * c, 1, 1] = -SQRT2 * w_small / gain / k.scale
    k.bias.copy_(SQRT2 * small.from_rgb.bias)
    block.skip.weight.mul_(0.0)  # off: a skip of the +-x channels would add a linear term small's D does not have

