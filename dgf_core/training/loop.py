"""The training loop: `train(opts)` in named pieces (`setup`, `announce`, `train_step`, `step_record`,
`evaluate_snapshot`, `write_state`, `finish`), each a function of the run's state (`Run`).

`train(TrainOptions(...))` trains a registered GAN family on folders of face images:
- data decoded once into a uint8 tensor on the training device, random horizontal flips per batch;
- EMA of the generator, bf16 autocast (CUDA, and CPUs with native bf16), optional torch.compile,
  optional differentiable augmentation (`dgf_core.training.augment`, for D on small data sets);
- a progress bar with images/s, a JSONL log and sample grids at intervals;
- every `eval_every` images, the face rate of fixed seeds, their C2ST against held-out faces and their coverage
  (share of women, mean age; with images seen and CPU seconds) in the log and a snapshot of the EMA generator under
  `snapshots/`: the run's learning curve (`python -m dgf_core curves`);
- training state written atomically every `checkpoint_every` steps, every `checkpoint_minutes` and on
  Ctrl-C/SIGTERM; `resume=True` continues exactly: the batch order is a function of (seed, epoch), and all
  per-step randomness (noise, flips, augmentation) comes from a generator seeded with (seed, rank, step),
  so no RNG state must be saved; `init_from` starts a new run from a shipped generator's weights;
- crash safety: `resume=True` on a folder without a state starts the run (one command starts or continues it);
  a resumed run removes the temporary files of writes a kill interrupted (by name, in its own folders) and drops
  the log records past the saved step, which it is about to redo (so the log never counts a step twice); a run
  that fails before its first step leaves no empty folder behind;
- data-parallel training under `torchrun` (DDP; NCCL on GPUs, gloo on CPUs): each rank takes its slice
  of every global batch.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import json
import os
import platform
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from .. import checkpoint as ckpt
from ..data import (
    DataError,
    data_licences,
    epoch_permutation,
    load_image_set,
    random_flip,
    to_float,
    to_uint8,
)
from ..images import atomic_path, make_grid, save_png
from ..latent import seeds_to_z
from ..models import get_family
from .augment import diff_augment, parse_policy
from .losses import (
    d_logistic_loss,
    d_r1_penalty,
    ema_decay_at,
    ema_update,
    g_nonsaturating_loss,
)
from .two_sample import C2ST_MIN_PER_CLASS, c2st

STATE_FILE = "state.safetensors"
LOG_FILE = "log.jsonl"
MODEL_DIR = "model"
EVAL_C2ST_SAMPLES = 1000  # the in-run two-sample test's samples, as `evaluate --n 1000` (all 765 held-out CelebA faces)
EVAL_COVERAGE_TRAIN = 2000  # training faces the snapshots' coverage is compared with (a seeded subset; SE of the share ~0.01)


@dataclass
class TrainOptions:
    data: list[str]
    out: str
    family: str = "dcgan"
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the family's config dataclass
    resolution: int = 64
    batch_size: int = 128  # global batch (split across ranks under torchrun)
    steps: int = 10_000
    lr: float = 2e-4  # the DCGAN paper's Adam: lr 2e-4, beta1 0.5
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    r1_gamma: float = 0.0  # lazy R1 weight (0: off; StyleGAN uses it)
    r1_every: int = 16
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    sample_seeds: int = 64
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX); losses, R1, EMA stay fp32
    compile: bool = False  # torch.compile G and D, for CUDA (on a 2-core CPU it made the small StyleGAN2 slower:
    #                        25 vs 37 images/s, 2026-12-06); R1 always runs on the eager D (no double backward)
    channels_last: bool = True  # NHWC layout for G, D and the batches: oneDNN's fast path (measured on this 2-core CPU
    #                             with bf16: DCGAN 95 -> 127 images/s, small StyleGAN2 29 -> 33)
    limit: int | None = None  # use only the first N training images
    cache_dir: str | None = None
    resume: bool = False
    progress: bool = True
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    export: bool = True  # write OUT/model (EMA generator with recalibrated batch norm) at the end
    note: str = ""  # free text for the model card (e.g. how it was trained and what that means for quality)
    checkpoint_minutes: float = 10.0  # also write the state when this much wall time passed since the last write
    augment: str = ""  # DiffAugment policy for D's inputs, e.g. "color,translation,cutout" ("" : none)
    augment_p: float = 1.0  # probability of each augmentation per image
    eval_every: int = 0  # images between face-rate evaluations + snapshots (0: off)
    eval_seeds: int = 256  # fixed seeds 0..n-1 whose samples are scored (face rate, coverage)
    eval_c2st_samples: int = EVAL_C2ST_SAMPLES  # seeds 0..n-1 in the two-sample test, against as many held-out faces (0: off)
    init_from: str | None = None  # model folder or name in weights/: start G (and D when it ships) from it

    def validate(self) -> None:
        if not self.data:
            raise ValueError("give at least one --data folder")
        get_family(self.family)
        for name in ("batch_size", "steps", "log_every", "sample_every", "checkpoint_every", "r1_every", "eval_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_c2st_samples < 0:
            raise ValueError(f"eval_c2st_samples must be 0 (off) or a number of samples, got {self.eval_c2st_samples}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be 0 (off) or a number of images, got {self.eval_every}")
        if not self.checkpoint_minutes > 0:
            raise ValueError(f"checkpoint_minutes must be positive, got {self.checkpoint_minutes}")
        if not 0.0 < self.augment_p <= 1.0:
            raise ValueError(f"augment_p must be in (0, 1], got {self.augment_p}")
        parse_policy(self.augment)
        if self.init_from and self.resume:
            raise ValueError("--init-from starts a new run; --resume continues one: give only one of them")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16, where bf16 autocast is ~2x faster than fp32 for our nets."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_for(device: torch.device, enabled: bool):
    """bf16 autocast where it pays (CUDA; CPUs with native bf16), else a no-op context."""
    if enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """All randomness of one step on one rank comes from here (noise, flips): resume needs no RNG state."""
    return torch.Generator(device=device).manual_seed((seed * 7_919 + rank * 1_000_003 + step * 2_654_435_761) % 2**63)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, z_dim: int, device: torch.device, batches: int = 50, batch_size: int = 256) -> None:
    """Re-estimate BatchNorm running statistics of an (EMA) generator on its own noise.

    EMA averages weights, but the running statistics it carries were measured on the raw generator;
    an exact cumulative average over fresh batches makes eval-mode sampling (one seed at a time) match
    training-mode behaviour. No-op for generators without BatchNorm.
    """
    bns = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    was_training = generator.training
    generator.train()
    g = torch.Generator(device=device).manual_seed(12345)
    for _ in range(batches):
        generator(torch.randn(batch_size, z_dim, generator=g, device=device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    generator.train(was_training)


def _z_dim(config: Any) -> int:
    return getattr(config, "z_dim")


class _Distributed:
    def __init__(self, device_pref: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
            dist.init_process_group("nccl" if use_cuda else "gloo")
        if self.world > 1 and torch.cuda.is_available() and device_pref in ("auto", "cuda"):
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = resolve_device(device_pref)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _environment() -> dict[str, Any]:
    hw = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return {"hardware": hw, "torch": torch.__version__, "python": platform.python_version()}


# Options whose change would make --resume continue a different experiment (refused).
RESUME_FIXED = ("family", "model", "resolution", "batch_size", "seed", "lr")


@dataclass
class Run:
    """Everything one training run holds between steps (built by `setup`)."""

    opts: TrainOptions
    env: _Distributed
    out: Path
    config: Any
    data: Any  # ImageSet (uint8 images on the device)
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    start_step: int = 0
    cpu_before: float = 0.0  # CPU seconds spent by earlier pieces of this run (from the state file)
    wall_before: float = 0.0
    cpu_t0: float = field(default_factory=time.process_time)
    wall_t0: float = field(default_factory=time.perf_counter)
    G_train: nn.Module | None = None  # G/D wrapped for DDP and/or torch.compile
    D_train: nn.Module | None = None
    D_for_g: nn.Module | None = None  # D as the G step calls it (frozen weights; not DDP-wrapped)
    D_r1: nn.Module | None = None  # D for the R1 penalty: never compiled (no double backward), DDP-wrapped when world > 1
    detector: Any = None  # MTCNN, loaded at the first evaluation
    heldout: torch.Tensor | None = None  # held-out real faces (uint8), loaded at the first evaluation (C2ST)
    attributes: Any = None  # the attribute classifier (coverage), loaded at the first evaluation
    training_profile: dict[str, Any] | None = None  # what it sees in the training faces, computed once
    # Training the weights had before this run (set by --init-from, kept in the run state): the model card's
    # totals count it, so a run that continues a shipped model reports everything its weights have seen.
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.env.device

    @property
    def z_dim(self) -> int:
        return _z_dim(self.config)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data) // self.opts.batch_size

    def cpu_seconds(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_t0

    def totals(self, step: int) -> dict[str, Any]:
        """Images seen and CPU seconds including the training of the weights this run started from."""
        if not self.lineage:
            return {}
        totals = {"images_seen_total": int(self.lineage.get("images_seen", 0)) + step * self.opts.batch_size}
        if self.lineage.get("cpu_seconds") is not None:
            totals["cpu_seconds_total"] = round(float(self.lineage["cpu_seconds"]) + self.cpu_seconds(), 1)
        return totals

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.wall_t0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}


def _check_resume(saved: dict[str, Any], opts: TrainOptions, out: Path) -> None:
    now = dataclasses.asdict(opts)
    for key in RESUME_FIXED:
        if saved[key] != json.loads(json.dumps(now[key])):
            raise ValueError(f"--resume: option {key} was {saved[key]!r} in {out}, now {now[key]!r}")


def _lineage(src: Path, meta: dict[str, Any], sha256: str) -> dict[str, Any]:
    card = meta.get("card", {})
    return {"from": str(src), "weights_sha256": sha256,
            "images_seen": int(card.get("images_seen_total", card.get("images_seen", 0))),
            "cpu_seconds": card.get("cpu_seconds_total", card.get("cpu_seconds"))}  # None: not recorded


def init_from_overrides(opts: TrainOptions) -> dict[str, Any]:
    """The architecture of a run started with --init-from: the folder's, or the --model overrides if they build
    the same one. Raises ValueError (another family or architecture) or CheckpointError (no such model)."""
    src = ckpt.resolve_model_path(opts.init_from)
    meta = ckpt.read_config(src)
    if meta.get("family") != opts.family:
        raise ValueError(f"--init-from {src} is a {meta.get('family')!r} model, not {opts.family!r}")
    folder_config = meta.get("config", {})
    overrides = dict(opts.model) or {k: v for k, v in folder_config.items() if k != "resolution"}
    family = get_family(opts.family)
    config = family.make_config({"resolution": opts.resolution, **overrides})
    folder = family.make_config(folder_config)
    if _grows(folder, config):  # a StyleGAN2 at twice the folder's resolution: training/grow.py
        from .grow import check_growable

        check_growable(folder, config)
        return overrides
    # compared as built configs, so a folder written before a field existed matches that field's default
    if dataclasses.asdict(folder) != dataclasses.asdict(config):
        raise ValueError(f"--init-from {src}: its config {folder_config} differs from this run's "
                         f"{dataclasses.asdict(config)}; drop the --model overrides to take the folder's")
    return overrides


def _grows(folder_config: Any, config: Any) -> bool:
    """Whether --init-from grows the folder's model to this run's resolution (StyleGAN2 only)."""
    return (hasattr(folder_config, "resolution") and config.resolution != folder_config.resolution
            and type(config).__name__ == "StyleGAN2Config")


def _init_from(run: Run) -> None:
    """Copy a shipped generator (into G and G_ema) and, when the folder has one, its discriminator."""
    src = ckpt.resolve_model_path(run.opts.init_from)
    meta = ckpt.read_config(src)
    loaded = ckpt.load_model(src, run.device)
    grows = _grows(loaded.generator.cfg, run.config)
    if grows:
        from .grow import grow_discriminator, grow_generator

        grow_generator(loaded.generator, run.G)
    else:
        run.G.load_state_dict(loaded.generator.state_dict())
    run.G_ema.load_state_dict(run.G.state_dict())
    try:
        d = ckpt.load_model(src, run.device, with_discriminator=True).discriminator
        grow_discriminator(d, run.D) if grows else run.D.load_state_dict(d.state_dict())
        what = "generator and discriminator"
    except ckpt.CheckpointError:
        what = "generator (it ships no discriminator: D starts from scratch)"
    if grows:
        what += f", grown from {loaded.generator.cfg.resolution} to {run.config.resolution} px (training/grow.py)"
    run.lineage = _lineage(src, meta, loaded.weights_sha256)
    if run.env.main:
        print(f"initialized the {what} from {src} ({run.lineage['images_seen']:,} images seen before)")


def truncate_log(path: Path, step: int) -> int:
    """Drop the records of `path` (JSONL) past `step`, and a last line cut short by a kill; rewrite it atomically.
    Return how many lines went."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step", 0), int) or rec.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines) or "".join(kept) != "".join(lines):
        dst, tmp = atomic_path(path)
        try:
            tmp.write_text("".join(kept))
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return len(lines) - len(kept)


