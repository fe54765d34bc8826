"""Training the upscaler: an L1 phase, then a short adversarial + feature-matching fine-tune.

`train_upscaler(opts)` is the whole loop as a function of its options:
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


def train_upscaler(opts: UpscalerTrainOptions, log=print) -> Path:
    """Run (or resume) both phases; returns the folder of the last phase's model."""
    opts.validate()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = opts.config()
    deg = Degradation(opts.max_blur, opts.max_noise)

    t0 = time.time()
    faces, paths = load_hr_faces(opts.data, "train", every=opts.every, limit=opts.limit)
    n_held = len(list_images(opts.data, "heldout"))
    held, _ = load_hr_faces(opts.data, "heldout", every=max(1, n_held // opts.eval_faces), limit=opts.eval_faces)
    held = held[:, :, 24:152, 24:152].contiguous()  # central 128x128 of the 176x176 faces
    log(f"upscaler: {len(faces)} training faces, {len(held)} held-out faces, decoded in {time.time() - t0:.0f}s")

    torch.manual_seed(opts.seed)  # initial weights only; batches come from `gen`
    g, d = Generator(cfg), Discriminator(cfg)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=opts.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=opts.d_lr, betas=(0.5, 0.99))
    gen = torch.Generator().manual_seed(opts.seed)
    step, phase_time, phase_start, done = 0, {"l1": 0.0, "gan": 0.0}, {"l1": 0, "gan": None}, []
    state_path = out / "state.safetensors"
    if opts.resume and state_path.exists():
        info = load_training_state(state_path, {"g": g, "d": d, "g_ema": g_ema}, {"g": opt_g, "d": opt_d})
        step, phase_time, phase_start, done = info["step"], info["phase_time"], info["phase_start"], info["done"]
        gen.set_state(torch.tensor(info["rng"], dtype=torch.uint8))
        log(f"resumed at step {step}")

    def save_state() -> None:
        save_training_state(state_path, {"g": g, "d": d, "g_ema": g_ema}, {"g": opt_g, "d": opt_d},
                            {"step": step, "phase_time": phase_time, "phase_start": phase_start, "done": done, "rng": gen.get_state().tolist(),
                             "options": dataclasses.asdict(opts)})

    logf = (out / "log.jsonl").open("a")
    result = out
    for phase, n_steps, minutes in (("l1", opts.l1_steps, opts.l1_minutes), ("gan", opts.gan_steps, opts.gan_minutes)):
        extend = bool(done) and done[-1] == phase and step < (phase_start[phase] or 0) + n_steps  # more steps asked
        if n_steps == 0 or (phase in done and not extend):
            continue
        if phase_start[phase] is None:
            phase_start[phase] = step
        start = phase_start[phase]
        if phase == "gan":
            for grp in opt_g.param_groups:
                grp["lr"] = opts.gan_lr
        budget = minutes * 60 if minutes else math.inf
        tick = time.time() - phase_time[phase]
        while step < start + n_steps:
            elapsed = time.time() - tick
            if elapsed >= budget:
                log(f"{phase}: time budget of {minutes} min reached at step {step}")
                break
            frac = max((step - start) / n_steps, elapsed / budget)
            lr_g = cosine_lr(opts.lr if phase == "l1" else opts.gan_lr, frac)
            for grp in opt_g.param_groups:
                grp["lr"] = lr_g
            lr_u, hr2, hr = sr_batch(faces, opts.batch_size, opts.patch, gen, deg)
            rec: dict[str, Any] = {}
            if phase == "gan":
                with torch.no_grad():
                    fake = g(lr_u, 4)
                real_logits, _ = d(hr)
                fake_logits, _ = d(fake)
                loss_d = d_logistic_loss(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
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
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            ema_update(g_ema, g, ema_decay_at(step - start, opts.ema_decay))
            step += 1
            phase_time[phase] = time.time() - tick
            if step % opts.eval_every == 0 or step == start + n_steps:
                rec.update(quick_eval(g_ema, held))
            if step % 50 == 0 or "psnr_y" in rec:
                line = {"step": step, "phase": phase, "lr": lr_g, "images": step * opts.batch_size,
                        "sec": round(phase_time[phase], 1), **{k: round(v, 4) for k, v in rec.items()}}
                logf.write(json.dumps(line) + "\n")
                logf.flush()
                log(json.dumps(line))
            if step % opts.checkpoint_every == 0:
                save_state()
        if phase not in done:
            done.append(phase)
        if phase == "l1":  # the GAN phase starts from the EMA weights
            g.load_state_dict(g_ema.state_dict())
        save_state()
        seen = step * opts.batch_size
        final = quick_eval(g_ema, held)
        log(f"{phase} done at step {step}: {json.dumps(final)}")
        result = save_model(out / phase, "upscaler", cfg, g_ema, d,
                            _card(opts, phase, seen, len(faces), {"quick_eval_heldout_128": final}))
    logf.close()
    return result
