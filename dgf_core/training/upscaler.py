"""Training the upscaler: an L1 phase, then a short adversarial + feature-matching fine-tune.

`train_upscaler(opts)` is the whole loop as a function of its options, in named pieces: `load_faces`, `setup`
(fresh or resumed `SRTrainState`), `run_phase` (over `train_step`), `finish_phase` (evaluate, export):
- data: HR faces decoded once into memory (`sr_data.load_hr_faces`), batches of random patches degraded on the
  fly (`sr_data.sr_batch`), all from one seeded `torch.Generator`;
- phase "l1": loss = L1(x4, HR) + x2_weight * L1(x2, HR/2), Adam, cosine learning-rate decay over the phase;
- phase "gan": the same pixel loss + adv_weight * non-saturating loss + fm_weight * feature matching
  (L1 between the discriminator's activations on real and upscaled patches); D with the logistic loss;
- an EMA of G's weights is kept and is what gets evaluated and saved;
- a phase ends at its step count or its time budget (minutes), whichever comes first; the learning-rate
  schedule follows the larger of the two fractions, so a time-limited phase still decays to its end;
- every `eval_every` steps: PSNR (Y) of the EMA model vs bicubic on held-out faces, one JSON line in the log;
- out/: `state.safetensors` (resume), `log.jsonl`, `l1/` and `gan/` (model folders written at the end of
  each phase, EMA weights, with a model card).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..checkpoint import load_training_state, save_model, save_training_state
from ..data import list_images
from ..images import psnr
from ..models import get_family
from ..models.upscaler import Discriminator, Generator, UpscalerConfig
from .losses import d_logistic_loss, ema_decay_at, ema_update, g_nonsaturating_loss
from .sr_data import Degradation, bicubic_down, load_hr_faces, quantize, sr_batch

LICENCE = "CelebA and UTKFace: non-commercial research only"


@dataclass
class UpscalerTrainOptions:
    data: list[str]
    out: str
    model: dict[str, Any] = field(default_factory=dict)  # UpscalerConfig overrides
    patch: int = 128  # HR patch side (LR = patch / 4)
    batch_size: int = 16
    l1_steps: int = 20_000
    gan_steps: int = 2_000
    l1_minutes: float | None = None  # time budget of the L1 phase (None: steps only)
    gan_minutes: float | None = None
    lr: float = 4e-4
    gan_lr: float = 5e-5
    d_lr: float = 1e-4
    x2_weight: float = 0.5
    adv_weight: float = 5e-3
    fm_weight: float = 1e-2
    ema_decay: float = 0.999
    max_blur: float = 1.2
    max_noise: float = 0.02
    every: int = 1  # use every n-th training file (a smaller set decodes faster)
    limit: int | None = None
    eval_faces: int = 64
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    threads: int | None = None
    resume: bool = False

    def validate(self) -> None:
        if self.patch < 16 or self.patch % 4:
            raise ValueError(f"--patch must be a multiple of 4 and >= 16, got {self.patch}")
        for name in ("batch_size", "eval_faces", "eval_every", "checkpoint_every", "every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.l1_steps < 0 or self.gan_steps < 0 or self.l1_steps + self.gan_steps == 0:
            raise ValueError("--l1-steps and --gan-steps must be >= 0, and not both 0")
        for name in ("lr", "gan_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        Degradation(self.max_blur, self.max_noise)  # raises on bad values

    def config(self) -> UpscalerConfig:
        return get_family("upscaler").make_config(dict(self.model))


# ---- losses (small pure functions) -------------------------------------------------------------------------

def pixel_loss(out2: torch.Tensor, out4: torch.Tensor, hr2: torch.Tensor, hr: torch.Tensor, x2_weight: float) -> torch.Tensor:
    return F.l1_loss(out4, hr) + x2_weight * F.l1_loss(out2, hr2)


def feature_matching_loss(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over D's stages of L1 between activations on upscaled and on real patches (real detached)."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


def cosine_lr(base: float, frac: float) -> float:
    """Cosine decay from base to 5% of base as frac goes 0 -> 1."""
    frac = min(max(frac, 0.0), 1.0)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))


# ---- evaluation during training ----------------------------------------------------------------------------

@torch.no_grad()
def quick_eval(g: Generator, hr_u8: torch.Tensor) -> dict[str, float]:
    """PSNR (Y, border 4) of x4 and of torch bicubic on clean antialiased downscales of `hr_u8`."""
    from ..data import to_float, to_uint8
    from ..models.upscaler import bicubic

    hr = to_float(hr_u8)
    lr = quantize(bicubic_down(hr, 4))
    out = to_uint8(g(lr, 4))
    base = to_uint8(bicubic(lr, 4))
    p, b = float(psnr(out, hr_u8, border=4).mean()), float(psnr(base, hr_u8, border=4).mean())
    return {"psnr_y": p, "bicubic_psnr_y": b, "gain_db": p - b}


# ---- the loop ------------------------------------------------------------------------------------------------

def _card(opts: UpscalerTrainOptions, phase: str, seen: int, n_train: int, extra: dict[str, Any]) -> dict[str, Any]:
    import platform

    return {
        "description": "Face super-resolution GAN (progressive x2 -> x4, residual dense blocks, pixel shuffle), "
                       f"phase {phase!r}; EMA weights.",
        "task": "upscale 64x64 generated faces to 128x128 (x2) or 256x256 (x4)",
        "data": f"real faces: {', '.join(opts.data)}; {n_train} training images, centre-cropped squares at 176x176 "
                "(held-out split: crc32(file name) % 20 == 0, never trained on)",
        "licence": LICENCE,
        "degradation": {"max_blur": opts.max_blur, "max_noise": opts.max_noise},
        "training": {"phase": phase, "images_seen": seen, "patch": opts.patch, "batch_size": opts.batch_size,
                     "seed": opts.seed, "threads": torch.get_num_threads()},
        "hardware": f"{platform.processor() or platform.machine()} CPU, torch {torch.__version__}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


@dataclass
class SRTrainState:
    """Everything a run carries from step to step, and what `state.safetensors` holds for `--resume`."""
    g: Generator
    d: Discriminator
    g_ema: Generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    gen: torch.Generator  # every batch's randomness
    step: int = 0
    phase_time: dict[str, float] = field(default_factory=lambda: {"l1": 0.0, "gan": 0.0})  # seconds spent per phase
    phase_start: dict[str, int | None] = field(default_factory=lambda: {"l1": 0, "gan": None})  # step each began at
    done: list[str] = field(default_factory=list)  # phases finished

    def nets(self) -> dict[str, torch.nn.Module]:
        return {"g": self.g, "d": self.d, "g_ema": self.g_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def save(self, path: Path, opts: UpscalerTrainOptions) -> None:
        save_training_state(path, self.nets(), self.optimizers(),
                            {"step": self.step, "phase_time": self.phase_time, "phase_start": self.phase_start,
                             "done": self.done, "rng": self.gen.get_state().tolist(), "options": dataclasses.asdict(opts)})

    def restore(self, path: Path) -> None:
        info = load_training_state(path, self.nets(), self.optimizers())
        self.step, self.phase_time, self.phase_start, self.done = (info["step"], info["phase_time"],
                                                                   info["phase_start"], info["done"])
        self.gen.set_state(torch.tensor(info["rng"], dtype=torch.uint8))


def load_faces(opts: UpscalerTrainOptions, log=print) -> tuple[torch.Tensor, torch.Tensor]:
    """(training faces (N, 3, 176, 176) uint8, held-out faces (M, 3, 128, 128) uint8: their central crops)."""
    t0 = time.time()
    faces, _ = load_hr_faces(opts.data, "train", every=opts.every, limit=opts.limit)
    n_held = len(list_images(opts.data, "heldout"))
    held, _ = load_hr_faces(opts.data, "heldout", every=max(1, n_held // opts.eval_faces), limit=opts.eval_faces)
    held = held[:, :, 24:152, 24:152].contiguous()  # central 128x128 of the 176x176 faces
    log(f"upscaler: {len(faces)} training faces, {len(held)} held-out faces, decoded in {time.time() - t0:.0f}s")
    return faces, held


def setup(opts: UpscalerTrainOptions, cfg: UpscalerConfig, state_path: Path, log=print) -> SRTrainState:
    """Fresh nets and optimizers (initial weights from `opts.seed`), or the saved state when resuming."""
    torch.manual_seed(opts.seed)  # initial weights only; batches come from `gen`
    g, d = Generator(cfg), Discriminator(cfg)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    st = SRTrainState(g, d, g_ema, opt_g=torch.optim.Adam(g.parameters(), lr=opts.lr, betas=(0.9, 0.99)),
                      opt_d=torch.optim.Adam(d.parameters(), lr=opts.d_lr, betas=(0.5, 0.99)),
                      gen=torch.Generator().manual_seed(opts.seed))
    if opts.resume and state_path.exists():
        st.restore(state_path)
        log(f"resumed at step {st.step}")
    return st


def train_step(st: SRTrainState, faces: torch.Tensor, opts: UpscalerTrainOptions, deg: Degradation, phase: str,
               start: int) -> dict[str, float]:
    """One batch: in the GAN phase a D step first, then G's (pixel loss, + adversarial and feature matching in
    the GAN phase), then the EMA. Returns the losses by name."""
    g, d = st.g, st.d
    lr_u, hr2, hr = sr_batch(faces, opts.batch_size, opts.patch, st.gen, deg)
    rec: dict[str, Any] = {}
    if phase == "gan":
        with torch.no_grad():
            fake = g(lr_u, 4)
        real_logits, _ = d(hr)
        fake_logits, _ = d(fake)
        loss_d = d_logistic_loss(real_logits, fake_logits)
        st.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        st.opt_d.step()
        rec["d"] = loss_d.item()
    out2, out4 = g.forward_both(lr_u)
    loss = pixel_loss(out2, out4, hr2, hr, opts.x2_weight)
    rec["l1"] = loss.item()
    if phase == "gan":
        d.requires_grad_(False)
        fake_logits, fake_feats = d(out4)
        with torch.no_grad():
            _, real_feats = d(hr)
        adv, fm = g_nonsaturating_loss(fake_logits), feature_matching_loss(fake_feats, real_feats)
        loss = loss + opts.adv_weight * adv + opts.fm_weight * fm
        d.requires_grad_(True)
        rec.update(adv=adv.item(), fm=fm.item())
    st.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    st.opt_g.step()
    ema_update(st.g_ema, g, ema_decay_at(st.step - start, opts.ema_decay))
    st.step += 1
    return rec


def run_phase(st: SRTrainState, phase: str, n_steps: int, minutes: float | None, faces: torch.Tensor,
              held: torch.Tensor, opts: UpscalerTrainOptions, deg: Degradation, state_path: Path, logf, log=print) -> None:
    """Train one phase up to its step count or time budget; logs every 50 steps and at each evaluation, writes the
    state every `checkpoint_every` steps. The learning rate follows the larger of the step and time fractions."""
    if st.phase_start[phase] is None:
        st.phase_start[phase] = st.step
    start = st.phase_start[phase]
    if phase == "gan":
        for grp in st.opt_g.param_groups:
            grp["lr"] = opts.gan_lr
    budget = minutes * 60 if minutes else math.inf
    tick = time.time() - st.phase_time[phase]
    while st.step < start + n_steps:
        elapsed = time.time() - tick
        if elapsed >= budget:
            log(f"{phase}: time budget of {minutes} min reached at step {st.step}")
            break
        frac = max((st.step - start) / n_steps, elapsed / budget)
        lr_g = cosine_lr(opts.lr if phase == "l1" else opts.gan_lr, frac)
        for grp in st.opt_g.param_groups:
            grp["lr"] = lr_g
        rec = train_step(st, faces, opts, deg, phase, start)
        st.phase_time[phase] = time.time() - tick
        if st.step % opts.eval_every == 0 or st.step == start + n_steps:
            rec.update(quick_eval(st.g_ema, held))
        if st.step % 50 == 0 or "psnr_y" in rec:
            line = {"step": st.step, "phase": phase, "lr": lr_g, "images": st.step * opts.batch_size,
                    "sec": round(st.phase_time[phase], 1), **{k: round(v, 4) for k, v in rec.items()}}
            logf.write(json.dumps(line) + "\n")
            logf.flush()
            log(json.dumps(line))
        if st.step % opts.checkpoint_every == 0:
            st.save(state_path, opts)


def finish_phase(st: SRTrainState, phase: str, out: Path, cfg: UpscalerConfig, faces: torch.Tensor, held: torch.Tensor,
                 opts: UpscalerTrainOptions, state_path: Path, log=print) -> Path:
    """Mark the phase done, write the state, evaluate the EMA model and export it as `out/PHASE/`."""
    if phase not in st.done:
        st.done.append(phase)
    if phase == "l1":  # the GAN phase starts from the EMA weights
        st.g.load_state_dict(st.g_ema.state_dict())
    st.save(state_path, opts)
    seen = st.step * opts.batch_size
    final = quick_eval(st.g_ema, held)
    log(f"{phase} done at step {st.step}: {json.dumps(final)}")
    return save_model(out / phase, "upscaler", cfg, st.g_ema, st.d,
                      _card(opts, phase, seen, len(faces), {"quick_eval_heldout_128": final}))


def train_upscaler(opts: UpscalerTrainOptions, log=print) -> Path:
    """Run (or resume) both phases; returns the folder of the last phase's model."""
    opts.validate()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = opts.config()
    deg = Degradation(opts.max_blur, opts.max_noise)
    faces, held = load_faces(opts, log)
    state_path = out / "state.safetensors"
    st = setup(opts, cfg, state_path, log)
    result = out
    with (out / "log.jsonl").open("a") as logf:
        for phase, n_steps, minutes in (("l1", opts.l1_steps, opts.l1_minutes), ("gan", opts.gan_steps, opts.gan_minutes)):
            extend = bool(st.done) and st.done[-1] == phase and st.step < (st.phase_start[phase] or 0) + n_steps
            if n_steps == 0 or (phase in st.done and not extend):  # finished, unless more steps are asked
                continue
            run_phase(st, phase, n_steps, minutes, faces, held, opts, deg, state_path, logf, log)
            result = finish_phase(st, phase, out, cfg, faces, held, opts, state_path, log)
    return result
