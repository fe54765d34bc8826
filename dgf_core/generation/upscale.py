"""Inference: uint8 faces (or clip frames) -> uint8 faces 2x or 4x larger.

    up = Upscaler.from_pretrained("upscaler-x4")      # or a folder; Upscaler.bicubic() needs no weights
    big = up.upscale(images_u8, factor=4)             # (N, 3, h, w) uint8 -> (N, 3, 4h, 4w) uint8, on the CPU
    img = up.upscale_pil(pil_image, factor=2)

- `factor` is 1 (off: returns a copy), 2 (the first stage alone) or 4 (both stages).
- `detail` in [0, 1] (default 0) blends the model's two ends by network interpolation (ESRGAN, Wang et al. 2018,
  section 3.4): theta = (1 - detail) * theta_psnr + detail * theta_gan. 0 is the shipped PSNR (L1) weights, exactly;
  1 is the GAN end (`detail.safetensors` beside them, see checkpoint.py). The blended generators are built once per
  detail value and cached (a few, least recently used first out), so a request costs no more than before. A model
  without a GAN end takes detail 0 only.

    big = up.upscale(images_u8, factor=4, detail=0.7)
- Deterministic and stateless: no noise, no batch norm, no per-call state; a frame gives the same pixels
  whether it is upscaled alone or inside any batch (images are run in fixed-size chunks of one by default,
  see `chunk`), so a clip upscaled frame by frame never flickers from the upscaler itself. One object can
  serve concurrent requests.
- `from_pretrained` also accepts a local diffusers super-resolution pipeline folder (optional backend,
  `DiffusersUpscaler` below, same `upscale` contract).
- Inputs are bounded: at most `MAX_INPUT_SIDE` pixels a side (larger images are refused with a ValueError).
"""
from __future__ import annotations

import copy
import json
import math
import numbers
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..checkpoint import CheckpointError, LoadedModel, load_detail_weights, load_model, read_config
from ..data import to_float, to_uint8
from ..models.upscaler import FACTORS

MAX_INPUT_SIDE = 512  # longest input side accepted (x4 -> 2048x2048 output)
OFF = 1


def check_factor(factor: Any) -> int:
    """1 (off), 2 or 4, from an int or a string like 'x4' / 'off'; ValueError otherwise."""
    if isinstance(factor, str):
        s = factor.strip().lower()
        factor = 1 if s in ("off", "none", "1", "x1") else s.lstrip("x")
    try:
        f = int(factor)
    except (TypeError, ValueError):
        raise ValueError(f"upscale factor must be off, 2 or 4, got {factor!r}") from None
    if f != OFF and f not in FACTORS:
        raise ValueError(f"upscale factor must be off, 2 or 4, got {factor!r}")
    return f


def check_detail(detail: Any) -> float:
    """A detail strength: a real number in [0, 1] (0: the PSNR end, 1: the GAN end); ValueError otherwise."""
    if isinstance(detail, bool) or not isinstance(detail, numbers.Real):
        raise ValueError(f"detail must be a number from 0 to 1, got {detail!r}")
    d = float(detail)
    if not math.isfinite(d) or not 0.0 <= d <= 1.0:
        raise ValueError(f"detail must be a number from 0 to 1, got {detail!r}")
    return d


def no_detail_message(name: str) -> str:
    return (f"this upscaler has no detail weights ({name} ships no GAN end); use detail 0, or train and export one "
            "(docs/training.md, 'The upscaler's detail end')")


def blend_weights(psnr: dict[str, torch.Tensor], gan: dict[str, torch.Tensor], detail: float) -> dict[str, torch.Tensor]:
    """Network interpolation: theta = (1 - detail) * theta_psnr + detail * theta_gan for every tensor of two state
    dicts of the same architecture (0 gives `psnr`'s values and 1 `gan`'s, exactly). A pure function."""
    d = check_detail(detail)
    if psnr.keys() != gan.keys():
        raise ValueError(f"the two ends differ in their tensors: {sorted(set(psnr) ^ set(gan))[:5]}")
    out = {}
    for k, a in psnr.items():
        b = gan[k]
        if a.shape != b.shape:
            raise ValueError(f"the two ends differ in the shape of {k}: {tuple(a.shape)} vs {tuple(b.shape)}")
        out[k] = (1.0 - d) * a + d * b.to(a.dtype) if a.is_floating_point() else a.clone()
    return out


def bicubic_upscale(images_u8: torch.Tensor, factor: int) -> torch.Tensor:
    """The baseline: PIL bicubic (a = -0.5, as MATLAB's imresize) of each (3, h, w) uint8 image."""
    assert images_u8.ndim == 4 and images_u8.dtype == torch.uint8, f"expected uint8 (N, 3, h, w), got {tuple(images_u8.shape)}"
    out = []
    for img in images_u8.permute(0, 2, 3, 1).cpu().numpy():
        h, w = img.shape[:2]
        big = Image.fromarray(img).resize((w * factor, h * factor), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(big).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).contiguous()


