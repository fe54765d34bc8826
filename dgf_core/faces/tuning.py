"""Pivotal tuning (Roich et al. 2022, "Pivotal Tuning for Latent-based Editing of Real Images").

Projection finds the latent (the *pivot*) whose image is closest to the photo, but a generator trained on 15k
faces does not contain every person: the likeness has to come from the photo. `tune` fine-tunes a private copy
of the generator for a bounded number of steps so that it reproduces the photo at the pivot, while a locality
regularizer keeps its output unchanged for latents at a fixed distance from the pivot (towards random latents),
so walks and age/gender edits around the pivot stay natural and the rest of the model stays the model.

Losses, all without downloaded weights:
- pixels: multi-scale MSE + L1 (`losses.multiscale_pixel_loss`) between the tuned image at the pivot and
  the photo;
- identity: 1 - cosine of the project's identity embedding (`likeness.Likeness`, weights/identity-celeba200)
  between the tuned image and the photo, when a likeness model is given;
- discriminator features (`losses.feature_matching_loss`), when the model ships its discriminator;
- locality: the same pixel loss between the tuned and the original generator at the locality latents.

The tuned copy lives only in the caller's memory: `tune` never writes a file, and nothing here caches it. A clip
rendered with it cannot be regenerated from its recipe without the photo (the recipe says so).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..latent import synthesize
from .losses import (
    ProjectionError,
    discriminator_features,
    feature_matching_loss,
    multiscale_pixel_loss,
    psnr_rgb,
)
from .projection import PHASE_THREADS, intra_op_threads, latent_space, lr_at, space_name

MAX_TUNE_STEPS = 1000
# Defaults by latent space, each measured (scripts/measure_memory.py --mix; docs/results/memory-*.json): the loss mix
# that gave the best likeness for its CPU time. Why they differ: Adam's step is about lr in the units the weights are
# stored in. The DCGAN's weights are stored at their scale (N(0, 0.02)); the StyleGAN2's use the equalized learning
# rate (stored N(0, 1), scaled at run time), so the same lr is a ~50x smaller relative step there (1e-3 left its
# reconstructions 2 dB short of 1e-2; 3e-2 was 3 dB worse again). The locality term, four extra images per step,
# was 80% of the StyleGAN2's tuning time and its main PSNR limit at weight 1: weight 0.1 on 2 latents every
# other step, farther out (0.5), and more steps reach the photo and still halve what tuning leaks (locality_drift).
# At a constant lr 1e-2 the StyleGAN2's PSNR swung by 1-2 dB from step to step, so the result was wherever the last
# step left it: a cosine ramp-down of the lr over the last 30% settles it (+1.7 dB on three faces; 200 steps ramped
# over the last half gave +1.1 dB there but 0.7 dB less on a real photo: docs/memory.md#speed). The DCGAN's lr is
# already small and keeps its constant schedule.
SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "z": {"steps": 150, "lr": 1e-3, "locality_weight": 1.0, "locality_radius": 0.3, "locality_batch": 4,
          "locality_every": 1, "lr_rampdown": 0.0},
    "w": {"steps": 250, "lr": 1e-2, "locality_weight": 0.1, "locality_radius": 0.5, "locality_batch": 2,
          "locality_every": 2, "lr_rampdown": 0.3},
}
SPACE_DEFAULTS["w+"] = SPACE_DEFAULTS["w"]
DEFAULT_TUNE_STEPS = SPACE_DEFAULTS["z"]["steps"]  # a UI's steps before it knows the model (see default_tuning)

Progress = Callable[[int, int, float], None]


@dataclass
class TuningOptions:
    """Pivotal-tuning options. Fields left None take their latent space's default (SPACE_DEFAULTS) when tuning
    starts; `resolved(space)` fills them in, and that is what results and recipes record."""
    steps: int | None = None  # 0: no tuning
    lr: float | None = None  # Adam on the generator's weights
    lr_rampdown: float | None = None  # share of the last steps over which lr falls to 0 (cosine); 0: constant lr
    identity_weight: float = 0.1  # 1 - cosine of identity embeddings (needs a likeness model)
    fm_weight: float = 0.1  # discriminator feature matching (needs the discriminator): +2 dB for 10% more time
    locality_weight: float | None = None
    locality_radius: float | None = None  # distance of the locality latents from the pivot, a share of the
    #                                       typical distance between two random latents
    locality_batch: int | None = None  # locality latents per locality step
    locality_every: int | None = None  # the locality loss every k steps (its weight times k: the same share)
    seed: int = 0
    threads: int | None = PHASE_THREADS  # torch intra-op threads while tuning (None: torch's setting; see projection)

    def validate(self) -> None:
        """Checks every value that is set (None: the latent space's default, checked once resolved)."""
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ProjectionError(f"threads must be a positive integer or None, got {self.threads!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or not 0 <= self.steps <= MAX_TUNE_STEPS):
            raise ProjectionError(f"tuning steps must be an integer in 0..{MAX_TUNE_STEPS}, got {self.steps!r}")
        if self.lr_rampdown is not None and not (isinstance(self.lr_rampdown, (int, float))
                                                 and not isinstance(self.lr_rampdown, bool) and 0 <= self.lr_rampdown <= 1):
            raise ProjectionError(f"lr_rampdown must be a number in [0, 1], got {self.lr_rampdown!r}")
        for name in ("identity_weight", "fm_weight", "locality_weight", "locality_radius"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                      and math.isfinite(v)):
                raise ProjectionError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ProjectionError(f"tuning lr must be a positive number, got {self.lr!r}")
        for name in ("locality_batch", "locality_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ProjectionError(f"{name} must be a positive integer, got {v!r}")

    def resolved(self, space: str) -> "TuningOptions":
        """A copy with the latent space's defaults in place of every None."""
        if space not in SPACE_DEFAULTS:
            raise ProjectionError(f"unknown latent space {space!r}")
        self.validate()
        return replace(self, **{k: v for k, v in SPACE_DEFAULTS[space].items() if getattr(self, k) is None})


def default_tuning(model_or_generator, space: str = "auto") -> TuningOptions:
    """The default options, resolved for a model (or generator) and the latent space its projection uses."""
    gen = getattr(model_or_generator, "generator", model_or_generator)
    return TuningOptions().resolved(space_name(gen, space))


@dataclass
class TuningResult:
    generator: nn.Module  # the tuned private copy (eval, no grad): render it with `latent.synthesize`
    image: torch.Tensor  # (1, 3, R, R) in [-1, 1]: the tuned generator at the pivot
    psnr: float
    losses: list[float]
    options: TuningOptions
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # "psnr_curve": the PSNR at the pivot before each step


def trainable_copy(generator: nn.Module, space: str) -> nn.Module:
    """A private copy of what renders `space` latents (the DCGAN's folded inference network for z), weights
    trainable, in eval mode (batch norm is folded; StyleGAN2 noise is its deterministic `inference_noise`)."""
    src = generator.inference_module() if space == "z" and hasattr(generator, "inference_module") else generator
    return copy.deepcopy(src).eval().requires_grad_(True)


def latent_distance(generator: nn.Module, space: str, pivot: torch.Tensor) -> float:
    """The typical distance between two random latents of `space`: sqrt(2 D) for z; for w / w+, sqrt(2) x the
    spread of w around its mean, from 4,096 mapped latents of a fixed seed (so compute it once per tuning, not
    per step: the mapping is a third of a StyleGAN2 tuning step's time)."""
    if space == "z":
        return math.sqrt(2 * pivot.shape[1])
    return math.sqrt(2.0) * latent_space(generator, "w").explore_scale()  # explore_scale is w's spread around its mean


def locality_latents(pivot: torch.Tensor, space: str, generator: nn.Module, n: int, radius: float,
                     g: torch.Generator, distance: float | None = None) -> torch.Tensor:
    """n latents at distance `radius` x `distance` (the typical distance between two random latents,
    `latent_distance`; computed here when None) from the pivot, each in the direction of a random latent (PTI's
    locality regularization). pivot: (1, D) for z/w, (1, n_ws, D) for w+."""
    dev = pivot.device
    if distance is None:
        distance = latent_distance(generator, space, pivot)
    if space == "z":
        rnd = torch.randn(n, pivot.shape[1], generator=g).to(dev)
    else:
        with torch.no_grad():
            rnd = generator.mapping(torch.randn(n, generator.z_dim, generator=g).to(dev))  # (n, w_dim)
        if space == "w+":
            rnd = rnd[:, None, :].expand(n, pivot.shape[1], -1)
    d = rnd - pivot
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return (pivot + radius * distance * d).detach()


def _identity_loss(likeness, recipe: str, image: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
    from .likeness import to_face_region

    emb = likeness.net(to_face_region(image.clamp(-1, 1), recipe, likeness.net.cfg))
    return 1.0 - (emb * target_emb).sum(1).mean()


def tune(generator: nn.Module, pivot: torch.Tensor, space: str, target: torch.Tensor,
         options: TuningOptions | None = None, *, discriminator: nn.Module | None = None, likeness=None,
         recipe: str | None = None, progress: Progress | None = None) -> TuningResult:
    """Fine-tune a private copy of `generator` so that it reproduces `target` at `pivot`.

    generator: a loaded generator (frozen; never modified). pivot: the projected latent in `space`
    ((1, D) for z / w, (1, n_ws, D) for w+). target: (1, 3, R, R) in [-1, 1], the aligned photo.
    likeness: a `likeness.Likeness` for the identity loss (with `recipe`, the model's crop recipe).
    Deterministic on the CPU for a given seed. With steps=0 the copy is returned untouched.
    """
    opts = (options or TuningOptions()).resolved(space)
    if target.ndim != 4 or target.shape[0] != 1 or target.shape[1] != 3:
        raise ProjectionError(f"target must be (1, 3, R, R), got {tuple(target.shape)}")
    with intra_op_threads(opts.threads):
        return _tune(generator, pivot, space, target, opts, discriminator, likeness, recipe, progress)


def _tune(generator: nn.Module, pivot: torch.Tensor, space: str, target: torch.Tensor, opts: TuningOptions,
          discriminator: nn.Module | None, likeness, recipe: str | None, progress: Progress | None) -> TuningResult:
    t0, c0 = time.perf_counter(), time.process_time()
    dev = next(generator.parameters()).device
    target = target.to(dev, torch.float32)
    pivot = pivot.to(dev, torch.float32)
    original = trainable_copy(generator, space).requires_grad_(False)  # the reference for locality
    tuned = trainable_copy(generator, space)
    with torch.no_grad():
        start = synthesize(tuned, pivot, space)
    if start.shape != target.shape:
        raise ProjectionError(f"the target is {tuple(target.shape[-2:])} but the generator makes {tuple(start.shape[-2:])} images")
    params = [p for p in tuned.parameters() if p.is_floating_point()]
    optim = torch.optim.Adam(params, lr=opts.lr, betas=(0.9, 0.999), foreach=True)  # foreach: one op per step, not per tensor
    g = torch.Generator().manual_seed(int(opts.seed))
    use_id = likeness is not None and opts.identity_weight > 0
    use_fm = discriminator is not None and opts.fm_weight > 0
    if use_id and recipe is None:
        raise ProjectionError("the identity loss needs the model's crop recipe")
    with torch.no_grad():
        target_emb = likeness.embed(target, recipe) if use_id else None
        target_feats = discriminator_features(discriminator, target) if use_fm else []
    losses: list[float] = []
    curve: list[float] = []
    distance = latent_distance(generator, space, pivot) if opts.locality_weight > 0 else 0.0
    for step in range(opts.steps):
        if opts.lr_rampdown > 0:
            for group in optim.param_groups:
                group["lr"] = lr_at(step / opts.steps, opts.lr, 0.0, opts.lr_rampdown)
        near = None
        if opts.locality_weight > 0 and (step + 1) % opts.locality_every == 0:  # not step 0, where it is 0
            near = locality_latents(pivot, space, generator, opts.locality_batch, opts.locality_radius, g, distance)
        # the pivot and the locality latents in one batch: one forward and backward pass instead of two
        images = synthesize(tuned, pivot if near is None else torch.cat([pivot, near]), space)  # (1 [+ n], 3, R, R)
        img = images[:1]
        curve.append(psnr_rgb(img, target))  # of the weights before this step
        loss = multiscale_pixel_loss(img, target)
        if use_id:
            loss = loss + opts.identity_weight * _identity_loss(likeness, recipe, img, target_emb)
        if use_fm:
            loss = loss + opts.fm_weight * feature_matching_loss(discriminator_features(discriminator, img), target_feats)
        if near is not None:
            with torch.no_grad():
                ref = synthesize(original, near, space)
            weight = opts.locality_weight * opts.locality_every
            loss = loss + weight * multiscale_pixel_loss(images[1:], ref)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, opts.steps, losses[-1])
    tuned.requires_grad_(False).eval()
    with torch.no_grad():
        image = synthesize(tuned, pivot, space)
    return TuningResult(tuned, image.cpu().float(), psnr_rgb(image, target), losses, opts,
                        time.perf_counter() - t0, time.process_time() - c0, {"psnr_curve": curve})


@torch.no_grad()
def locality_drift(original: nn.Module, tuned: nn.Module, pivot: torch.Tensor, space: str, *, n: int = 16,
                   radius: float = 0.6, seed: int = 1) -> float:
    """Mean absolute pixel change (in [0, 2] units) between the original and the tuned generator at n latents
    `radius` away from the pivot (farther than the training locality radius): how much tuning leaked."""
    g = torch.Generator().manual_seed(seed)
    space_gen = original
    near = locality_latents(pivot, space, space_gen, n, radius, g)
    ref = synthesize(trainable_copy(original, space).requires_grad_(False), near, space)
    return float(F.l1_loss(synthesize(tuned, near, space), ref))
