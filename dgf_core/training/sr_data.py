"""Super-resolution data: real high-resolution faces in memory, random HR patches, and the degradation that
makes their low-resolution inputs.

- HR faces: each file is resized so its shorter side is `HR_SIDE` (176: a slight *down*scale of both the
  178x218 CelebA originals and the 200x200 UTKFace crops, so targets stay sharp) and centre-cropped square;
  the set is decoded once into a (N, 3, 176, 176) uint8 tensor. The 89x109 CelebA folder is too small to be
  a 4x target and is not used. The held-out split is `data.is_heldout` (by file name), as everywhere.
- Patches: a random square of side `patch / s` (s drawn in [min_scale, 1], so faces appear at several sizes,
  never upscaled) is cut from each face, resized to `patch` with antialiasing and flipped at random.
- Degradation (`degrade`), per image, from its own seeded draw: Gaussian blur of the HR (sigma in
  [0, max_blur] HR pixels, 0 with probability 1/2), antialiased bicubic x1/4 downscale, Gaussian noise
  (std in [0, max_noise] of the [0, 1] range, 0 with probability 1/2), rounded to uint8 like any real input.
  Mild and randomized so the model sharpens generator output (itself soft and slightly noisy), not only
  clean bicubic downscales. `bicubic_down` is the clean, deterministic reference used for evaluation.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DataError, list_images, load_image

HR_SIDE = 176  # stored side of the high-resolution faces


@dataclass(frozen=True)
class Degradation:
    max_blur: float = 1.2  # Gaussian sigma of the HR blur, in HR pixels
    max_noise: float = 0.02  # noise std as a fraction of the [0, 1] range (0.02 ~ 5 grey levels)
    p_blur: float = 0.5
    p_noise: float = 0.5

    def __post_init__(self) -> None:
        if self.max_blur < 0 or self.max_noise < 0 or not (0 <= self.p_blur <= 1 and 0 <= self.p_noise <= 1):
            raise ValueError(f"bad degradation {self}")


NO_DEGRADATION = Degradation(0.0, 0.0, 0.0, 0.0)


def load_hr_faces(
    roots: str | os.PathLike | Sequence[str | os.PathLike], split: str = "train", *, side: int = HR_SIDE,
    every: int = 1, limit: int | None = None, workers: int = 2,
) -> tuple[torch.Tensor, list[Path]]:
    """Decode faces of `split` under `roots` (every `every`-th file, at most `limit`) -> ((N, 3, side, side)
    uint8, paths). Files smaller than `side` on their shorter side are skipped: they cannot be sharp targets."""
    from PIL import Image

    paths = list_images(roots, split)[:: max(1, every)]
    if limit is not None:
        paths = paths[:limit]

    def one(p: Path) -> np.ndarray | None:
        try:
            with Image.open(p) as im:
                if min(im.size) < side:
                    return None
        except OSError:
            return None
        return load_image(p, side)

    with ThreadPoolExecutor(max(1, workers)) as ex:
        arrays = list(ex.map(one, paths))
    keep = [(p, a) for p, a in zip(paths, arrays) if a is not None]
    if not keep:
        raise DataError(f"no {split} images of at least {side}x{side} under {roots}")
    images = torch.from_numpy(np.stack([a for _, a in keep])).permute(0, 3, 1, 2).contiguous()
    return images, [p for p, _ in keep]


def random_patches(
    faces_u8: torch.Tensor, n: int, patch: int, generator: torch.Generator, min_scale: float = 0.75,
) -> torch.Tensor:
    """(N, 3, S, S) uint8 -> (n, 3, patch, patch) float in [-1, 1]: random faces, crops, sizes and flips."""
    assert faces_u8.ndim == 4 and faces_u8.dtype == torch.uint8, f"expected uint8 (N, 3, S, S), got {faces_u8.dtype} {tuple(faces_u8.shape)}"
    N, _, H, W = faces_u8.shape
    s = float(torch.empty(()).uniform_(min_scale, 1.0, generator=generator))
    side = min(H, W, max(patch, round(patch / s)))  # the same crop size for the whole batch
    idx = torch.randint(N, (n,), generator=generator)
    ys = torch.randint(H - side + 1, (n,), generator=generator)
    xs = torch.randint(W - side + 1, (n,), generator=generator)
    crops = torch.stack([faces_u8[i, :, y : y + side, x : x + side] for i, y, x in zip(idx.tolist(), ys.tolist(), xs.tolist())])
    crops = crops.float().div_(127.5).sub_(1.0)
    if side != patch:
        crops = F.interpolate(crops, size=(patch, patch), mode="bicubic", align_corners=False, antialias=True)
    flip = torch.rand(n, generator=generator) < 0.5
    crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
    return crops.clamp_(-1.0, 1.0)


def bicubic_down(hr: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 3, H/f, W/f): antialiased bicubic (what PIL's resize does), not quantized."""
    assert hr.shape[-1] % factor == 0 and hr.shape[-2] % factor == 0, f"{tuple(hr.shape)} not divisible by {factor}"
    return F.interpolate(hr, scale_factor=1 / factor, mode="bicubic", align_corners=False, antialias=True)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float [-1, 1] -> the nearest of the 256 uint8 levels, still float in [-1, 1]."""
    return x.add(1.0).mul(127.5).round_().clamp_(0, 255).div_(127.5).sub_(1.0)


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) with one sigma per image (N,) (0 = unchanged); separable, reflect padding."""
    N, C, H, W = x.shape
    radius = max(1, math.ceil(3 * float(sigmas.max()))) if len(sigmas) else 1
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigmas.to(x.dtype).clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)
    k = torch.where(sigmas[:, None] > 0, k, (t[None] == 0).to(x.dtype))  # sigma 0: identity kernel
    k = k / k.sum(1, keepdim=True)  # (N, K)
    k = k.repeat_interleave(C, 0)  # (N*C, K)
    y = F.pad(x.reshape(1, N * C, H, W), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=N * C)
    y = F.conv2d(y, k[:, None, :, None], groups=N * C)
    return y.reshape(N, C, H, W)