def pil_upscale(upscaler: Any, image: Image.Image, factor: int | str = 4, detail: float = 0.0) -> Image.Image:
    """Any upscaler's `upscale` applied to one PIL image (converted to RGB) -> PIL RGB image."""
    arr = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None]
    return Image.fromarray(upscaler.upscale(arr, factor, detail)[0].permute(1, 2, 0).numpy())


def _check_images(images_u8: torch.Tensor) -> None:
    if not (isinstance(images_u8, torch.Tensor) and images_u8.dtype == torch.uint8 and images_u8.ndim == 4
            and images_u8.shape[1] == 3):
        shape = tuple(images_u8.shape) if isinstance(images_u8, torch.Tensor) else type(images_u8).__name__
        raise ValueError(f"expected uint8 images (N, 3, h, w), got {shape}")
    h, w = images_u8.shape[-2:]
    if max(h, w) > MAX_INPUT_SIDE or min(h, w) < 4:
        raise ValueError(f"images must be 4..{MAX_INPUT_SIDE} pixels a side to upscale, got {w}x{h}")


@dataclass
class Upscaler:
    model: LoadedModel | None  # None: plain bicubic
    device: torch.device
    chunk: int = 1  # images per forward pass; 1 keeps every frame's arithmetic identical, whatever the batch
    fast: bool = True  # channels-last copy of the generator (about 1.5x faster on CPUs); False: the plain module
    detail_weights: dict[str, torch.Tensor] | None = None  # the GAN end's generator state dict; None: no detail
    detail_sha256: str | None = None  # the GAN end's weights hash (recorded in recipes of detail > 0)
    detail_cache: int = 8  # blended generators kept (detail values), least recently used dropped first

    def __post_init__(self) -> None:
        self._net = None
        self._blended: OrderedDict[float, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache; the cached nets themselves are read-only
        if self.model is not None:
            self._net = self._prepare(self.model.generator)
        if self.detail_weights is not None and self.model is None:
            raise ValueError("detail weights need a model (the PSNR end) to blend with")

    def _prepare(self, g: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(g).to(memory_format=torch.channels_last) if self.fast else g

    @property
    def has_detail(self) -> bool:
        """Whether `detail` > 0 is available (the model ships a GAN end)."""
        return self.detail_weights is not None

    def network(self, detail: float = 0.0) -> torch.nn.Module:
        """The generator at `detail` (0: the PSNR end itself; else blended once and cached)."""
        d = check_detail(detail)
        if self.model is None:
            raise ValueError("bicubic has no network")
        if d == 0.0:
            return self._net
        if self.detail_weights is None:
            raise ValueError(no_detail_message(self.name))
        with self._lock:
            net = self._blended.get(d)
            if net is None:
                net = copy.deepcopy(self.model.generator)
                net.load_state_dict(blend_weights(self.model.generator.state_dict(), self.detail_weights, d))
                net = self._prepare(net)
                self._blended[d] = net
                while len(self._blended) > self.detail_cache:
                    self._blended.popitem(last=False)
            else:
                self._blended.move_to_end(d)
            return net

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu", *, fast: bool = True,
                        **kw: Any) -> "Upscaler":
        """Load an upscaler model folder (or its name in weights/); 'bicubic' gives the baseline."""
        from ..checkpoint import resolve_model_path
        from .pipeline import pick_device

        if str(name_or_path) == "bicubic":
            return cls.bicubic()
        dev = pick_device(device)
        folder = resolve_model_path(name_or_path, kw.get("weights_dir"))
        if is_diffusers_folder(folder):  # the optional diffusers backend, same upscale() contract
            return DiffusersUpscaler.from_folder(folder, dev)
        m = load_model(folder, dev, **kw)
        if m.family.kind != "upscaler":
            raise CheckpointError(f"{m.path} is a {m.family.name} {m.family.kind}, not an upscaler")
        detail = load_detail_weights(m, verify=kw.get("verify", True))
        sha = (read_config(m.path).get("detail") or {}).get("weights_sha256") if detail is not None else None
        return cls(m, dev, fast=fast, detail_weights=detail, detail_sha256=sha)

    @classmethod
    def bicubic(cls) -> "Upscaler":
        return cls(None, torch.device("cpu"))

    @property
    def name(self) -> str:
        return self.model.name if self.model else "bicubic"

    @torch.inference_mode()
    def upscale(self, images_u8: torch.Tensor, factor: int | str = 4, detail: float = 0.0) -> torch.Tensor:
        """(N, 3, h, w) uint8 -> (N, 3, f*h, f*w) uint8 on the CPU; factor 1 (off), 2 or 4; detail in [0, 1]."""
        f = check_factor(factor)
        d = check_detail(detail)
        _check_images(images_u8)
        if d > 0 and not self.has_detail:
            raise ValueError(no_detail_message(self.name))
        if f == OFF:
            return images_u8.cpu().clone()
        if self.model is None:
            return bicubic_upscale(images_u8, f)
        net = self.network(d)
        fmt = torch.channels_last if self.fast else torch.contiguous_format
        out = [to_uint8(net(to_float(images_u8[i : i + self.chunk].to(self.device)).contiguous(memory_format=fmt), f)).cpu()
               for i in range(0, images_u8.shape[0], self.chunk)]
        return torch.cat(out).contiguous()

    def upscale_pil(self, image: Image.Image, factor: int | str = 4, detail: float = 0.0) -> Image.Image:
        """One PIL image (converted to RGB) -> PIL RGB image `factor` times larger."""
        return pil_upscale(self, image, factor, detail)

    def recipe(self, **params: Any) -> dict[str, Any]:
        """Name and weights hash, plus `params`; a `detail` above 0 also names the GAN end's weights hash."""
        rec = {"upscaler": self.name, "weights_sha256": self.model.weights_sha256 if self.model else None, **params}
        if params.get("detail"):
            rec["detail_weights_sha256"] = self.detail_sha256
        return rec



# ---- optional backend: a local diffusers super-resolution pipeline folder ------------------------------------
#
# Optional backend: a local diffusers super-resolution pipeline folder as an upscaler.
#
#     up = Upscaler.from_pretrained("path/to/ldm-sr")     # a folder with model_index.json dispatches here
#     up.upscale(images_u8, factor=4)                      # same contract as the GAN upscaler
#
# - Only local folders (e.g. written by `LDMSuperResolutionPipeline.save_pretrained`); nothing is downloaded
#   (`local_files_only=True`) and only safetensors weights are read (`use_safetensors=True`; pickled `.bin`
#   weights are refused).
# - Supported: `LDMSuperResolutionPipeline`, whose factor is fixed by its VQ autoencoder (2^(blocks - 1); 4 for
#   CompVis/ldm-super-resolution-4x-openimages). Asking for a smaller factor (x2 of an x4 pipeline) runs the
#   pipeline and downscales its output (antialiased bicubic).
# - Deterministic: every image gets a fresh `torch.Generator` seeded with `seed`, and DDIM runs with eta = 0,
#   so the same frame always upscales the same way (clips do not flicker from the sampler's noise).
# - diffusers is an optional dependency (`pip install diffusers`); without it loading raises CheckpointError.

SUPPORTED = ("LDMSuperResolutionPipeline",)
INDEX_FILE = "model_index.json"


def is_diffusers_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / INDEX_FILE).is_file()


