"""Projection: find the latent from which a generator reproduces an aligned photo (GAN inversion).

One optimiser, several latent spaces, each behind a small adapter (`LatentSpace`):
- "z" (any family whose generator is `forward(z)`, e.g. the DCGAN): start from the best of `n_init` seeded
  random z, a norm prior keeps ||z|| near sqrt(z_dim), where a Gaussian z lives;
- "w" / "w+" (StyleGAN2: `mapping`, `synthesis`, `broadcast`, `mean_w`): start from the mean w; one w for
  all layers, or one per layer (W+, better reconstructions, a regulariser keeps the layers close to their
  mean); a decaying Gaussian latent noise explores early (as in StyleGAN2's projector). The model's inference
  noise (its fixed buffers, or none: `inference_noise`) is kept, not optimised, so the latent alone reproduces
  the image and the saved .npz (the recipe) needs nothing else.
Loss: multi-scale pixel loss (L2 + L1 at 1, 1/2, 1/4 resolution) plus discriminator feature matching when the
model ships its discriminator (intermediate activations, each layer normalised by the target's magnitude), both from
`losses` (shared with pivotal tuning), plus the latent prior. Adam with a fixed step budget, learning-rate warm-up and
cosine decay; `progress(step, steps, loss)` after each step; the returned latent is the best seen.
Deterministic on the CPU for a given seed: all randomness comes from one `torch.Generator`.

Saved latents (`save_latent` / `load_latent`) are .npz files of plain arrays only (read with
allow_pickle=False): the latent, its space, the model name and weights sha256, the seed and step budget.
They never contain the photo.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from ..latent import SPACES
from .losses import (
    ProjectionError,
    discriminator_features,
    feature_matching_loss,
    multiscale_pixel_loss,
    psnr_rgb,
)

LATENT_FORMAT = "dgf-latent/1"
DEFAULT_STEPS = 200  # one free CPU core, 64x64, with feature matching: DCGAN about 6 s, StyleGAN2 W+ about 25 s (CPU time)
MAX_STEPS = 5000

Progress = Callable[[int, int, float], None]

# Torch intra-op threads while projecting and tuning (both options' `threads`; None: leave torch's setting). The
# networks are small (64 px, a StyleGAN2 of 1.8M weights): per-op overhead dominates, and a second thread gained under
# 10% on a quiet 2-core machine but made each step 2-8x slower whenever another process held a core (every op waits
# for its descheduled peer); docs/memory.md#speed.
PHASE_THREADS = 1


_THREADS_LOCK = threading.Lock()
_THREADS_HELD: list = [0, None]  # blocks inside intra_op_threads now, and the count before the first of them


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """torch.set_num_threads(n) for the block, the count from before restored after it; None: no change.
    torch's count is global to the process: when blocks overlap (two requests in one app), the first saves the
    count and the last restores it, so a block never restores another's setting."""
    if n is None:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_HELD[0] == 0:
            _THREADS_HELD[1] = torch.get_num_threads()
        _THREADS_HELD[0] += 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_HELD[0] -= 1
            if _THREADS_HELD[0] == 0 and torch.get_num_threads() != _THREADS_HELD[1]:
                torch.set_num_threads(_THREADS_HELD[1])


# ---- latent spaces ---------------------------------------------------------------------------------------

