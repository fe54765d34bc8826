"""Faces from seeds, optionally upscaled, and the same seeds from several models side by side.

    faces(pipe, [1, 2], 0.7, upscaler, 4)              # (2, 3, 4R, 4R) uint8: generated, then upscaled x4
    compare_grid([pipe_a, pipe_b], [1, 2], 0.7)       # (3, H, W) uint8: one row per seed, one column per model
    compare_png_text([pipe_a, pipe_b], [1, 2], 0.7)   # PNG text chunks: notice + recipe naming every model
    upscaled_png_text(upscaler, 4, (64, 64))          # PNG text chunks of an upscaled upload: upscaler + weights hash

Columns are scaled to the same height (`video.to_height`: nearest-neighbour for whole multiples), so a 64 px
DCGAN and a 128 px StyleGAN2 line up. Every call is a pure function of the models, seeds and parameters.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..images import make_grid
from ..latent import check_seed, check_truncation
from .pipeline import MAX_SEEDS_PER_CALL, SYNTHETIC_NOTICE, FacePipeline
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


def png_text(recipe: dict[str, Any]) -> dict[str, str]:
    """PNG tEXt chunks: the synthetic-image notice and the JSON recipe."""
    return {"Description": SYNTHETIC_NOTICE, "Software": "Deeply Good Fakes", "dgf_recipe": json.dumps(recipe)}


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


def upscaled_png_text(upscaler: Upscaler, factor: int, input_size: tuple[int, int]) -> dict[str, str]:
    """PNG tEXt chunks of an upscaled image (an upload, not a generated face): a notice that the added detail is
    invented, and the recipe naming the upscaler, its weights hash and the factor (never the upload's file name)."""
    recipe = upscaler.recipe(factor=factor, input_size=list(input_size))
    return {"Description": f"Upscaled x{factor} by a neural network ({upscaler.name}, Deeply Good Fakes): the added "
                           "detail is invented by the model.", "Software": "Deeply Good Fakes",
            "dgf_upscale": json.dumps(recipe)}