@dataclass
class DiffusersUpscaler:
    pipe: Any  # a diffusers pipeline (read-only after loading)
    name: str
    native_factor: int
    steps: int = 50
    seed: int = 0

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: str | torch.device = "cpu", *, steps: int = 50, seed: int = 0) -> "DiffusersUpscaler":
        folder = Path(folder)
        try:
            index = json.loads((folder / INDEX_FILE).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{folder} is not a diffusers pipeline folder: {e}") from None
        kind = index.get("_class_name") if isinstance(index, dict) else None
        if kind not in SUPPORTED:
            raise CheckpointError(f"{folder}: diffusers pipeline {kind!r} is not supported; supported: {', '.join(SUPPORTED)}")
        try:
            from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion_superresolution import (
                LDMSuperResolutionPipeline,
            )
        except ImportError:
            raise CheckpointError("the diffusers backend needs the optional package: pip install diffusers") from None
        try:
            pipe = LDMSuperResolutionPipeline.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
        except (OSError, ValueError, EnvironmentError) as e:
            raise CheckpointError(f"{folder}: cannot load the diffusers pipeline ({e}); safetensors weights are required") from None
        pipe = pipe.to(torch.device(device))
        pipe.set_progress_bar_config(disable=True)
        factor = 2 ** (len(pipe.vqvae.config.block_out_channels) - 1)
        return cls(pipe, folder.name, factor, steps, seed)

    @property
    def device(self) -> torch.device:
        return self.pipe.device

    has_detail = False

    @torch.inference_mode()
    def upscale(self, images_u8: torch.Tensor, factor: int | str = 4, detail: float = 0.0) -> torch.Tensor:
        """(N, 3, h, w) uint8 -> (N, 3, f*h, f*w) uint8 on the CPU; factor 1 (off), 2 or 4, at most the native one."""
        f = check_factor(factor)
        if check_detail(detail) > 0:
            raise ValueError(no_detail_message(self.name))
        _check_images(images_u8)
        if f == OFF:
            return images_u8.cpu().clone()
        if f > self.native_factor:
            raise ValueError(f"{self.name} upscales at most x{self.native_factor}, asked for x{f}")
        out = []
        for img in images_u8:
            x = to_float(img[None]).to(self.device)
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            y = self.pipe(image=x, num_inference_steps=self.steps, eta=0.0, generator=gen, output_type="np").images
            y = torch.from_numpy(np.asarray(y)).permute(0, 3, 1, 2).float().mul(2).sub(1)  # (1, 3, H, W) in [-1, 1]
            if f != self.native_factor:
                y = F.interpolate(y, scale_factor=f / self.native_factor, mode="bicubic", antialias=True, align_corners=False)
            out.append(to_uint8(y))
        return torch.cat(out)

    def upscale_pil(self, image, factor: int | str = 4, detail: float = 0.0):
        return pil_upscale(self, image, factor, detail)

    def recipe(self, **params: Any) -> dict[str, Any]:
        return {"upscaler": self.name, "backend": "diffusers", "steps": self.steps, "seed": self.seed, **params}
