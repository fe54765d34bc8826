"""Differentiable augmentation for GAN training on small data sets (DiffAugment, Zhao et al. 2020).

With about 15k faces seen dozens of times, the discriminator memorizes the training set and its gradients stop
helping the generator. DiffAugment applies the same family of random, differentiable transforms to every image
the discriminator sees, real and generated, in the D step and in the G step, so D cannot tell the two apart by
augmentation artefacts and G still receives gradients through the transforms.

Policies (comma-separated, applied in this order): `color` (brightness, saturation, contrast), `translation`
(shift by up to 1/8 of the side, zero fill), `cutout` (one zeroed square of half the side). `p` is the
probability that a transform is applied to each image (1.0: always, as in the paper; smaller values are
ADA-style partial augmentation). All randomness comes from an explicit `torch.Generator`, so a training step
is a function of its seed and an exact resume stays exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' or None -> (). Raises ValueError on unknown names."""
    names = tuple(p.strip() for p in (policy or "").split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; known: {', '.join(POLICIES)} (comma-separated)")
    return names


def _rand(n: int, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(n,) uniform [0, 1) on x's device, in float32 whatever x's dtype (the generator's device decides)."""
    return torch.rand(n, generator=g, device=g.device).to(x.device)


def _applied(n: int, p: float, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(n, 1, 1, 1) mask: 1 where the transform applies (probability p), always drawn so draws stay aligned."""
    return (_rand(n, x, g) < p).to(x.dtype)[:, None, None, None]


def color(x: torch.Tensor, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    """x: (N, C, H, W) in [-1, 1]. Brightness +U(-0.5, 0.5), saturation xU(0, 2), contrast xU(0.5, 1.5)
    (the paper's ranges, which it states for [-1, 1] images)."""
    n = x.shape[0]
    m = _applied(n, p, x, g)
    b = (_rand(n, x, g) - 0.5).to(x.dtype)[:, None, None, None]
    y = x + b * m
    s = (_rand(n, x, g) * 2).to(x.dtype)[:, None, None, None]
    mean = y.mean(1, keepdim=True)
    y = torch.lerp(y, (y - mean) * s + mean, m)
    c = (_rand(n, x, g) + 0.5).to(x.dtype)[:, None, None, None]
    mean = y.mean((1, 2, 3), keepdim=True)
    return torch.lerp(y, (y - mean) * c + mean, m)


def translation(x: torch.Tensor, g: torch.Generator, p: float = 1.0, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by integer offsets in [-ratio*side, ratio*side], filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    m = _applied(n, p, x, g)[:, 0, 0, 0].long()
    ty = ((_rand(n, x, g) * (2 * sh + 1)).long() - sh) * m
    tx = ((_rand(n, x, g) * (2 * sw + 1)).long() - sw) * m
    rows = (torch.arange(h, device=x.device)[None, :] + ty[:, None] + sh)  # (N, H) index into the padded image
    cols = (torch.arange(w, device=x.device)[None, :] + tx[:, None] + sw)  # (N, W)
    padded = F.pad(x, [sw, sw, sh, sh])  # (N, C, H + 2sh, W + 2sw)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, g: torch.Generator, p: float = 1.0, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of side ratio*side per image, centred anywhere (clipped at the borders)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    m = _applied(n, p, x, g)
    cy = (_rand(n, x, g) * (h + 1 - ch % 2)).long()
    cx = (_rand(n, x, g) * (w + 1 - cw % 2)).long()
    ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - ch // 2)  # (N, H): inside when 0 <= ys < ch
    xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cw // 2)
    inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]  # (N, H, W)
    keep = 1 - inside[:, None].to(x.dtype) * m
    return x * keep


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...] | str, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    """Apply the policy's transforms to x: (N, C, H, W) in [-1, 1]; differentiable with respect to x."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    assert x.ndim == 4, f"expected (N, C, H, W), got {tuple(x.shape)}"
    for name in names:
        x = _OPS[name](x, g, p)
    return x
