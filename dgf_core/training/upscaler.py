"""Training the upscaler: an L1 phase, then an adversarial + feature-matching fine-tune (its GAN end).

`train_upscaler(opts)` is the whole loop as a function of its options, in named pieces: `load_faces`, `setup`
(fresh or resumed `SRTrainState`), `run_phase` (over `train_step`), `finish_phase` (evaluate, export):
- data: HR faces decoded once into memory (`sr_data.load_hr_faces`), batches of random patches degraded on the
  fly (`sr_data.sr_batch`), all from one seeded `torch.Generator`;
- phase "l1": loss = L1(x4, HR) + x2_weight * L1(x2, HR/2), Adam, cosine learning-rate decay over the phase;
- phase "gan": pixel_weight * the same pixel loss + adv_weight * adversarial loss + fm_weight * feature matching
  (L1 between the discriminator's activations on real and upscaled patches: the perceptual loss, from the project's
  own network); `gan_loss` "nonsaturating" (D logistic) or "relativistic" (relativistic average GAN, ESRGAN);
  `freq_sigma` > 0 separates frequencies (Fritsche, Gu & Timofte 2019, "Frequency Separation for Real-World
  Super-Resolution"): the pixel loss compares only the Gaussian low-pass (that sigma, HR px) of output and target,
  and D (so the adversarial loss and feature matching) sees only the rest, the high-pass detail, x HIGH_PASS_GAIN:
  the L1 term no longer pulls invented texture back to the blurred mean, and D's whole capacity goes to the detail;
- `init_from` (an upscaler folder) starts the GAN phase from its weights (G, G EMA and, when shipped, D) and skips
  the L1 phase: how the GAN end of a shipped upscaler is trained (`export_detail` then writes the run's EMA weights as
  that folder's `detail.safetensors`, the far end of the detail control: generation/upscale.py);
- an EMA of G's weights is kept and is what gets evaluated and saved;
- a phase ends at its step count or its time budget (minutes), whichever comes first; the learning-rate
  schedule follows the larger of the two fractions, so a time-limited phase still decays to its end;
- every `eval_every` steps: PSNR (Y) of the EMA model vs bicubic and its sharpness ratio on held-out faces, one
  JSON line in the log (a line every `log_every` steps in between);
- the state is written every `checkpoint_every` steps, every `checkpoint_minutes` and on Ctrl-C / SIGTERM (the
  step finishes, the state is saved, the run stops without finishing its phase); a resumed run removes interrupted
  writes and the log lines past its state's step;
- out/: `state.safetensors` (resume), `log.jsonl`, `l1/` and `gan/` (model folders written at the end of
  each phase, EMA weights, with a model card), `snapshots/stepNNNNNNN/` (the EMA model every `snapshot_every`
  steps, a model folder of its own: any of them can become the detail end, `export_detail(..., snapshot=)`).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..checkpoint import (
    CheckpointError,
    load_model,
    load_training_state,
    read_config,
    read_training_info,
    remove_partial_writes,
    resolve_model_path,
    save_detail_weights,
    save_model,
    save_training_state,
)
from ..data import list_images
from ..images import psnr, sharpness_ratio
from ..models import get_family
from ..models.upscaler import Discriminator, Generator, UpscalerConfig
from .losses import (
    d_logistic_loss,
    d_relativistic_loss,
    ema_decay_at,
    ema_update,
    g_nonsaturating_loss,
    g_relativistic_loss,
)
from .loop import stop_signals, truncate_log
from .sr_data import Degradation, bicubic_down, gaussian_blur, load_hr_faces, quantize, sr_batch

LICENCE = "CelebA and UTKFace: non-commercial research only"
GAN_LOSSES = ("nonsaturating", "relativistic")
HIGH_PASS_GAIN = 4.0  # D's input under frequency separation: the high-pass x this (images.high_pass's gain)
MAX_FREQ_SIGMA = 8.0


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
    pixel_weight: float = 1.0  # weight of the pixel loss in the GAN phase (the L1 phase's is 1)
    gan_loss: str = "nonsaturating"  # or "relativistic" (relativistic average GAN, ESRGAN)
    freq_sigma: float = 0.0  # > 0: frequency separation (pixel loss on the low-pass, D on the high-pass; HR px)
    init_from: str | None = None  # upscaler folder or name in weights/: start the GAN phase from it, no L1 phase
    ema_decay: float = 0.999
    max_blur: float = 1.2
    max_noise: float = 0.02
    every: int = 1  # use every n-th training file (a smaller set decodes faster)
    limit: int | None = None
    eval_faces: int = 64
    eval_every: int = 500
    checkpoint_every: int = 500
    checkpoint_minutes: float | None = None  # also write the state when this much time passed since the last write
    log_every: int = 50
    snapshot_every: int = 0  # steps between EMA model snapshots (0: none)
    seed: int = 0
    threads: int | None = None
    resume: bool = False

    def validate(self) -> None:
        if self.patch < 16 or self.patch % 4:
            raise ValueError(f"--patch must be a multiple of 4 and >= 16, got {self.patch}")
        for name in ("batch_size", "eval_faces", "eval_every", "checkpoint_every", "every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.l1_steps < 0 or self.gan_steps < 0 or self.l1_steps + self.gan_steps == 0:
            raise ValueError("--l1-steps and --gan-steps must be >= 0, and not both 0")
        for name in ("lr", "gan_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        for name in ("pixel_weight", "adv_weight", "fm_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if not (math.isfinite(self.freq_sigma) and 0 <= self.freq_sigma <= MAX_FREQ_SIGMA):
            raise ValueError(f"--freq-sigma must be in 0..{MAX_FREQ_SIGMA} HR pixels (0: off), got {self.freq_sigma}")
        if self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"--gan-loss must be one of {', '.join(GAN_LOSSES)}, got {self.gan_loss!r}")
        if self.snapshot_every < 0:
            raise ValueError(f"--snapshot-every must be >= 0 (0: no snapshots), got {self.snapshot_every}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            raise ValueError(f"--checkpoint-minutes must be > 0, got {self.checkpoint_minutes}")
        if self.init_from and (self.gan_steps < 1 or self.l1_steps):
            raise ValueError("--init-from starts the GAN phase from trained weights: give --gan-steps >= 1 and "
                             "--l1-steps 0")
        Degradation(self.max_blur, self.max_noise)  # raises on bad values

    def config(self) -> UpscalerConfig:
        """The architecture: the --model overrides, or with `init_from` the folder's (overrides must match it)."""
        family = get_family("upscaler")
        if not self.init_from:
            return family.make_config(dict(self.model))
        src = resolve_model_path(self.init_from)
        meta = read_config(src)
        if meta.get("family") != "upscaler":
            raise ValueError(f"--init-from {src} is a {meta.get('family')!r} model, not an upscaler")
        folder = family.make_config(meta.get("config", {}))
        if self.model and dataclasses.asdict(family.make_config(dict(self.model))) != dataclasses.asdict(folder):
            raise ValueError(f"--init-from {src}: its config {dataclasses.asdict(folder)} differs from the --model "
                             "overrides; drop them to take the folder's")
        return folder