class LatentSpace(Protocol):
    space: str

    def initial(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...
    def synthesize(self, latent: torch.Tensor) -> torch.Tensor: ...
    def prior(self, latent: torch.Tensor) -> torch.Tensor: ...
    def explore_scale(self) -> float: ...
    def coord_std(self) -> float: ...


class ZSpace:
    """z of any generator with forward(z): (N, z_dim) -> (N, 3, R, R). Latent: (1, z_dim)."""

    space = "z"

    def __init__(self, generator: nn.Module, z_dim: int, n_init: int = 64):
        self.g = generator.inference_module() if hasattr(generator, "inference_module") else generator
        self.z_dim, self.n_init = z_dim, n_init

    def initial(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(self.n_init, self.z_dim, generator=generator, device=generator.device).to(target.device)
        with torch.no_grad():
            imgs = self.g(z)
            if imgs.shape[1:] != target.shape[1:]:
                raise ProjectionError(f"the target is {tuple(target.shape[-2:])} but the generator makes {tuple(imgs.shape[-2:])} images")
            err = (imgs - target).square().flatten(1).mean(1)
        return z[int(err.argmin())][None].clone()

    def synthesize(self, latent: torch.Tensor) -> torch.Tensor:
        return self.g(latent)

    def prior(self, latent: torch.Tensor) -> torch.Tensor:
        """(||z|| - sqrt(d))^2 / d: zero on the shell where Gaussian z concentrate."""
        return (latent.norm(dim=1) - math.sqrt(self.z_dim)).square().mean() / self.z_dim

    def explore_scale(self) -> float:
        return 1.0

    def coord_std(self) -> float:
        return 1.0


class WSpace:
    """StyleGAN2 W (latent (1, w_dim), the same w at every layer) or W+ (latent (1, n_ws, w_dim))."""

    def __init__(self, generator: nn.Module, plus: bool, n_stats: int = 4096, stats_seed: int = 0):
        for name in ("mapping", "synthesis", "broadcast", "n_ws"):
            if not hasattr(generator, name):
                raise ProjectionError(f"{type(generator).__name__} has no {name!r}: not a StyleGAN2 generator")
        self.g, self.plus = generator, plus
        self.space = "w+" if plus else "w"
        # w statistics from a fixed seed (not the projection seed): the start point and the exploration scale
        dev = next(generator.parameters()).device
        zg = torch.Generator(device="cpu").manual_seed(stats_seed)
        with torch.no_grad():
            z = torch.randn(n_stats, generator.z_dim, generator=zg).to(dev)
            w = generator.mapping(z)
        mean_w = getattr(generator, "mean_w", None)
        self.w_avg = mean_w.clone() if mean_w is not None and bool(mean_w.abs().sum() > 0) else w.mean(0)
        self.w_std = float((w - self.w_avg).square().sum(1).mean().sqrt())

    def initial(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        w = self.w_avg[None].to(target.device)
        return self.g.broadcast(w).clone() if self.plus else w.clone()

    def ws(self, latent: torch.Tensor) -> torch.Tensor:
        return latent if self.plus else self.g.broadcast(latent)

    def synthesize(self, latent: torch.Tensor) -> torch.Tensor:
        return self.g.synthesis(self.ws(latent))

    def prior(self, latent: torch.Tensor) -> torch.Tensor:
        """W+: the spread of the per-layer ws around their mean, relative to the spread of W itself."""
        if not self.plus:
            return latent.new_zeros(())
        return (latent - latent.mean(1, keepdim=True)).square().sum(2).mean() / self.w_std**2

    def explore_scale(self) -> float:
        return self.w_std

    def coord_std(self) -> float:
        return self.w_std / math.sqrt(self.w_avg.numel())


def space_name(generator: nn.Module, space: str = "auto") -> str:
    """The latent space a projection of `generator` uses: 'auto' is W+ for StyleGAN2 (has `synthesis`) and z
    otherwise; raises ProjectionError for a space the generator does not have. Cheap: builds no adapter."""
    is_style = hasattr(generator, "synthesis") and hasattr(generator, "mapping")
    if space == "auto":
        space = "w+" if is_style else "z"
    if space not in SPACES:
        raise ProjectionError(f"space must be 'auto' or one of {SPACES}, got {space!r}")
    if space in ("w", "w+") and not is_style:
        raise ProjectionError(f"space {space!r} needs a StyleGAN2 generator; {type(generator).__name__} has only z")
    return space


def latent_space(generator: nn.Module, space: str = "auto", z_dim: int | None = None) -> LatentSpace:
    """The adapter for a generator and its latent space (`space_name`)."""
    space = space_name(generator, space)
    if space in ("w", "w+"):
        return WSpace(generator, plus=space == "w+")
    z_dim = z_dim or getattr(generator, "z_dim", None) or getattr(getattr(generator, "cfg", None), "z_dim", None)
    if not z_dim:
        raise ProjectionError(f"cannot tell the z dimension of {type(generator).__name__}")
    return ZSpace(generator, int(z_dim))


@dataclass
class ProjectionOptions:
    steps: int = DEFAULT_STEPS
    seed: int = 0
    space: str = "auto"  # "z" (DCGAN), "w" or "w+" (StyleGAN2); auto: w+ for StyleGAN2, z otherwise
    lr: float | None = None  # Adam lr in units of the latent's per-coordinate spread; default 0.05 (z), 0.1 (w, w+)
    l1_weight: float = 1.0
    fm_weight: float = 0.1  # discriminator feature matching (0: pixels only)
    prior_weight: float = 0.05  # z norm prior / W+ layer spread
    explore: float = 0.05  # initial latent noise, times the space's spread; decays to 0 at 75% of the steps
    warmup: float = 0.05  # share of steps with a linear lr ramp-up
    rampdown: float = 0.25  # share of steps with a cosine lr ramp-down
    threads: int | None = PHASE_THREADS  # torch intra-op threads while projecting (None: torch's setting)

    def validate(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ProjectionError(f"threads must be a positive integer or None, got {self.threads!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise ProjectionError(f"steps must be an integer in 1..{MAX_STEPS}, got {self.steps!r}")
        if self.space not in ("auto",) + SPACES:
            raise ProjectionError(f"space must be 'auto' or one of {SPACES}, got {self.space!r}")
        for name in ("l1_weight", "fm_weight", "prior_weight", "explore"):
            if not getattr(self, name) >= 0:
                raise ProjectionError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise ProjectionError(f"lr must be positive, got {self.lr}")


def lr_at(t: float, base: float, warmup: float, rampdown: float) -> float:
    """Learning rate at progress t in [0, 1]: linear warm-up, flat, cosine ramp-down (StyleGAN2 projector)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if warmup > 0:
        ramp *= min(1.0, t / warmup)
    return base * ramp


@dataclass
class ProjectionResult:
    latent: torch.Tensor  # (1, z_dim) for z, (1, w_dim) for w, (1, n_ws, w_dim) for w+; CPU float32
    space: str
    image: torch.Tensor  # (1, 3, R, R) in [-1, 1]: the generator's reconstruction from `latent`
    losses: list[float]  # total loss per step
    psnr: float  # of the reconstruction against the target, RGB, dB
    options: ProjectionOptions
    seconds: float
    model: str = ""
    weights_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def project(
    generator: nn.Module,
    target: torch.Tensor,
    options: ProjectionOptions | None = None,
    *,
    discriminator: nn.Module | None = None,
    progress: Progress | None = None,
    z_dim: int | None = None,
) -> ProjectionResult:
    """Optimise a latent so that `generator` reproduces `target`.

    target: (1, 3, R, R) in [-1, 1], R the generator's resolution (an aligned face, `AlignedFace.to_float()`).
    The generator (and discriminator) stay frozen; only the latent is optimised.
    """
    opts = options or ProjectionOptions()
    opts.validate()
    with intra_op_threads(opts.threads):
        return _project(generator, target, opts, discriminator, progress, z_dim)


def _project(generator: nn.Module, target: torch.Tensor, opts: ProjectionOptions, discriminator: nn.Module | None,
             progress: Progress | None, z_dim: int | None) -> ProjectionResult:
    if target.ndim != 4 or target.shape[0] != 1 or target.shape[1] != 3:
        raise ProjectionError(f"target must be (1, 3, R, R), got {tuple(target.shape)}")
    t0 = time.perf_counter()
    dev = next(generator.parameters()).device
    target = target.to(dev, torch.float32)
    space = latent_space(generator, opts.space, z_dim)
    g = torch.Generator(device="cpu").manual_seed(int(opts.seed))
    with torch.no_grad():
        latent0 = space.initial(target, g)
        probe = space.synthesize(latent0)
    if probe.shape != target.shape:
        raise ProjectionError(f"the target is {tuple(target.shape[-2:])} but the generator makes {tuple(probe.shape[-2:])} images")
    latent = latent0.detach().clone().requires_grad_(True)
    base_lr = (opts.lr if opts.lr is not None else (0.05 if space.space == "z" else 0.1)) * space.coord_std()
    optim = torch.optim.Adam([latent], lr=base_lr, betas=(0.9, 0.999))
    use_fm = discriminator is not None and opts.fm_weight > 0
    with torch.no_grad():
        target_feats = discriminator_features(discriminator, target) if use_fm else []
    losses: list[float] = []
    best = (float("inf"), latent0.detach().clone())
    for step in range(opts.steps):
        t = step / opts.steps
        for group in optim.param_groups:
            group["lr"] = lr_at(t, base_lr, opts.warmup, opts.rampdown)
        noise_scale = space.explore_scale() * opts.explore * max(0.0, 1.0 - t / 0.75) ** 2
        noise = torch.randn(latent.shape, generator=g).to(dev) * noise_scale
        img = space.synthesize(latent + noise)
        loss = multiscale_pixel_loss(img, target, l1_weight=opts.l1_weight)
        if use_fm:
            loss = loss + opts.fm_weight * feature_matching_loss(discriminator_features(discriminator, img), target_feats)
        loss = loss + opts.prior_weight * space.prior(latent)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        value = float(loss.detach())
        losses.append(value)
        if noise_scale == 0.0 and value < best[0]:  # noiseless steps only: their loss is the latent's own
            best = (value, latent.detach().clone())
        if progress is not None:
            progress(step + 1, opts.steps, value)
    final = best[1] if math.isfinite(best[0]) else latent.detach().clone()
    with torch.no_grad():
        image = space.synthesize(final)
    return ProjectionResult(final.cpu().float(), space.space, image.cpu().float(), losses, psnr_rgb(image, target),
                            opts, time.perf_counter() - t0)


def load_projection_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu"):
    """`checkpoint.load_model` with the discriminator when the folder ships one (it adds the feature-matching
    loss), without it otherwise."""
    from safetensors import SafetensorError, safe_open

    from ..checkpoint import WEIGHTS_FILE, load_model, resolve_model_path

    folder = resolve_model_path(name_or_path)
    try:
        with safe_open(str(folder / WEIGHTS_FILE), "pt") as f:
            has_d = any(k.startswith("discriminator.") for k in f.keys())
    except (SafetensorError, OSError):  # unreadable: load_model reports it with its own message
        has_d = False
    return load_model(folder, device, with_discriminator=has_d)


def project_model(model, target: torch.Tensor, options: ProjectionOptions | None = None, *,
                  progress: Progress | None = None) -> ProjectionResult:
    """`project` for a `checkpoint.LoadedModel` (uses its discriminator when it was loaded with one) and
    stamps the result with the model's name and weights hash."""
    res = project(model.generator, target, options, discriminator=model.discriminator, progress=progress,
                  z_dim=getattr(model.config, "z_dim", None))
    res.model, res.weights_sha256 = model.name, model.weights_sha256
    return res


# ---- saving and loading latents --------------------------------------------------------------------------

@dataclass
class SavedLatent:
    latent: torch.Tensor
    space: str
    model: str
    weights_sha256: str
    meta: dict[str, Any]


def save_latent(path: str | os.PathLike, result: ProjectionResult) -> Path:
    """Write the projected latent as an .npz of plain arrays (no pickles, no photo)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ProjectionError(f"latent files end in .npz, got {path.name}")
    arrays = {
        "format": np.array(LATENT_FORMAT), "latent": result.latent.numpy().astype(np.float32),
        "space": np.array(result.space), "model": np.array(result.model),
        "weights_sha256": np.array(result.weights_sha256), "seed": np.array(result.options.seed, np.int64),
        "steps": np.array(result.options.steps, np.int64), "psnr": np.array(result.psnr, np.float64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_latent(path: str | os.PathLike) -> SavedLatent:
    """Read a latent written by `save_latent` (allow_pickle=False). Raises ProjectionError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no latent file {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise ProjectionError(f"{path} is not a readable latent .npz: {e}") from None
    missing = {"format", "latent", "space", "model", "weights_sha256"} - set(data)
    if missing or str(data.get("format")) != LATENT_FORMAT:
        raise ProjectionError(f"{path} is not a {LATENT_FORMAT} file (missing {sorted(missing)})" if missing
                              else f"{path} has format {str(data['format'])!r}, expected {LATENT_FORMAT}")
    space = str(data["space"])
    lat = torch.from_numpy(np.asarray(data["latent"], np.float32))
    if space not in SPACES or lat.ndim != (3 if space == "w+" else 2) or not torch.isfinite(lat).all():
        raise ProjectionError(f"{path}: bad latent of shape {tuple(lat.shape)} for space {space!r}")
    meta = {k: v.item() for k, v in data.items() if k not in ("latent",) and v.ndim == 0}
    return SavedLatent(lat, space, str(data["model"]), str(data["weights_sha256"]), meta)


def check_latent_model(saved: SavedLatent, model) -> None:
    """Refuse a latent projected with other weights: its meaning is tied to the exact generator."""
    if saved.weights_sha256 and model.weights_sha256 and saved.weights_sha256 != model.weights_sha256:
        raise ProjectionError(f"this latent was projected with model {saved.model!r} "
                              f"(weights {saved.weights_sha256[:12]}), not {model.name!r} (weights {model.weights_sha256[:12]})")
    shape = tuple(saved.latent.shape[1:])
    g = model.generator
    if saved.space == "z" and shape != (model.config.z_dim,):
        raise ProjectionError(f"latent shape {shape} does not fit z_dim {model.config.z_dim}")
    if saved.space in ("w", "w+") and not hasattr(g, "synthesis"):
        raise ProjectionError(f"a {saved.space} latent needs a StyleGAN2 model; {model.name!r} is {model.family.name}")


# ---- photo -> latent ---------------------------------------------------------------------------------------

def prepare_target(image, model, *, align: bool = True, detector=None) -> tuple[torch.Tensor, list[str]]:
    """A PIL photo -> ((1, 3, R, R) target in [-1, 1], notices). With `align`, MTCNN + similarity warp onto the
    model's canonical landmarks (AlignmentError with a user message when there is no usable face); without,
    the photo is taken as an already-aligned crop and centre-cropped like the training data."""
    target, notices, _ = aligned_target(image, model, align=align, detector=detector)
    return target, notices


def aligned_target(image, model, *, align: bool = True, detector=None) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """`prepare_target` and the (2, 3) photo -> crop transform it used (the alignment's similarity, or the centre
    crop's scale and shift), which puts the crop's pixels back into the photo (`faces.render`)."""
    from ..data import center_crop_resize
    from .alignment import align_face, model_recipe
    from .render import center_crop_transform

    res = int(model.config.resolution)
    if align:
        face = align_face(image, res, recipe=model_recipe(model.card), detector=detector)[0]
        return face.to_float(), face.notices, face.transform
    arr = np.asarray(center_crop_resize(image, res), dtype=np.uint8)
    return (torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1.0), [],
            center_crop_transform(*image.size, res))


def project_photo(model, image, options: ProjectionOptions | None = None, *, align: bool = True, detector=None,
                  progress: Progress | None = None) -> ProjectionResult:
    """Photo (PIL, already opened safely, e.g. with `uploads.open_upload`) -> projected latent of `model`.
    The alignment notices (several faces...) are in `result.extra['notices']`."""
    target, notices = prepare_target(image, model, align=align, detector=detector)
    res = project_model(model, target, options, progress=progress)
    res.extra["notices"] = notices
    return res