def recover_run_folder(out: Path, step: int) -> tuple[list[Path], int]:
    """Before a run continues in `out` from `step`: remove the temporary files of interrupted writes (the run folder,
    its model, samples and snapshot folders) and the log records past `step`. Returns (files removed, records
    dropped)."""
    folders = [out, out / MODEL_DIR, out / "samples"]
    folders += sorted(p for p in (out / "snapshots").glob("*") if p.is_dir()) if (out / "snapshots").is_dir() else []
    folders += [out / "snapshots"]
    removed = [p for f in folders for p in ckpt.remove_partial_writes(f)]
    return removed, truncate_log(out / LOG_FILE, step)


def setup(opts: TrainOptions) -> Run:
    """Validate, load data, build (or restore) models and optimizers. Raises ValueError/DataError on bad input.

    `opts.resume` continues the run in `opts.out` when it holds a state, and starts one there when it does not. A
    folder this call made is removed again when setup fails (and nothing was written into it)."""
    opts.validate()
    out = Path(opts.out)
    made = not out.exists()
    try:
        return _setup(opts)
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _setup(opts: TrainOptions) -> Run:
    if opts.threads:
        torch.set_num_threads(opts.threads)
    env = _Distributed(opts.device)
    device = env.device
    out = Path(opts.out)
    family = get_family(opts.family)
    model_overrides = dict(opts.model)
    state_file = out / STATE_FILE
    if opts.resume and not model_overrides and state_file.exists():  # a resumed run keeps its architecture
        model_overrides = dict(ckpt.read_training_info(state_file)["options"].get("model", {}))
        opts.model = model_overrides
    if opts.init_from:  # the folder's architecture (checked against --model overrides)
        model_overrides = init_from_overrides(opts)
        opts.model = model_overrides
    config = family.make_config({"resolution": opts.resolution, **model_overrides})
    if opts.batch_size % env.world:
        raise ValueError(f"batch size {opts.batch_size} is not divisible by the {env.world} ranks")

    state_path = out / STATE_FILE
    resuming = opts.resume and state_path.exists()
    if env.main:
        if state_path.exists() and not opts.resume:
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if opts.resume and not resuming:
            print(f"--resume: no {STATE_FILE} in {out} yet: starting the run")
        out.mkdir(parents=True, exist_ok=True)
    env.barrier()

    aligned_set_card(opts.data)  # mixed framings: a clear error before the data loads
    data = load_image_set(opts.data, opts.resolution, "train", limit=opts.limit, cache_dir=opts.cache_dir, device=device)
    if len(data) < opts.batch_size:
        raise ValueError(f"only {len(data)} training images, fewer than one batch of {opts.batch_size}")
    if env.main and data.skipped:
        print(f"skipped {len(data.skipped)} unreadable files (first: {data.skipped[0]})", file=sys.stderr)

    torch.manual_seed(opts.seed)  # model init only; everything later uses explicit generators
    layout = torch.channels_last if opts.channels_last else torch.contiguous_format
    G = family.generator(config).to(device, memory_format=layout)
    D = family.discriminator(config).to(device, memory_format=layout)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas)
    run = Run(opts, env, out, config, data, G, D, G_ema, opt_g, opt_d)
    if resuming:
        info = ckpt.load_training_state(state_path, run.modules, run.optimizers)
        _check_resume(info["options"], opts, out)
        run.start_step = info["step"]
        run.cpu_before = float(info.get("cpu_seconds", 0.0))
        run.wall_before = float(info.get("wall_seconds", 0.0))
        run.lineage = dict(info.get("lineage", {}))
        began_from = info["options"].get("init_from")
        if began_from and not run.lineage:  # a state written before lineage was kept: read the source's card now
            src = ckpt.resolve_model_path(began_from)
            run.lineage = _lineage(src, ckpt.read_config(src), ckpt.file_sha256(src / ckpt.WEIGHTS_FILE))
            if env.main:
                print(f"the run state does not say what {began_from} had seen; taken from {src} as it is now "
                      f"({run.lineage['images_seen']:,} images): check that the folder was not replaced since",
                      file=sys.stderr)
    elif opts.init_from:
        _init_from(run)
    if env.main:  # before anything is written: what an interrupted piece left past the step it saved
        removed, dropped = recover_run_folder(out, run.start_step)
        if removed or dropped:
            print(f"{'resuming' if resuming else 'starting'} at step {run.start_step}: removed {len(removed)} temporary "
                  f"files of interrupted writes, {dropped} log records past that step")

    G_train, D_train = G, D
    if env.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_train = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D_train = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    run.D_r1 = D_train  # never compiled: R1's double backward (DDP-wrapped when world > 1)
    if opts.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
    run.G_train, run.D_train = G_train, D_train
    # the G step needs D's input gradients only: under DDP it calls D itself, whose frozen weights give DDP
    # nothing to synchronize
    run.D_for_g = D_train if env.world == 1 else (torch.compile(D) if opts.compile else D)
    return run