# ---- losses (small pure functions) -------------------------------------------------------------------------

def pixel_loss(out2: torch.Tensor, out4: torch.Tensor, hr2: torch.Tensor, hr: torch.Tensor, x2_weight: float) -> torch.Tensor:
    return F.l1_loss(out4, hr) + x2_weight * F.l1_loss(out2, hr2)


def split_frequencies(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> (low, high): its Gaussian blur (sigma px, reflect padding; differentiable) and x - low."""
    low = gaussian_blur(x, torch.full((x.shape[0],), float(sigma), device=x.device))
    return low, x - low


def separated_pixel_loss(out2: torch.Tensor, out4: torch.Tensor, hr2: torch.Tensor, hr: torch.Tensor, x2_weight: float,
                         sigma: float) -> torch.Tensor:
    """`pixel_loss` on the low-pass only (sigma HR px at x4, sigma / 2 at x2): detail above it is left to D."""
    return pixel_loss(split_frequencies(out2, sigma / 2)[0], split_frequencies(out4, sigma)[0],
                      split_frequencies(hr2, sigma / 2)[0], split_frequencies(hr, sigma)[0], x2_weight)


def d_view(x: torch.Tensor, freq_sigma: float) -> torch.Tensor:
    """What D sees of an HR image: all of it, or under frequency separation its high-pass x HIGH_PASS_GAIN."""
    return split_frequencies(x, freq_sigma)[1] * HIGH_PASS_GAIN if freq_sigma > 0 else x


def d_adversarial_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return d_relativistic_loss(real_logits, fake_logits) if kind == "relativistic" else d_logistic_loss(real_logits, fake_logits)


def g_adversarial_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss; `real_logits` (detached) matter to the relativistic loss only."""
    return g_relativistic_loss(real_logits, fake_logits) if kind == "relativistic" else g_nonsaturating_loss(fake_logits)


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
    """PSNR (Y, border 4) of x4 and of torch bicubic on clean antialiased downscales of `hr_u8`, and the x4 output's
    sharpness ratio (Laplacian variance of upscaled / of real faces: 1 is as sharp as the real ones)."""
    from ..data import to_float, to_uint8
    from ..models.upscaler import bicubic

    hr = to_float(hr_u8)
    lr = quantize(bicubic_down(hr, 4))
    out = to_uint8(g(lr, 4))
    base = to_uint8(bicubic(lr, 4))
    p, b = float(psnr(out, hr_u8, border=4).mean()), float(psnr(base, hr_u8, border=4).mean())
    return {"psnr_y": p, "bicubic_psnr_y": b, "gain_db": p - b, "sharpness_ratio": sharpness_ratio(out, hr_u8, 4)}


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
        dropped = truncate_log(state_path.parent / "log.jsonl", st.step)
        removed = remove_partial_writes(state_path.parent)
        log(f"resumed at step {st.step}" + (f" (dropped {dropped} log lines past it)" if dropped else "")
            + (f" (removed {len(removed)} interrupted writes)" if removed else ""))
    elif opts.init_from:
        init_gan_phase(st, opts.init_from, log)
    return st


def init_gan_phase(st: SRTrainState, init_from: str, log=print) -> None:
    """Start from a trained upscaler: its generator into G and G EMA, its discriminator when it ships one; the L1
    phase counts as done."""
    src = resolve_model_path(init_from)
    loaded = load_model(src)
    st.g.load_state_dict(loaded.generator.state_dict())
    st.g_ema.load_state_dict(loaded.generator.state_dict())
    try:
        st.d.load_state_dict(load_model(src, with_discriminator=True).discriminator.state_dict())
        what = "generator and discriminator"
    except CheckpointError:
        what = "generator (it ships no discriminator: D starts from scratch)"
    st.done, st.phase_start["l1"] = ["l1"], None
    log(f"initialized the {what} from {src} (weights {loaded.weights_sha256[:12]}); the GAN phase starts at step 0")


def train_step(st: SRTrainState, faces: torch.Tensor, opts: UpscalerTrainOptions, deg: Degradation, phase: str,
               start: int) -> dict[str, float]:
    """One batch: in the GAN phase a D step first, then G's (pixel loss, + adversarial and feature matching in
    the GAN phase), then the EMA. Returns the losses by name."""
    g, d = st.g, st.d
    lr_u, hr2, hr = sr_batch(faces, opts.batch_size, opts.patch, st.gen, deg)
    rec: dict[str, Any] = {}
    sigma = opts.freq_sigma if phase == "gan" else 0.0  # the L1 phase always matches every frequency
    if phase == "gan":
        hr_seen = d_view(hr, sigma)  # what D sees of the real patches, in both of its passes
        with torch.no_grad():
            fake = g(lr_u, 4)
        real_logits, _ = d(hr_seen)
        fake_logits, _ = d(d_view(fake, sigma))
        loss_d = d_adversarial_loss(opts.gan_loss, real_logits, fake_logits)
        st.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        st.opt_d.step()
        rec["d"] = loss_d.item()
    out2, out4 = g.forward_both(lr_u)
    loss = (separated_pixel_loss(out2, out4, hr2, hr, opts.x2_weight, sigma) if sigma > 0
            else pixel_loss(out2, out4, hr2, hr, opts.x2_weight))
    rec["l1"] = loss.item()
    if phase == "gan":
        d.requires_grad_(False)
        fake_logits, fake_feats = d(d_view(out4, sigma))
        with torch.no_grad():
            real_logits, real_feats = d(hr_seen)
        adv = g_adversarial_loss(opts.gan_loss, real_logits, fake_logits)
        fm = feature_matching_loss(fake_feats, real_feats)
        loss = opts.pixel_weight * loss + opts.adv_weight * adv + opts.fm_weight * fm
        d.requires_grad_(True)
        rec.update(adv=adv.item(), fm=fm.item())
    st.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    st.opt_g.step()
    ema_update(st.g_ema, g, ema_decay_at(st.step - start, opts.ema_decay))
    st.step += 1
    return rec


def run_phase(st: SRTrainState, phase: str, n_steps: int, minutes: float | None, faces: torch.Tensor,
              held: torch.Tensor, opts: UpscalerTrainOptions, deg: Degradation, state_path: Path, logf, log=print,
              stop: threading.Event | None = None) -> bool:
    """Train one phase up to its step count or time budget; logs every `log_every` steps and at each evaluation,
    writes the state every `checkpoint_every` steps and every `checkpoint_minutes`. The learning rate follows the
    larger of the step and time fractions. Returns False when `stop` was set (the state saved, the phase unfinished)."""
    if st.phase_start[phase] is None:
        st.phase_start[phase] = st.step
    start = st.phase_start[phase]
    if phase == "gan":
        for grp in st.opt_g.param_groups:
            grp["lr"] = opts.gan_lr
    budget = minutes * 60 if minutes else math.inf
    tick = time.time() - st.phase_time[phase]
    last_save = time.time()
    while st.step < start + n_steps:
        if stop is not None and stop.is_set():
            st.save(state_path, opts)
            log(f"{phase}: stopped at step {st.step}, state saved; the same command with --resume continues")
            return False
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
        if opts.snapshot_every and st.step % opts.snapshot_every == 0:
            save_snapshot(st, phase, state_path.parent, opts, quick_eval(st.g_ema, held) if "psnr_y" not in rec else
                          {k: rec[k] for k in ("psnr_y", "bicubic_psnr_y", "gain_db", "sharpness_ratio")})
        if st.step % opts.log_every == 0 or "psnr_y" in rec:
            line = {"step": st.step, "phase": phase, "lr": lr_g, "images": st.step * opts.batch_size,
                    "sec": round(st.phase_time[phase], 1), **{k: round(v, 4) for k, v in rec.items()}}
            logf.write(json.dumps(line) + "\n")
            logf.flush()
            log(json.dumps(line))
        if st.step % opts.checkpoint_every == 0 or (
                opts.checkpoint_minutes and time.time() - last_save >= opts.checkpoint_minutes * 60):
            st.save(state_path, opts)
            last_save = time.time()
    return True


def save_snapshot(st: SRTrainState, phase: str, out: Path, opts: UpscalerTrainOptions, evaluation: dict[str, float]) -> Path:
    """The EMA generator now, as the model folder `out/snapshots/stepNNNNNNN` (fp16, with a short card)."""
    card = {"description": f"snapshot of a train-upscaler run, phase {phase!r}; EMA weights", "phase": phase,
            "step": st.step, "images_seen": st.step * opts.batch_size, "init_from": opts.init_from,
            "quick_eval_heldout_128": evaluation, "licence": LICENCE,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return save_model(out / "snapshots" / f"step{st.step:07d}", "upscaler", st.g.cfg, st.g_ema, None, card)


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
    if opts.init_from:  # recorded in the state, so `export_detail` rebuilds this architecture
        opts.model = dataclasses.asdict(cfg)
    deg = Degradation(opts.max_blur, opts.max_noise)
    faces, held = load_faces(opts, log)
    state_path = out / "state.safetensors"
    st = setup(opts, cfg, state_path, log)
    result = out
    with (out / "log.jsonl").open("a") as logf, stop_signals() as stop:
        for phase, n_steps, minutes in (("l1", opts.l1_steps, opts.l1_minutes), ("gan", opts.gan_steps, opts.gan_minutes)):
            extend = bool(st.done) and st.done[-1] == phase and st.step < (st.phase_start[phase] or 0) + n_steps
            if n_steps == 0 or (phase in st.done and not extend):  # finished, unless more steps are asked
                continue
            if not run_phase(st, phase, n_steps, minutes, faces, held, opts, deg, state_path, logf, log, stop):
                return out
            result = finish_phase(st, phase, out, cfg, faces, held, opts, state_path, log)
    return result


# ---- the GAN end as the detail weights of an upscaler folder ----------------------------------------------------

def gan_loss_description(o: dict[str, Any]) -> str:
    sigma = o.get("freq_sigma") or 0.0
    sep = (f"; frequency separation: L1 on the Gaussian low-pass (sigma {sigma:g} HR px), D on the high-pass x "
           f"{HIGH_PASS_GAIN:g}") if sigma > 0 else ""
    return (f"{o['pixel_weight']:g} x (L1(x4) + {o['x2_weight']:g} L1(x2)) + {o['adv_weight']:g} "
            f"{o['gan_loss']} adversarial + {o['fm_weight']:g} feature matching (D's activations); "
            f"D {'relativistic average' if o['gan_loss'] == 'relativistic' else 'logistic'}{sep}")


def export_detail(run: str | Path, into: str | Path, log=print, snapshot: str | None = None) -> Path:
    """The G EMA of run folder `run` (its `state.safetensors`, any time during or after its GAN phase; or its snapshot
    `snapshot`, e.g. "step0002000") as the GAN end of upscaler folder `into` (a path or a name in weights/):
    `detail.safetensors` (fp16) and config.json's "detail" entry with its card (steps, images, minutes, loss, date,
    machine, last held-out evaluation). Returns the file."""
    import platform

    state = Path(run) / "state.safetensors"
    if not state.is_file():
        raise CheckpointError(f"{run} has no state.safetensors (is it a train-upscaler run folder?)")
    info = read_training_info(state)
    o = {**dataclasses.asdict(UpscalerTrainOptions(data=[], out="")), **info["options"]}
    start = info["phase_start"].get("gan")
    if start is None or info["step"] <= start:
        raise ValueError(f"{run} has no GAN-phase steps yet (step {info['step']})")
    step, minutes = info["step"], round(info["phase_time"].get("gan", 0.0) / 60, 1)
    if snapshot:
        snap = load_model(Path(run) / "snapshots" / snapshot)
        g, step, minutes = snap.generator, int(snap.card["step"]), None  # minutes: not recorded per snapshot
        if step <= start:
            raise ValueError(f"snapshot {snapshot} is from before the GAN phase (step {step} <= {start})")
    else:
        g = Generator(get_family("upscaler").make_config(o["model"]))
        load_training_state(state, {"g_ema": g}, {})
    evals = [r for r in _read_log(Path(run) / "log.jsonl") if "psnr_y" in r and r.get("step", 0) <= step]
    steps = step - start
    card = {
        "phase": "gan",
        "description": "GAN end of the detail control (network interpolation, ESRGAN section 3.4): the EMA generator "
                       "of a GAN phase started from this folder's weights; detail 1 uses it alone.",
        "run": str(Path(run).resolve()),
        "snapshot": snapshot,
        "init_from": o.get("init_from"),
        "steps": steps,
        "images_seen": steps * o["batch_size"],
        "minutes": minutes,
        "loss": gan_loss_description(o),
        "optimizer": f"G Adam(0.9, 0.99) lr {o['gan_lr']:g} cosine to {o['gan_lr'] * 0.05:g}, D Adam(0.5, 0.99) lr {o['d_lr']:g}",
        "patch": o["patch"], "batch_size": o["batch_size"], "ema_decay": o["ema_decay"], "seed": o["seed"],
        "quick_eval_heldout_128": evals[-1] if evals else None,
        "curve": "log.jsonl of the run (psnr_y, sharpness_ratio every eval_every steps)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()} CPU, {o.get('threads') or 'default'} torch thread(s), "
                   f"torch {torch.__version__}",
        "licence": LICENCE,
    }
    path = save_detail_weights(resolve_model_path(into), g, card)
    log(f"exported the GAN end of {run} (step {step}, {steps} GAN steps) to {path}")
    return path


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
