"""Faces from seeds, optionally upscaled, and the same seeds from several models side by side.

The UIs' picture actions, one core call each (the Gradio app, the Streamlit pages and the CLI alike); a Picture holds
the image, its PNG text chunks (notice + recipe), the recipe and a file name, and saves atomically or gives bytes:

    face_picture(pipe, 42, 0.7, upscaler, 4).save(folder)            # seed -> image
    compare_picture([pipe_a, pipe_b], [1, 2], 0.7).png_bytes()        # two models -> comparison image
    upscaled_picture(upscaler, pil_image, 4).save("big.png")          # image -> upscaled image
    upscaled_picture(upscaler, pil_image, 4, detail=0.5)              # ... halfway to the GAN end's detail

Their parts:

    faces(pipe, [1, 2], 0.7, upscaler, 4)              # (2, 3, 4R, 4R) uint8: generated, then upscaled x4
    compare_grid([pipe_a, pipe_b], [1, 2], 0.7)       # (3, H, W) uint8: one row per seed, one column per model
    compare_png_text([pipe_a, pipe_b], [1, 2], 0.7)   # PNG text chunks: notice + recipe naming every model
    upscaled_png_text(upscaler, 4, (64, 64))          # PNG text chunks of an upscaled upload: upscaler + weights hash

Columns are scaled to the same height (`video.to_height`: nearest-neighbour for whole multiples), so a 64 px
DCGAN and a 128 px StyleGAN2 line up. Every call is a pure function of the models, seeds and parameters.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from PIL import Image

from ..images import make_grid, png_bytes, save_png
from ..latent import check_seed, check_truncation
from .pipeline import MAX_SEEDS_PER_CALL, FacePipeline, png_text
from .upscale import check_detail
from .video import check_upscale, side_by_side, upscale_recipe

if TYPE_CHECKING:
    from .upscale import Upscaler

MAX_COMPARE_SEEDS = 16  # rows of one comparison image
GAP = 2  # white pixels between the faces of a comparison image


def faces(pipe: FacePipeline, seeds: Sequence[int], truncation: float = 1.0, upscaler: Upscaler | None = None,
          factor: int | str = 1) -> torch.Tensor:
    """seeds -> uint8 (N, 3, S, S), S = R * factor: the pipeline's faces, upscaled when factor is 2 or 4."""
    factor = check_upscale(upscaler, factor)
    images = pipe.generate(seeds, truncation)  # (N, 3, R, R)
    return upscaler.upscale(images, factor) if factor > 1 else images


def image_recipe(pipe: FacePipeline, upscaler: Upscaler | None = None, factor: int | str = 1, **params: Any) -> dict[str, Any]:
    """The recipe of one face: the pipeline's (model, weights hash, parameters) plus the upscaler when upscaled."""
    return pipe.recipe(**params, **upscale_recipe(upscaler, factor))


def _check(pipes: Sequence[FacePipeline], seeds: Sequence[int]) -> list[int]:
    if len(pipes) < 2:
        raise ValueError(f"a comparison needs two or more models, got {len(pipes)}")
    seeds = [check_seed(s) for s in seeds]
    if not 1 <= len(seeds) <= MAX_COMPARE_SEEDS:
        raise ValueError(f"a comparison takes 1..{MAX_COMPARE_SEEDS} seeds, got {len(seeds)}")
    assert len(seeds) <= MAX_SEEDS_PER_CALL
    return seeds