def train_step(run: Run, step: int) -> dict[str, torch.Tensor]:
    """One D step and one G step on global batch `step` (this rank's slice); EMA update. Returns the losses."""
    opts, device = run.opts, run.device
    n, world, rank = len(run.data), run.env.world, run.env.rank
    epoch, b = divmod(step, run.steps_per_epoch)
    perm = epoch_permutation(n, opts.seed, epoch)
    idx = perm[b * opts.batch_size : (b + 1) * opts.batch_size][rank::world].to(device)
    gen = step_generator(opts.seed, rank, step, device)
    real = to_float(random_flip(run.data.images[idx], gen))  # (B, 3, R, R) in [-1, 1]
    if opts.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    z = torch.randn(opts.batch_size // world, run.z_dim, generator=gen, device=device)
    policy = parse_policy(opts.augment)
    aug = (lambda x: diff_augment(x, policy, gen, opts.augment_p)) if policy else (lambda x: x)
    amp = autocast_for(device, opts.amp)
    takes_gen = getattr(run.G, "accepts_noise_generator", False)  # StyleGAN2: noise inputs, style mixing

    # D step: real vs detached fakes (separate batches, as in the paper)
    with amp:
        fake = run.G_train(z, noise_generator=gen) if takes_gen else run.G_train(z)
        real_in = aug(real)
        d_real, d_fake = run.D_train(real_in), run.D_train(aug(fake.detach()))
        d_loss = d_logistic_loss(d_real.float(), d_fake.float())
    run.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    if opts.r1_gamma > 0 and step % opts.r1_every == 0:
        real_r = real_in.detach().float().requires_grad_(True)  # R1 at what D sees (augmented reals, as DiffAugment)
        # fp32: the penalty's double backward is sensitive to bf16 rounding. torch.compile has no double backward,
        # so a compiled D is bypassed here (one step in r1_every; under DDP, D_r1 is the DDP-wrapped eager D)
        r_logits = run.D_r1(real_r)
        r1 = d_r1_penalty(r_logits.float(), real_r)
        (opts.r1_gamma / 2 * r1 * opts.r1_every).backward()
    run.opt_d.step()

    # G step: non-saturating loss on the same fakes. D's weights are frozen for it: their gradients would be
    # thrown away (the next D step starts from none), and skipping them saves about a tenth of a DCGAN step
    run.D.requires_grad_(False)
    try:
        with amp:
            g_loss = g_nonsaturating_loss(run.D_for_g(aug(fake)).float())
        run.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    finally:
        run.D.requires_grad_(True)
    run.opt_g.step()
    # the EMA warm-up forgets a random init; a run with a lineage (--init-from, in this piece or a state's first)
    # began from trained weights and averages with the full decay from its first step
    ema_update(run.G_ema, run.G, ema_decay_at(step, opts.ema_decay, warmup=not run.lineage))
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake, "epoch": epoch}


