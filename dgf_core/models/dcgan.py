"""DCGAN (Radford, Metz & Chintala, 2016, arXiv:1511.06434), as the paper describes it.

Paper guidelines followed here:
- all-convolutional: strided convolutions in D, fractionally-strided (transposed) convolutions in G,
  no pooling, no fully connected hidden layers (z is projected by a 4x4 transposed convolution);
- batch norm in G and D, except G's output layer and D's input layer;
- ReLU in G with tanh on the output; LeakyReLU(0.2) in D;
- weights initialised from N(0, 0.02) (batch-norm scales from N(1, 0.02), biases 0).
D returns logits; the loss applies the sigmoid (`BCEWithLogits`), which is the paper's sigmoid + BCE
computed stably. The stride-2 4x4 layers (ops.Conv4s2, ops.ConvTranspose4s2) are torch's Conv2d / ConvTranspose2d
with a faster CPU path for bf16 training on small images: the same parameters and function.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .ops import Conv4s2, ConvTranspose4s2


@dataclass
class DCGANConfig:
    resolution: int = 64  # output side: 64 in the paper; any power of two >= 8 (128 adds one stage)
    z_dim: int = 100  # the paper's 100-dimensional uniform/normal z
    g_channels: int = 64  # G's channels at the last hidden stage (doubled per stage towards 4x4)
    d_channels: int = 64  # D's channels at the first stage
    img_channels: int = 3

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {r}")
        for name in ("z_dim", "g_channels", "d_channels", "img_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"DCGAN {name} must be positive, got {getattr(self, name)}")

    @property
    def n_stages(self) -> int:
        """Number of x2 stages between 4x4 and the output (4 for 64x64)."""
        return self.resolution.bit_length() - 3


def init_weights(module: nn.Module) -> None:
    """The paper's init: conv weights ~ N(0, 0.02); batch-norm gamma ~ N(1, 0.02), beta = 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.n_stages
        ch = [cfg.g_channels * 2 ** (n - 1 - i) for i in range(n)]  # 64x64: 512, 256, 128, 64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, ch[0], 4, 1, 0, bias=False),  # (N, z, 1, 1) -> (N, ch0, 4, 4)
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [ConvTranspose4s2(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [ConvTranspose4s2(ch[-1], cfg.img_channels), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, z_dim) -> images (N, C, R, R) in [-1, 1]."""
        assert z.ndim == 2 and z.shape[1] == self.cfg.z_dim, f"expected (N, {self.cfg.z_dim}), got {tuple(z.shape)}"
        return self.main(z[:, :, None, None])

    def inference_module(self) -> nn.Module:
        """A frozen copy for sampling that computes the same function as eval() (the reference path), faster
        on CPUs: batch norm folded into the convolutions and the 1x1 -> 4x4 projection as one matrix product.
        (Rewriting the stride-2 transposed convolutions as 3x3 convolutions + pixel shuffle was measured
        slower at batch 1: it reads 2.25x the weights.)"""
        return _FastGenerator(fuse_generator(self), self.cfg.z_dim)


class Discriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.n_stages
        ch = [cfg.d_channels * 2**i for i in range(n)]  # 64x64: 64, 128, 256, 512
        layers: list[nn.Module] = [
            Conv4s2(cfg.img_channels, ch[0]),  # no batch norm on D's input layer
            nn.LeakyReLU(0.2, True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [Conv4s2(c_in, c_out), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # (N, C, R, R) -> (N, ch[-1], 4, 4)
        self.head = nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False)  # -> (N, 1, 1, 1)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, R, R) in [-1, 1] -> logits (N,)."""
        return self.head(self.features(x)).flatten()


def fuse_generator(g: Generator) -> nn.Sequential:
    """Inference fast path: fold each eval-mode BatchNorm into the transposed conv before it.

    Returns a new module computing the same function as `g.eval()` (the reference path that tests compare
    against) with half the memory passes. Input is (N, z_dim, 1, 1).
    """
    fused: list[nn.Module] = []
    mods = list(g.main)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.ConvTranspose2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            bn = mods[i + 1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # per output channel
            conv = nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=True)
            with torch.no_grad():
                conv.weight.copy_(m.weight * scale[None, :, None, None])  # weight: (in, out, k, k)
                conv.bias.copy_(bn.bias - bn.running_mean * scale)
            fused.append(conv)
            i += 2
        else:
            fused.append(m)
            i += 1
    return nn.Sequential(*fused).eval().requires_grad_(False)


class _Projection(nn.Module):
    """ConvTranspose2d(k=4, s=1, p=0) on a 1x1 input is a matrix product: (N, z) -> (N, C, 4, 4)."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        c_in, c_out, k, _ = conv.weight.shape
        self.shape = (c_out, k, k)
        self.weight = nn.Parameter(conv.weight.detach().reshape(c_in, -1).t().contiguous(), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(c_out)
        self.bias = nn.Parameter(bias[:, None].expand(c_out, k * k).reshape(-1).contiguous(), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(z, self.weight, self.bias).view(z.shape[0], *self.shape)


class _FastGenerator(nn.Module):
    def __init__(self, fused: nn.Sequential, z_dim: int):
        super().__init__()
        self.z_dim = z_dim
        mods = list(fused)
        layers: list[nn.Module] = [_Projection(mods[0])]
        for m in mods[1:]:
            layers.append(m)
        self.main = nn.Sequential(*layers).eval().requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, z_dim) -> images (N, C, R, R) in [-1, 1]."""
        return self.main(z)
