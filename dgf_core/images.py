"""Image helpers: tensors to PIL, grids, and PNG files written atomically with text metadata."""
from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from PIL import Image, PngImagePlugin


def to_pil(image_u8: torch.Tensor) -> Image.Image:
    """(3, H, W) or (H, W, 3) uint8 -> PIL RGB image."""
    if image_u8.ndim != 3:
        raise ValueError(f"expected one image (3, H, W), got {tuple(image_u8.shape)}")
    if image_u8.shape[0] == 3 and image_u8.shape[-1] != 3:
        image_u8 = image_u8.permute(1, 2, 0)
    return Image.fromarray(image_u8.cpu().contiguous().numpy())


def make_grid(images_u8: torch.Tensor, nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> one (3, H', W') uint8 grid, `nrow` images per row (default: near square)."""
    n, c, h, w = images_u8.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y : y + h, x : x + w] = images_u8[i].cpu()
    return grid


def atomic_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to before `os.replace` (same folder, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files (umask applies as usual)
    return path, Path(tmp)


def _png_info(text: Mapping[str, str] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    return info


def save_png(image: Image.Image | torch.Tensor, path: str | os.PathLike, text: Mapping[str, str] | None = None) -> Path:
    """Write a PNG atomically; `text` goes into tEXt chunks (e.g. the provenance recipe)."""
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    path, tmp = atomic_path(path)
    try:
        image.save(tmp, format="PNG", pnginfo=_png_info(text))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def png_bytes(image: Image.Image | torch.Tensor, text: Mapping[str, str] | None = None) -> bytes:
    """The PNG that `save_png` writes, as bytes (for a download button); nothing touches the disk."""
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=_png_info(text))
    return buf.getvalue()


def rgb_to_y(images_u8: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB -> (N, H, W) float Y in [16, 235] (BT.601)."""
    x = images_u8.double()
    return 16.0 + (65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]) / 255.0


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border : x.shape[-2] - border, border : x.shape[-1] - border] if border else x


def psnr(a_u8: torch.Tensor, b_u8: torch.Tensor, *, channel: str = "y", border: int = 0) -> torch.Tensor:
    """(N, 3, H, W) uint8 pair -> (N,) PSNR in dB (on Y, or on all RGB values with channel='rgb')."""
    assert a_u8.shape == b_u8.shape and a_u8.dtype == b_u8.dtype == torch.uint8, f"{tuple(a_u8.shape)} vs {tuple(b_u8.shape)}"
    if channel == "y":
        a, b = rgb_to_y(a_u8), rgb_to_y(b_u8)
    elif channel == "rgb":
        a, b = a_u8.double(), b_u8.double()
    else:
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    mse = (_crop(a, border) - _crop(b, border)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images_u8: torch.Tensor, border: int = 0) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N,) variance of the Laplacian (3x3, 4-neighbour) of Y (BT.601, 16..235), `border` px
    cropped first: a sharpness measure."""
    assert images_u8.ndim == 4 and images_u8.dtype == torch.uint8, f"expected uint8 (N, 3, H, W), got {tuple(images_u8.shape)}"
    y = _crop(rgb_to_y(images_u8), border)[:, None]  # (N, 1, H', W') float64
    lap = F.conv2d(y, LAPLACIAN.to(y.dtype)[None, None])
    return lap.flatten(1).var(1)


def sharpness_ratio(upscaled_u8: torch.Tensor, real_u8: torch.Tensor, border: int = 0) -> float:
    """Mean Laplacian variance of upscaled faces / that of real faces (1.0: as sharp as real faces)."""
    return float(laplacian_variance(upscaled_u8, border).mean() / laplacian_variance(real_u8, border).mean())


def high_pass(images_u8: torch.Tensor, sigma: float = 1.5, gain: float = 4.0) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, H, W) uint8: each channel minus its Gaussian blur (sigma px, reflected edges),
    times `gain`, around grey 128 (clamped): the fine detail alone. A blurred upscale shows as flat grey here, real
    skin and hair as texture, which a two-sample classifier sees far more easily than in the pixels themselves."""
    assert images_u8.ndim == 4 and images_u8.dtype == torch.uint8, f"expected uint8 (N, 3, H, W), got {tuple(images_u8.shape)}"
    size = 2 * math.ceil(3 * sigma) + 1
    g = _gaussian_taps(size, sigma).float()
    x = images_u8.float()
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    pad = size // 2
    blur = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), g[None, None, None, :])
    blur = F.conv2d(F.pad(blur, (0, 0, pad, pad), mode="reflect"), g[None, None, :, None])
    return (128.0 + gain * (y - blur)).round().clamp(0, 255).to(torch.uint8).reshape(n, c, h, w)


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a_u8: torch.Tensor, b_u8: torch.Tensor, *, border: int = 0) -> torch.Tensor:
    """(N, 3, H, W) uint8 pair -> (N,) SSIM of the Y channel (valid-window, no padding)."""
    assert a_u8.shape == b_u8.shape, f"{tuple(a_u8.shape)} vs {tuple(b_u8.shape)}"
    a = _crop(rgb_to_y(a_u8), border)[:, None].float()
    b = _crop(rgb_to_y(b_u8), border)[:, None].float()
    g = _gaussian_taps().float()

    def blur(x: torch.Tensor) -> torch.Tensor:  # the separable 11x11 Gaussian window
        return F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return m.flatten(1).double().mean(1)