def step_record(run: Run, done: int, losses: dict[str, Any], images_per_s: float) -> dict[str, Any]:
    return {"step": done, "images_seen": done * run.opts.batch_size, "epoch": losses["epoch"],
            "d_loss": round(losses["d_loss"].item(), 5), "g_loss": round(losses["g_loss"].item(), 5),
            "d_real": round(torch.sigmoid(losses["d_real"].float()).mean().item(), 4),
            "d_fake": round(torch.sigmoid(losses["d_fake"].float()).mean().item(), 4),
            "images_per_s": round(images_per_s, 1), "cpu_seconds": round(run.cpu_seconds(), 1),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_state(run: Run, step: int) -> None:
    """The whole run (weights, EMA, optimizer moments, options, CPU time) in one file, written atomically."""
    if run.env.main:
        info = {"step": step, "options": dataclasses.asdict(run.opts), "config": dataclasses.asdict(run.config),
                "images_seen": step * run.opts.batch_size, "cpu_seconds": run.cpu_seconds(),
                "wall_seconds": run.wall_seconds(), **({"lineage": run.lineage} if run.lineage else {})}
        ckpt.save_training_state(run.out / STATE_FILE, run.modules, run.optimizers, json.loads(json.dumps(info, default=list)))


def export_generator(G_ema: nn.Module, z_dim: int, device: torch.device, seed: int) -> nn.Module:
    """A copy of the EMA generator ready for sampling: batch norm re-estimated (DCGAN), truncation centre
    estimated from the EMA mapping network (StyleGAN2)."""
    export = copy.deepcopy(G_ema).eval()
    recalibrate_batchnorm(export, z_dim, device)
    if hasattr(export, "estimate_mean_w"):
        export.estimate_mean_w(generator=torch.Generator(device=device).manual_seed(seed))
    return export.eval().requires_grad_(False)


def aligned_set_card(data: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """A run on faces aligned by `data align` records their framing as the model's crop recipe (so photos are aligned
    the same way for it) and each set's summary; {} for plain image folders."""
    from ..faces.aligned_set import read_summary

    sets = {str(d): s for d in data if (s := read_summary(d)) is not None}
    recipes = {s["recipe"] for s in sets.values()}
    if not sets:
        return {}
    if len(recipes) > 1 or len(sets) < len(data):
        raise ValueError(f"the data mixes framings ({sorted(recipes)} and plain folders): train on one aligned set, "
                         "or on plain folders only")
    return {"crop_recipe": recipes.pop(), "aligned_sets": {d: {k: s[k] for k in ("recipe", "resolution", "kept",
            "max_outside", "by_status")} for d, s in sets.items()}}


def model_card(run: Run, step: int) -> dict[str, Any]:
    opts = run.opts
    return {
        "description": f"{opts.family} generator (EMA weights) trained with dgf_core",
        "data": [str(p) for p in opts.data],
        "data_licence": data_licences(opts.data),
        "heldout_rule": "files whose crc32(file name) % 20 == 0 are held out (dgf_core.data.is_heldout)",
        "training_images": len(run.data),
        "images_seen": step * opts.batch_size,
        "steps": step,
        "batch_size": opts.batch_size,
        "cpu_seconds": round(run.cpu_seconds(), 1),
        **run.totals(step),
        "augment": opts.augment or "none",
        **aligned_set_card(opts.data),
        **({"init_from": run.lineage} if run.lineage else {}),
        "date": datetime.now(timezone.utc).date().isoformat(),
        **_environment(),
        "world_size": run.env.world,
        **({"notes": opts.note} if opts.note else {}),
    }


def evaluate_snapshot(run: Run, step: int) -> dict[str, Any]:
    """Face rate of seeds 0..eval_seeds-1 (MTCNN) of the exported EMA generator, their coverage (share of women, mean
    age: `snapshot_coverage`) and the classifier two-sample test of seeds 0..eval_c2st_samples-1 against as many
    held-out real faces (`snapshot_c2st`), logged with images seen and CPU seconds; the generator is kept as a model
    folder `snapshots/kimgNNNNNN` (fp16, with the discriminator, so that a snapshot can be shipped and continued with
    --init-from like a finished run)."""
    from ..faces.mtcnn import detection_rates, face_probabilities, load_mtcnn

    opts = run.opts
    cpu0 = time.process_time()
    export = export_generator(run.G_ema, run.z_dim, run.device, opts.seed)
    images_seen = step * opts.batch_size
    folder = run.out / "snapshots" / f"kimg{images_seen // 1000:06d}"
    ckpt.save_model(folder, opts.family, run.config, export, run.D, model_card(run, step))
    imgs = sample_seeds(export, run.z_dim, max(opts.eval_seeds, opts.eval_c2st_samples), run.device)
    rec: dict[str, Any] = {"kind": "eval", "step": step, "images_seen": images_seen,
                           "cpu_seconds": round(run.cpu_before + cpu0 - run.cpu_t0, 3),
                           **run.totals(step),
                           "wall_seconds": round(run.wall_seconds(), 1), "n_seeds": opts.eval_seeds,
                           "snapshot": str(folder.relative_to(run.out))}
    try:
        if run.detector is None:
            run.detector = load_mtcnn("cpu")
        rec["face_rate"] = detection_rates(face_probabilities(imgs[: opts.eval_seeds], run.detector))
    except ckpt.CheckpointError as e:  # weights/mtcnn missing from this copy: train on, say so in the log
        rec["face_rate_error"] = f"face detection unavailable: {e}"
    if opts.eval_c2st_samples:
        rec.update(snapshot_c2st(run, imgs[: opts.eval_c2st_samples]))
    rec.update(snapshot_coverage(run, imgs[: opts.eval_seeds]))
    rec["eval_cpu_seconds"] = round(time.process_time() - cpu0, 3)
    rec["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return rec


def sample_seeds(generator: Callable[[torch.Tensor], torch.Tensor], z_dim: int, n: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 3, R, R) uint8 samples of seeds 0..n-1 (on the CPU), in batches of 64."""
    with torch.no_grad():
        z = seeds_to_z(range(n), z_dim).to(device)
        return torch.cat([to_uint8(generator(z[i : i + 64])) for i in range(0, n, 64)]).cpu()


def heldout_faces(run: Run) -> torch.Tensor:
    """The run's held-out real faces (uint8), decoded at the first call; none when its folders hold no held-out file."""
    opts = run.opts
    if run.heldout is None:
        try:
            run.heldout = load_image_set(opts.data, opts.resolution, "heldout", cache_dir=opts.cache_dir).images
        except DataError:  # a folder too small to hold any held-out file
            run.heldout = torch.zeros(0, 3, opts.resolution, opts.resolution, dtype=torch.uint8)
    return run.heldout


def snapshot_c2st(run: Run, imgs: torch.Tensor) -> dict[str, Any]:
    """{"c2st": accuracy, stderr, n_per_class, p_value} of the samples against as many of the run's held-out real
    faces (loaded once), as `evaluate` tests them, or {"c2st_skipped": why} when either set is too small."""
    heldout = heldout_faces(run)
    if min(len(heldout), len(imgs)) < C2ST_MIN_PER_CLASS:
        return {"c2st_skipped": f"needs {C2ST_MIN_PER_CLASS} samples and held-out faces, "
                                f"has {len(imgs)} and {len(heldout)}"}
    res = c2st(imgs, heldout[: len(imgs)], seed=run.opts.seed)
    return {"c2st": {k: res[k] for k in ("accuracy", "stderr", "n_per_class", "p_value")}}


def snapshot_coverage(run: Run, imgs: torch.Tensor) -> dict[str, Any]:
    """{"coverage": share of women and mean age of the snapshot's samples, by the shipped attribute classifier, beside
    the same figures for up to EVAL_COVERAGE_TRAIN training faces}, or {"coverage_error": why} when the
    classifier is not in the weights folder. Both are read in the run's crop geometry: an aligned set's framing
    (`aligned_set_card`), else the CelebA centre crop."""
    from ..faces.alignment import DEFAULT_RECIPE
    from ..faces.edits import ATTRIBUTE_CLASSIFIER, attribute_profile, load_classifier

    try:
        if run.attributes is None:
            run.attributes = load_classifier(ckpt.resolve_model_path(ATTRIBUTE_CLASSIFIER), "cpu")
    except ckpt.CheckpointError as e:
        return {"coverage_error": f"attribute classifier unavailable: {e}"}
    recipe = aligned_set_card(run.opts.data).get("crop_recipe", DEFAULT_RECIPE)
    if run.training_profile is None:
        pick = torch.randperm(len(run.data), generator=torch.Generator().manual_seed(0))[:EVAL_COVERAGE_TRAIN]
        run.training_profile = attribute_profile(run.data.images[pick.sort().values.to(run.data.images.device)].cpu(),
                                                 run.attributes, recipe)
    s, t = attribute_profile(imgs, run.attributes, recipe), run.training_profile
    return {"coverage": {"female_share": s["female_share"], "age_mean": s["age_mean"], "n": s["n"],
                         "training_female_share": t["female_share"], "training_age_mean": t["age_mean"],
                         "training_n": t["n"], "female_share_gap": round(s["female_share"] - t["female_share"], 4)}}


def export_model(run: Run, step: int) -> Path:
    """OUT/model: the EMA generator (fp16) and the discriminator, with its model card."""
    export = export_generator(run.G_ema, run.z_dim, run.device, run.opts.seed)
    return ckpt.save_model(run.out / MODEL_DIR, run.opts.family, run.config, export, run.D.eval(), model_card(run, step))


def write_samples(run: Run, step: int, sample_z: torch.Tensor) -> None:
    with torch.no_grad():
        imgs = to_uint8(run.G_ema(sample_z))
    save_png(make_grid(imgs), run.out / "samples" / f"step{step:07d}.png")


class Reporter:
    """Where a run reports (main rank only): the JSONL log (`OUT/log.jsonl`), the progress bar and `on_step`."""

    def __init__(self, run: Run, on_step: Callable[[dict], None] | None = None):
        self.on_step = on_step
        self.log = (run.out / LOG_FILE).open("a") if run.env.main else None
        self.progress = None
        if run.env.main and run.opts.progress:
            from tqdm import tqdm

            self.progress = tqdm(total=run.opts.steps, initial=run.start_step, unit="step", dynamic_ncols=True,
                                 file=sys.stderr)

    def line(self, rec: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()

    def step(self, rec: dict[str, Any]) -> None:
        self.line(rec)
        if self.progress is not None:
            self.progress.set_postfix(img_s=f"{rec['images_per_s']:.0f}", d=f"{rec['d_loss']:.3f}", g=f"{rec['g_loss']:.3f}")
        if self.on_step:
            self.on_step(rec)

    def evaluation(self, rec: dict[str, Any]) -> None:
        self.line(rec)
        if self.progress is not None:
            self.progress.write(f"step {rec['step']}: face rate {rec.get('face_rate', rec.get('face_rate_error'))}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.log is not None:
            self.log.close()


def announce(run: Run, reporter: Reporter) -> None:
    """Print what trains where, and log the run's start record (options, config, machine) for its curves."""
    opts = run.opts
    if not run.env.main:
        return
    print(f"training {opts.family} on {len(run.data)} images ({run.steps_per_epoch} steps/epoch), device {run.device}, "
          f"world {run.env.world}, bf16 {not isinstance(autocast_for(run.device, opts.amp), nullcontext)}")
    print(json.dumps({"options": dataclasses.asdict(opts), "config": dataclasses.asdict(run.config)}, default=str))
    reporter.line({"kind": "start", "family": opts.family, "step": run.start_step,
                   "images_seen": run.start_step * opts.batch_size, "cpu_seconds": round(run.cpu_before, 1),
                   "options": json.loads(json.dumps(dataclasses.asdict(opts), default=list)),
                   "config": dataclasses.asdict(run.config), **_environment(),
                   "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set the event instead of interrupting: the loop finishes its step, saves the state and
    stops (a half-done step would not resume exactly). Handlers are restored on exit; off the main thread, a no-op."""
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)


def agree(run: Run, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank, as one collective (a checkpoint or a stop decided by one rank alone would leave
    the others waiting forever); the flags themselves on a single process."""
    if run.env.world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=run.device)
    dist.all_reduce(t)
    return tuple(bool(v) for v in t.tolist())


def finish(run: Run, sample_z: torch.Tensor) -> Path:
    """The last state, the exported model folder (main rank), and the process group closed; return OUT/model."""
    opts = run.opts
    write_state(run, opts.steps)
    model_dir = run.out / MODEL_DIR
    if run.env.main and opts.export:
        export_model(run, opts.steps)
        write_samples(run, opts.steps, sample_z)
    env = run.env
    env.barrier()
    # DDP's reducers hold the process group: free them before it is destroyed, or their destructors may run
    # against a dead group at exit (gloo aborts the process: "terminate called without an active exception")
    run.G_train = run.D_train = run.D_for_g = None
    del run
    gc.collect()
    env.close()
    return model_dir


def train(opts: TrainOptions, on_step: Callable[[dict], None] | None = None) -> Path:
    """Train; return the exported model folder (`OUT/model`). Raises ValueError/DataError on bad input.

    setup -> announce -> per step: train_step, log (step_record), samples, evaluate_snapshot, write_state when due
    or stopped -> finish (export). A stopped run raises KeyboardInterrupt after saving; `--resume` continues it
    exactly."""
    run = setup(opts)
    main, per_eval = run.env.main, opts.eval_every
    sample_z = seeds_to_z(range(opts.sample_seeds), run.z_dim).to(run.device)
    reporter = Reporter(run, on_step)
    announce(run, reporter)
    t_last, step_last, last_save = time.perf_counter(), run.start_step, time.monotonic()
    try:
        with stop_signals() as stop:
            for step in range(run.start_step, opts.steps):
                losses = train_step(run, step)
                done = step + 1
                if reporter.progress is not None:
                    reporter.progress.update(1)
                if main and (done % opts.log_every == 0 or done == opts.steps):
                    now = time.perf_counter()
                    reporter.step(step_record(run, done, losses, (done - step_last) * opts.batch_size / max(now - t_last, 1e-9)))
                    t_last, step_last = now, done
                if main and done % opts.sample_every == 0:
                    write_samples(run, done, sample_z)
                if main and per_eval and done * opts.batch_size // per_eval > step * opts.batch_size // per_eval:
                    reporter.evaluation(evaluate_snapshot(run, done))
                    t_last = time.perf_counter()  # images/s counts training only
                due, stop_now = agree(run, done % opts.checkpoint_every == 0
                                      or time.monotonic() - last_save >= opts.checkpoint_minutes * 60, stop.is_set())
                if done == opts.steps:
                    break
                if stop_now:
                    write_state(run, done)
                    if main:
                        print(f"\nstopped after step {done}: state saved to {run.out / STATE_FILE}; "
                              "continue with --resume", file=sys.stderr)
                    raise KeyboardInterrupt
                if due:
                    write_state(run, done)
                    last_save = time.monotonic()
    finally:
        reporter.close()
    return finish(run, sample_z)
