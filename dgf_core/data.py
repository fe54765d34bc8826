"""Face image folders -> uint8 tensors.

- Any folder of images, searched recursively; the CelebA `img_align_celeba` layout and UTKFace
  (`age_gender_race_timestamp.jpg.chip.jpg`) are plain folders to this code, and UTKFace labels parse
  from file names with `parse_utkface_name`.
- Preprocessing is the DCGAN recipe: resize the shorter side to the target resolution, centre-crop a square.
- Held-out split, fixed and documented: a file is held out when crc32(its file name) % 20 == 0 (about 5%).
  It depends on the file name alone, so it does not move when folders are combined, reordered or grown,
  and every model trained with this code leaves out the same faces.
- Fast path: decode the set once into a (N, 3, R, R) uint8 tensor (on the GPU when asked), then draw
  batches from it with random horizontal flips; no per-step decoding.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
HOLDOUT_MODULUS = 20
SPLITS = ("train", "heldout", "all")


class DataError(ValueError):
    """A data folder that cannot be used (missing, empty, nothing decodable)."""


def is_heldout(path: str | os.PathLike) -> bool:
    """The fixed held-out rule: crc32 of the file name (not the folder) modulo 20 is 0."""
    return zlib.crc32(Path(path).name.encode("utf-8")) % HOLDOUT_MODULUS == 0


def list_images(roots: str | os.PathLike | Sequence[str | os.PathLike], split: str = "all") -> list[Path]:
    """All image files under `roots` (recursively), sorted by path, filtered by split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise DataError(f"data path does not exist: {root}")
        if root.is_file():
            found = [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
        else:
            found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not found:
            raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
        files.extend(found)
    if split == "train":
        files = [p for p in files if not is_heldout(p)]
    elif split == "heldout":
        files = [p for p in files if is_heldout(p)]
    return files


_UTK = re.compile(r"^(\d+)_([01])_([0-4])_\d+")


@dataclass(frozen=True)
class UTKLabel:
    age: int
    gender: int  # 0 male, 1 female (UTKFace's coding)
    race: int


def parse_utkface_name(path: str | os.PathLike) -> UTKLabel | None:
    """Labels from a UTKFace file name; None for the few irregular names."""
    m = _UTK.match(Path(path).name)
    if not m:
        return None
    return UTKLabel(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def center_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to `resolution` (antialiased), then centre-crop resolution x resolution."""
    img = img.convert("RGB")
    w, h = img.size
    s = resolution / min(w, h)
    nw, nh = max(resolution, round(w * s)), max(resolution, round(h * s))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=None)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def load_image(path: str | os.PathLike, resolution: int) -> np.ndarray | None:
    """One file -> (R, R, 3) uint8, or None when the file cannot be decoded."""
    try:
        with Image.open(path) as img:
            return np.asarray(center_crop_resize(img, resolution), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None


@dataclass
class ImageSet:
    images: torch.Tensor  # (N, 3, R, R) uint8
    paths: list[Path]  # the N decoded files, in order
    skipped: list[Path]  # files that could not be decoded

    def __len__(self) -> int:
        return self.images.shape[0]


def _cache_key(paths: Iterable[Path], resolution: int) -> str:
    h = hashlib.sha1(str(resolution).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_image_set(
    roots: str | os.PathLike | Sequence[str | os.PathLike],
    resolution: int,
    split: str = "train",
    *,
    limit: int | None = None,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> ImageSet:
    """Decode every image of `split` under `roots` once into a uint8 tensor.

    Unreadable files are skipped and listed in `skipped`. With `cache_dir`, the decoded tensor is stored as
    safetensors keyed by the file list, sizes, mtimes and resolution, so the next run skips decoding.
    """
    from safetensors.torch import load_file, save_file

    paths = list_images(roots, split)
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise DataError(f"no {split} images under {roots}")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"images-{_cache_key(paths, resolution)}.safetensors"
        if cache.exists():
            t = load_file(str(cache))
            keep = t["keep"].bool().tolist()
            ok = [p for p, k in zip(paths, keep) if k]
            bad = [p for p, k in zip(paths, keep) if not k]
            return ImageSet(t["images"].to(device), ok, bad)
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as ex:
        arrays = list(ex.map(lambda p: load_image(p, resolution), paths))
    keep = [a is not None for a in arrays]
    good = [a for a in arrays if a is not None]
    if not good:
        raise DataError(f"none of the {len(paths)} image files under {roots} could be decoded")
    images = torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).contiguous()  # (N, 3, R, R) uint8
    if cache is not None:  # a temporary file of its own: two runs may decode the same set at once
        from .images import atomic_path

        cache, tmp = atomic_path(cache)
        try:
            save_file({"images": images, "keep": torch.tensor(keep, dtype=torch.uint8)}, str(tmp))
            os.replace(tmp, cache)
        finally:
            tmp.unlink(missing_ok=True)
    ok = [p for p, k in zip(paths, keep) if k]
    bad = [p for p, k in zip(paths, keep) if not k]
    return ImageSet(images.to(device), ok, bad)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], same shape."""
    return images_u8.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] (N, C, H, W) -> uint8 (N, C, H, W), rounded and clamped."""
    return images.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of (N, C, H, W) horizontally with probability 1/2 (mask drawn from `generator`)."""
    mask = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(mask.to(images.device)[:, None, None, None], images.flip(-1), images)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch `epoch`: a function of (seed, epoch) only, so a resumed run sees the same batches."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=g)


def pack_images(
    roots: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, resolution: int, quality: int = 92
) -> tuple[int, int]:
    """Pre-crop every image under `roots` to resolution x resolution JPEGs in `out`, keeping file names, so the
    held-out rule (by file name) still applies to the pack. For moving a data set to a GPU machine
    (CelebA's 15,723 faces at 64x64 take about 38 MB). Returns (written, skipped)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for p in list_images(roots):
        arr = load_image(p, resolution)
        if arr is None:
            skipped += 1
            continue
        dest = out / (Path(p.name).stem + ".jpg")
        tmp = dest.with_suffix(".tmp.jpg")
        Image.fromarray(arr).save(tmp, quality=quality)
        os.replace(tmp, dest)
        written += 1
    return written, skipped


_LICENCES = {
    "celeba": "CelebA (Liu et al. 2015): non-commercial research purposes only",
    "utkface": "UTKFace (Zhang et al. 2017): non-commercial research purposes only",
}


def data_licences(roots: Sequence[str | os.PathLike]) -> list[str]:
    """The licences of the known face sets found in `roots` (by folder name); an aligned set (`data align`: its
    summary.json, format dgf-aligned-set/1) has those of the sources it was made from; unknown folders are flagged."""
    found = []
    for r in roots:
        sources = _aligned_sources(Path(r))
        if sources:
            found.extend(data_licences(sources))
            continue
        parts = str(Path(r).resolve()).lower()
        hits = [text for key, text in _LICENCES.items() if key in parts]
        found.extend(hits or [f"{r}: licence unknown; check before sharing a model trained on it"])
    return sorted(set(found))


ALIGNED_SUMMARY = "summary.json"  # an aligned face set's description (`data align`; faces/aligned_set.py)
ALIGNED_FORMAT = "dgf-aligned-set/1"


def read_aligned_summary(folder: str | os.PathLike) -> dict | None:
    """The summary of an aligned face set in `folder`, or None when it is not one (no summary.json, or another
    format). A summary.json that is not JSON raises (json.JSONDecodeError): a damaged set is not silently another
    folder."""
    path = Path(folder) / ALIGNED_SUMMARY
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if isinstance(summary, dict) and summary.get("format") == ALIGNED_FORMAT else None


def _aligned_sources(folder: Path) -> list[str]:
    """The source folders an aligned face set was made from (its summary.json), or [] when `folder` is not one or its
    summary cannot be read (the licence lookup then flags the folder as unknown)."""
    try:
        summary = read_aligned_summary(folder)
    except (OSError, ValueError):
        return []
    sources = (summary or {}).get("sources")
    return [str(s) for s in sources] if isinstance(sources, dict) else []