def compare_grid(pipes: Sequence[FacePipeline], seeds: Sequence[int], truncation: float = 1.0,
                 upscaler: Upscaler | None = None, factor: int | str = 1) -> torch.Tensor:
    """One row per seed, one column per model (left to right as given), faces scaled to the same height,
    GAP white pixels around each -> uint8 (3, H, W)."""
    seeds = _check(pipes, seeds)
    rows = side_by_side([faces(p, seeds, truncation, upscaler, factor) for p in pipes])  # (N, 3, h, k * h)
    n, _, h, w = rows.shape
    cells = rows.reshape(n, 3, h, len(pipes), w // len(pipes)).permute(0, 3, 1, 2, 4).reshape(-1, 3, h, w // len(pipes))
    return make_grid(cells, nrow=len(pipes), pad=GAP)


def compare_recipe(pipes: Sequence[FacePipeline], seeds: Sequence[int], truncation: float = 1.0,
                   upscaler: Upscaler | None = None, factor: int | str = 1) -> dict[str, Any]:
    """What reproduces a comparison image: every model with its weights hash (the columns), seeds (the rows)."""
    seeds = _check(pipes, seeds)
    return {"synthetic": True, "tool": "Deeply Good Fakes (dgf_core)", "kind": "compare",
            "models": [{"model": p.model.name, "weights_sha256": p.model.weights_sha256} for p in pipes],
            "seeds": seeds, "truncation": check_truncation(truncation), **upscale_recipe(upscaler, factor)}


def compare_png_text(pipes: Sequence[FacePipeline], seeds: Sequence[int], truncation: float = 1.0,
                     upscaler: Upscaler | None = None, factor: int | str = 1) -> dict[str, str]:
    return png_text(compare_recipe(pipes, seeds, truncation, upscaler, factor))


def upscaled_png_text(upscaler: Upscaler, factor: int, input_size: tuple[int, int], detail: float = 0.0) -> dict[str, str]:
    """PNG tEXt chunks of an upscaled image (an upload, not a generated face): a notice that the added detail is
    invented, and the recipe naming the upscaler, its weights hash(es), the factor, the detail when above 0 (a recipe
    without one is detail 0, as every recipe before the detail control) and never the upload's file name."""
    recipe = upscaler.recipe(factor=factor, **({"detail": detail} if detail else {}), input_size=list(input_size))
    return {"Description": f"Upscaled x{factor} by a neural network ({upscaler.name}, Deeply Good Fakes): the added "
                           "detail is invented by the model.", "Software": "Deeply Good Fakes",
            "dgf_upscale": json.dumps(recipe)}


# ---- the picture actions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Picture:
    """A finished picture: image ((3, H, W) uint8 or PIL), PNG text chunks (notice + recipe), the recipe, a file name."""
    image: torch.Tensor | Image.Image
    text: dict[str, str]
    recipe: dict[str, Any]
    name: str

    def save(self, where: str | os.PathLike) -> Path:
        """Write the PNG atomically, to `where` if it names a .png file, else into that folder under `name`."""
        path = Path(where)
        return save_png(self.image, path if path.suffix.lower() == ".png" else path / self.name, self.text)

    def png_bytes(self) -> bytes:
        return png_bytes(self.image, self.text)


DISPLAY_SIDE = 256  # the side a face is shown at by default when the upscaler can bring it there from 128 px or more


def display_factor(resolution: int, has_upscaler: bool) -> int:
    """The upscale factor for showing a face by default (the app's and the pages' "auto"): a model of 128 px or more
    is shown at DISPLAY_SIDE px through the upscaler (x2 for 128 px, none from 256 px); a smaller face keeps its own
    pixels (the x4 upscaler makes a 64-px face larger, not sharper: ask for it), and so does every face when there is
    no upscaler."""
    if not has_upscaler or resolution < 128:
        return 1
    factor = 1
    while factor < 4 and resolution * factor * 2 <= DISPLAY_SIDE:
        factor *= 2
    return factor


def face_picture(pipe: FacePipeline, seed: int, truncation: float = 1.0, upscaler: Upscaler | None = None,
                 factor: int | str = 1) -> Picture:
    """seed -> one face (upscaled x2 / x4 when asked) with its recipe."""
    seed = check_seed(seed)
    factor = check_upscale(upscaler, factor)
    recipe = image_recipe(pipe, upscaler, factor, seed=seed, truncation=truncation)
    return Picture(faces(pipe, [seed], truncation, upscaler, factor)[0], png_text(recipe), recipe,
                   f"{pipe.model.name}-seed{seed}{f'-x{factor}' if factor > 1 else ''}.png")


def compare_picture(pipes: Sequence[FacePipeline], seeds: Sequence[int], truncation: float = 1.0,
                    upscaler: Upscaler | None = None, factor: int | str = 1) -> Picture:
    """The same seeds in two or more models: one row per seed, the models left to right (`compare_grid`)."""
    recipe = compare_recipe(pipes, seeds, truncation, upscaler, factor)
    names = "-vs-".join(p.model.name for p in pipes)
    return Picture(compare_grid(pipes, seeds, truncation, upscaler, factor), png_text(recipe), recipe,
                   f"{names}-{'-'.join(map(str, recipe['seeds'][:8]))}.png")


def upscaled_picture(upscaler: Upscaler, picture: Image.Image, factor: int | str, detail: float = 0.0) -> Picture:
    """An image (an upload: checked by `serving.uploads`) -> `factor` times larger, with the upscaler's recipe; the
    upscaler refuses images over its size limit. `detail` in [0, 1]: 0 the PSNR end, 1 the GAN end (network
    interpolation, `upscale.Upscaler`); above 0 it needs an upscaler with detail weights (`has_detail`)."""
    factor = check_upscale(upscaler, factor)
    if factor == 1:
        raise ValueError("choose x2 or x4")
    detail = check_detail(detail)
    big = upscaler.upscale_pil(picture, factor, detail)
    text = upscaled_png_text(upscaler, factor, picture.size, detail)
    return Picture(big, text, json.loads(text["dgf_upscale"]), f"upscaled-x{factor}.png")
