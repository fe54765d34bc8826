"""The training loop, as one function with explicit arguments.

`train(TrainOptions(...))` trains a registered GAN family on folders of face images:
- data decoded once into a uint8 tensor on the training device, random horizontal flips per batch;
- EMA of the generator, bf16 autocast on CUDA, optional torch.compile;
- a progress bar with images/s, a JSONL log and sample grids at intervals;
- training state written atomically every `checkpoint_every` steps and on Ctrl-C; `resume=True`
  continues exactly: the batch order is a function of (seed, epoch), and all per-step randomness
  (noise, flips) comes from a generator seeded with (seed, rank, step), so no RNG state must be saved;
- data-parallel training under `torchrun` (DDP; NCCL on GPUs, gloo on CPUs): each rank takes its slice
  of every global batch.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from . import checkpoint as ckpt
from .data import data_licences, epoch_permutation, load_image_set, random_flip, to_float, to_uint8
from .images import make_grid, save_png
from .latent import seeds_to_z
from .losses import d_logistic_loss, d_r1_penalty, ema_decay_at, ema_update, g_nonsaturating_loss
from .models import get_family

STATE_FILE = "state.safetensors"
LOG_FILE = "log.jsonl"
MODEL_DIR = "model"


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
    amp: bool = True  # bf16 autocast, CUDA only
    compile: bool = False  # torch.compile G and D (CUDA)
    limit: int | None = None  # use only the first N training images
    cache_dir: str | None = None
    resume: bool = False
    progress: bool = True
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    export: bool = True  # write OUT/model (EMA generator with recalibrated batch norm) at the end
    note: str = ""  # free text for the model card (e.g. how it was trained and what that means for quality)

    def validate(self) -> None:
        if not self.data:
            raise ValueError("give at least one --data folder")
        get_family(self.family)
        for name in ("batch_size", "steps", "log_every", "sample_every", "checkpoint_every", "r1_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def train(opts: TrainOptions, on_step: Callable[[dict], None] | None = None) -> Path:
    """Train; return the exported model folder (`OUT/model`). Raises ValueError/DataError on bad input."""
    opts.validate()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    env = _Distributed(opts.device)
    device = env.device
    out = Path(opts.out)
    family = get_family(opts.family)
    config = family.make_config({"resolution": opts.resolution, **opts.model})
    if opts.batch_size % env.world:
        raise ValueError(f"batch size {opts.batch_size} is not divisible by the {env.world} ranks")
    local_batch = opts.batch_size // env.world

    state_path = out / STATE_FILE
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        if state_path.exists() and not opts.resume:
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if opts.resume and not state_path.exists():
            raise FileNotFoundError(f"--resume: no {STATE_FILE} in {out}")
    env.barrier()

    data = load_image_set(opts.data, opts.resolution, "train", limit=opts.limit, cache_dir=opts.cache_dir, device=device)
    n = len(data)
    if n < opts.batch_size:
        raise ValueError(f"only {n} training images, fewer than one batch of {opts.batch_size}")
    steps_per_epoch = n // opts.batch_size
    if env.main and data.skipped:
        print(f"skipped {len(data.skipped)} unreadable files (first: {data.skipped[0]})", file=sys.stderr)

    torch.manual_seed(opts.seed)  # model init only; everything later uses explicit generators
    G = family.generator(config).to(device)
    D = family.discriminator(config).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas)
    modules = {"G": G, "D": D, "G_ema": G_ema}
    start_step = 0
    if opts.resume:
        info = ckpt.load_training_state(state_path, modules, {"g": opt_g, "d": opt_d})
        saved = info["options"]
        for key in ("family", "model", "resolution", "batch_size", "seed", "lr"):
            if saved[key] != json.loads(json.dumps(dataclasses.asdict(opts)[key])):
                raise ValueError(f"--resume: option {key} was {saved[key]!r} in {out}, now {dataclasses.asdict(opts)[key]!r}")
        start_step = info["step"]

    G_train, D_train = G, D
    if env.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_train = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D_train = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    if opts.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (opts.amp and device.type == "cuda") else nullcontext()
    z_dim = _z_dim(config)
    sample_z = seeds_to_z(range(opts.sample_seeds), z_dim).to(device)
    # generators with stochastic layers (StyleGAN2: noise inputs, style mixing) draw from the step's generator
    takes_gen = getattr(G, "accepts_noise_generator", False)

    if env.main:
        print(f"training {opts.family} on {n} images ({steps_per_epoch} steps/epoch), device {device}, world {env.world}")
        print(json.dumps({"options": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, default=str))

    def write_state(step: int) -> None:
        if env.main:
            info = {"step": step, "options": dataclasses.asdict(opts), "config": dataclasses.asdict(config),
                    "images_seen": step * opts.batch_size}
            ckpt.save_training_state(state_path, modules, {"g": opt_g, "d": opt_d}, json.loads(json.dumps(info, default=list)))

    def write_samples(step: int) -> None:
        with torch.no_grad():
            imgs = to_uint8(G_ema(sample_z))
        save_png(make_grid(imgs), out / "samples" / f"step{step:07d}.png")

    progress = None
    if env.main and opts.progress:
        from tqdm import tqdm

        progress = tqdm(total=opts.steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
    log = (out / LOG_FILE).open("a") if env.main else None
    t_last, step_last = time.perf_counter(), start_step
    step = start_step
    # Ctrl-C / SIGTERM finish the current step, save the state and stop (a half-done step would not resume exactly)
    stop_requested = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop_requested.set())
    try:
        for step in range(start_step, opts.steps):
            epoch, b = divmod(step, steps_per_epoch)
            perm = epoch_permutation(n, opts.seed, epoch)
            idx = perm[b * opts.batch_size : (b + 1) * opts.batch_size][env.rank :: env.world].to(device)
            gen = step_generator(opts.seed, env.rank, step, device)
            real = to_float(random_flip(data.images[idx], gen))  # (B, 3, R, R) in [-1, 1]
            z = torch.randn(local_batch, z_dim, generator=gen, device=device)

            # D step: real vs detached fakes (separate batches, as in the paper)
            with amp:
                fake = G_train(z, noise_generator=gen) if takes_gen else G_train(z)
                d_real, d_fake = D_train(real), D_train(fake.detach())
                d_loss = d_logistic_loss(d_real.float(), d_fake.float())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            if opts.r1_gamma > 0 and step % opts.r1_every == 0:
                real_r = real.detach().requires_grad_(True)
                with amp:
                    r_logits = D_train(real_r)
                r1 = d_r1_penalty(r_logits.float(), real_r)
                (opts.r1_gamma / 2 * r1 * opts.r1_every).backward()
            opt_d.step()

            # G step: non-saturating loss on the same fakes
            with amp:
                g_loss = g_nonsaturating_loss(D_train(fake).float())
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            ema_update(G_ema, G, ema_decay_at(step, opts.ema_decay))

            done = step + 1
            if progress is not None:
                progress.update(1)
            if env.main and (done % opts.log_every == 0 or done == opts.steps):
                now = time.perf_counter()
                ips = (done - step_last) * opts.batch_size / max(now - t_last, 1e-9)
                t_last, step_last = now, done
                rec = {"step": done, "images_seen": done * opts.batch_size, "epoch": epoch,
                       "d_loss": round(d_loss.item(), 5), "g_loss": round(g_loss.item(), 5),
                       "d_real": round(torch.sigmoid(d_real.float()).mean().item(), 4),
                       "d_fake": round(torch.sigmoid(d_fake.float()).mean().item(), 4),
                       "images_per_s": round(ips, 1), "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if progress is not None:
                    progress.set_postfix(img_s=f"{ips:.0f}", d=f"{rec['d_loss']:.3f}", g=f"{rec['g_loss']:.3f}")
                if on_step:
                    on_step(rec)
            if env.main and done % opts.sample_every == 0:
                write_samples(done)
            if done % opts.checkpoint_every == 0 and done != opts.steps:
                write_state(done)
            stop_now = stop_requested.is_set()
            if env.world > 1:  # every rank stops after the same step, or the others would wait forever
                flag = torch.tensor([float(stop_now)], device=device)
                dist.all_reduce(flag)
                stop_now = bool(flag.item())
            if stop_now and done != opts.steps:
                write_state(done)
                if env.main:
                    print(f"\nstopped after step {done}: state saved to {state_path}; continue with --resume", file=sys.stderr)
                raise KeyboardInterrupt
        step = opts.steps
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        if progress is not None:
            progress.close()
        if log is not None:
            log.close()

    write_state(opts.steps)
    model_dir = out / MODEL_DIR
    if env.main and opts.export:
        export = copy.deepcopy(G_ema)
        recalibrate_batchnorm(export, z_dim, device)
        if hasattr(export, "estimate_mean_w"):  # StyleGAN2: the truncation centre, from the EMA mapping network
            export.estimate_mean_w(generator=torch.Generator(device=device).manual_seed(opts.seed))
        card = {
            "description": f"{opts.family} generator (EMA weights) trained with dgf_core",
            "data": [str(p) for p in opts.data],
            "data_licence": data_licences(opts.data),
            "heldout_rule": "files whose crc32(file name) % 20 == 0 are held out (dgf_core.data.is_heldout)",
            "training_images": n,
            "images_seen": opts.steps * opts.batch_size,
            "steps": opts.steps,
            "batch_size": opts.batch_size,
            "date": datetime.now(timezone.utc).date().isoformat(),
            **_environment(),
            "world_size": env.world,
            **({"notes": opts.note} if opts.note else {}),
        }
        ckpt.save_model(model_dir, opts.family, config, export.eval(), D.eval(), card)
        write_samples(opts.steps)
    env.barrier()
    env.close()
    return model_dir
