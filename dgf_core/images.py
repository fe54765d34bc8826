"""Image helpers: tensors to PIL, grids, and PNG files written atomically with text metadata."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Mapping

import torch
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


def save_png(image: Image.Image | torch.Tensor, path: str | os.PathLike, text: Mapping[str, str] | None = None) -> Path:
    """Write a PNG atomically; `text` goes into tEXt chunks (e.g. the provenance recipe)."""
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    path, tmp = atomic_path(path)
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