def degrade(hr: torch.Tensor, factor: int, generator: torch.Generator, deg: Degradation = Degradation()) -> torch.Tensor:
    """(N, 3, H, W) HR float in [-1, 1] -> (N, 3, H/f, W/f) LR float on the uint8 grid (see module doc)."""
    n = hr.shape[0]
    sig = torch.rand(n, generator=generator) * deg.max_blur
    sig = torch.where(torch.rand(n, generator=generator) < deg.p_blur, sig, torch.zeros(n))
    x = gaussian_blur(hr, sig) if bool((sig > 0).any()) else hr
    x = bicubic_down(x, factor)
    std = torch.rand(n, generator=generator) * deg.max_noise * 2.0  # [0, 1] std -> [-1, 1] units
    std = torch.where(torch.rand(n, generator=generator) < deg.p_noise, std, torch.zeros(n))
    noise = torch.randn(x.shape, generator=generator) * std[:, None, None, None]
    return quantize(x + noise)


def sr_batch(
    faces_u8: torch.Tensor, n: int, patch: int, generator: torch.Generator, deg: Degradation = Degradation(),
    factor: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch: (LR (n, 3, p/4, p/4), HR/2 target (n, 3, p/2, p/2), HR (n, 3, p, p)), all in [-1, 1]."""
    hr = random_patches(faces_u8, n, patch, generator)
    return degrade(hr, factor, generator, deg), bicubic_down(hr, 2), hr


def shift_zoom_clip(face_u8: torch.Tensor, frames: int = 96, out_side: int = 256, *, shift: float = 0.06,
                    zoom: float = 0.08) -> torch.Tensor:
    """(3, S, S) uint8 face -> (frames, 3, out_side, out_side) uint8: a smooth camera move over the face.

    Frame t views the face through a window shifted by up to `shift` (fraction of the side) and zoomed in by up
    to `zoom`, along a smooth closed path (sub-pixel steps from frame to frame). Rendered at `out_side` from the
    HR face (bilinear), so `bicubic_down(clip, 4)` gives the matching low-resolution clip.
    """
    assert face_u8.ndim == 3 and face_u8.shape[0] == 3, f"expected (3, S, S), got {tuple(face_u8.shape)}"
    t = torch.arange(frames, dtype=torch.float64) / frames * 2 * math.pi
    # window scale <= 1 - 2 * shift, so the shifted window always stays inside the face (grid units span 2)
    s = (1.0 - 2 * shift) / (1.0 + zoom * 0.5 * (1 - torch.cos(t)))
    theta = torch.zeros(frames, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 1, 1] = s, s
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift * torch.sin(t), shift * torch.sin(2 * t)
    grid = F.affine_grid(theta.float(), [frames, 3, out_side, out_side], align_corners=False)
    src = face_u8.float()[None].expand(frames, -1, -1, -1)
    if face_u8.shape[-1] > 2 * out_side:  # avoid aliasing when rendering much smaller than the source
        src = F.interpolate(src, size=(2 * out_side, 2 * out_side), mode="bicubic", antialias=True, align_corners=False)
    clip = F.grid_sample(src, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return clip.round_().clamp_(0, 255).to(torch.uint8)
