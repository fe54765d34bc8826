"""Optional backend: a local diffusers super-resolution pipeline folder as an upscaler.

    up = Upscaler.from_pretrained("path/to/ldm-sr")     # a folder with model_index.json dispatches here
    up.upscale(images_u8, factor=4)                      # same contract as the GAN upscaler

- Only local folders (e.g. written by `LDMSuperResolutionPipeline.save_pretrained`); nothing is downloaded
  (`local_files_only=True`) and only safetensors weights are read (`use_safetensors=True`; pickled `.bin`
  weights are refused).
- Supported: `LDMSuperResolutionPipeline`, whose factor is fixed by its VQ autoencoder (2^(blocks - 1); 4 for
  CompVis/ldm-super-resolution-4x-openimages). Asking for a smaller factor (x2 of an x4 pipeline) runs the
  pipeline and downscales its output (antialiased bicubic).
- Deterministic: every image gets a fresh `torch.Generator` seeded with `seed`, and DDIM runs with eta = 0,
  so the same frame always upscales the same way (clips do not flicker from the sampler's noise).
- diffusers is an optional dependency (`pip install diffusers`); without it loading raises CheckpointError.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import CheckpointError

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
            from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion_superresolution import LDMSuperResolutionPipeline
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

    @torch.inference_mode()
    def upscale(self, images_u8: torch.Tensor, factor: int | str = 4) -> torch.Tensor:
        """(N, 3, h, w) uint8 -> (N, 3, f*h, f*w) uint8 on the CPU; factor 1 (off), 2 or 4, at most the native one."""
        from .data import to_float, to_uint8
        from .upscale import OFF, _check_images, check_factor

        f = check_factor(factor)
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

    def upscale_pil(self, image, factor: int | str = 4):
        from .upscale import pil_upscale

        return pil_upscale(self, image, factor)

    def recipe(self, **params: Any) -> dict[str, Any]:
        return {"upscaler": self.name, "backend": "diffusers", "steps": self.steps, "seed": self.seed, **params}
