"""Commands that train: `data align` (a face set aligned by landmarks), `pack` (data for a GPU machine), `train` (the
GANs), `train-upscaler`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..data import DataError
from .common import add_device, add_dry_run, add_model_overrides, add_seed, add_threads


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare training data")
    dsub = p.add_subparsers(dest="data_command", required=True)
    a = dsub.add_parser("align", help="align every face of image folders by its five landmarks (resumable)")
    a.add_argument("sources", nargs="+", metavar="SRC", help="image folder or file (searched recursively)")
    a.add_argument("--recipe", default="utkface-chip",
                   help="framing: a recipe of dgf_core/faces/canonical_landmarks.json (default: utkface-chip)")
    a.add_argument("--resolution", type=int, default=128)
    a.add_argument("--out", required=True, help="folder of the aligned set (images/, manifest.jsonl, summary.json)")
    a.add_argument("--max-outside", type=float, default=None, metavar="SHARE",
                   help="leave out faces whose crop lies beyond the photo by more than this share (default 0.15)")
    a.add_argument("--workers", type=int, default=1, help="processes (each runs the detector on one thread)")
    a.add_argument("--limit", type=int, default=None, help="only the first N files (sorted by path)")
    a.add_argument("--no-progress", action="store_true")
    add_dry_run(a)


def cmd_data(a: argparse.Namespace) -> int:
    import sys

    from ..data import list_images
    from ..faces.aligned_set import DEFAULT_MAX_OUTSIDE, AlignJob, align_sources, read_manifest

    job = AlignJob(a.recipe, a.resolution, DEFAULT_MAX_OUTSIDE if a.max_outside is None else a.max_outside)
    if a.workers < 1:
        raise ValueError("--workers must be at least 1")
    n = len(list_images(a.sources))
    print(json.dumps({"align": {"sources": a.sources, "files": n, "already_done": len(read_manifest(a.out)),
                                "out": a.out, **dataclasses.asdict(job), "workers": a.workers}}, indent=2))
    if a.dry_run:
        return 0
    last = [0.0]

    def progress(done: int, total: int, counts: dict[str, int]) -> None:
        import time

        if a.no_progress or (time.time() - last[0] < 2 and done < total):
            return
        last[0] = time.time()
        print(f"\raligned {done}/{total} " + " ".join(f"{k} {v}" for k, v in sorted(counts.items())),
              end="" if done < total else "\n", file=sys.stderr, flush=True)

    summary = align_sources(a.sources, a.out, job, workers=a.workers, limit=a.limit, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0


def add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="pre-crop a data set to small JPEGs (to carry it to a GPU machine)")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--quality", type=int, default=92)
    add_dry_run(p)


def cmd_pack(a: argparse.Namespace) -> int:
    from ..data import list_images, pack_images

    n = len(list_images(a.data))
    if not 8 <= a.resolution <= 1024:
        raise ValueError("--resolution must be in 8..1024")
    print(json.dumps({"pack": {"data": a.data, "images": n, "out": a.out, "resolution": a.resolution, "quality": a.quality}}, indent=2))
    if a.dry_run:
        return 0
    written, skipped = pack_images(a.data, a.out, a.resolution, a.quality)
    print(f"packed {written} images into {a.out} ({skipped} unreadable skipped)")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    from ..models import FAMILIES

    p = sub.add_parser("train", help="train a GAN on folders of face images")
    p.add_argument("family", choices=sorted(f for f, fam in FAMILIES.items() if fam.kind == "generator"))
    p.add_argument("--data", action="append", required=True, help="image folder (repeatable; searched recursively)")
    p.add_argument("--out", required=True, help="run folder: state, log.jsonl, samples/, model/")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=None, help="Adam lr (default: family's; dcgan 2e-4, stylegan2 2e-3)")
    p.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default: family's; dcgan 0.5, stylegan2 0)")
    p.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default: family's; dcgan 0.999, stylegan2 0.99)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--r1-gamma", type=float, default=None, help="lazy R1 weight (default: family's)")
    add_seed(p)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    add_device(p)
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast (used on CUDA and on CPUs with native bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW tensors (default: NHWC, faster with oneDNN)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--cache-dir", default=None, help="cache decoded images here (safetensors)")
    add_threads(p)
    add_model_overrides(p, "g_channels=32")
    p.add_argument("--note", default="", help="free text stored on the model card")
    p.add_argument("--augment", default="", metavar="POLICY",
                   help="DiffAugment for D's inputs: comma-separated color,translation,cutout (default: none)")
    p.add_argument("--augment-p", type=float, default=1.0, help="probability of each augmentation per image")
    p.add_argument("--eval-every", type=int, default=0, metavar="IMAGES",
                   help="every this many images: face rate of fixed seeds in log.jsonl and a snapshot (0: off)")
    p.add_argument("--eval-seeds", type=int, default=256, help="seeds 0..N-1 scored at each evaluation (face rate, coverage)")
    p.add_argument("--eval-c2st-samples", type=int, default=None, metavar="N",
                   help="seeds 0..N-1 in each evaluation's two-sample test, against as many held-out faces "
                        "(default 1000, as `evaluate --n 1000`; 0: off)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="also save the run state when this much time passed since the last save")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a shipped generator (name in weights/ or a model folder) instead of from scratch")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where it stopped; start it there when it has no state yet")
    p.add_argument("--no-progress", action="store_true")
    add_dry_run(p)


def cmd_train(a: argparse.Namespace) -> int:
    from ..models import get_family
    from ..training.loop import TrainOptions, train

    defaults = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "r1_gamma": 0.0}  # the DCGAN paper's
    defaults.update({"stylegan2": {"lr": 2e-3, "beta1": 0.0, "beta2": 0.99, "r1_gamma": 0.1}}.get(a.family, {}))

    def pick(name: str):
        return getattr(a, name) if getattr(a, name) is not None else defaults[name]

    opts = TrainOptions(
        data=a.data, out=a.out, family=a.family, model=dict(a.model), resolution=a.resolution,
        batch_size=a.batch_size, steps=a.steps, lr=pick("lr"), betas=(pick("beta1"), pick("beta2")), ema_decay=a.ema_decay,
        r1_gamma=pick("r1_gamma"), seed=a.seed,
        log_every=a.log_every, sample_every=a.sample_every, checkpoint_every=a.checkpoint_every, device=a.device,
        amp=not a.no_amp, compile=a.compile, channels_last=not a.no_channels_last, limit=a.limit, cache_dir=a.cache_dir, resume=a.resume,
        progress=not a.no_progress, threads=a.threads, note=a.note, augment=a.augment, augment_p=a.augment_p,
        eval_every=a.eval_every, eval_seeds=a.eval_seeds,
        **({} if a.eval_c2st_samples is None else {"eval_c2st_samples": a.eval_c2st_samples}),
        checkpoint_minutes=a.checkpoint_minutes, init_from=a.init_from,
    )
    opts.validate()
    for d in opts.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    if opts.init_from:  # a clear error now (no such model, another architecture), not after the data has loaded
        from ..training.loop import init_from_overrides

        opts.model = init_from_overrides(opts)
    config = get_family(opts.family).make_config({"resolution": opts.resolution, **opts.model})
    print(json.dumps({"train": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, indent=2, default=list))
    if a.dry_run:
        return 0
    model_dir = train(opts)
    print(f"model written to {model_dir}")
    return 0


def add_train_upscaler(sub: argparse._SubParsersAction) -> None:
    from ..training.upscaler import GAN_LOSSES
    from ..training.upscaler import UpscalerTrainOptions as O

    p = sub.add_parser("train-upscaler", help="train the face upscaler (L1 phase, then adversarial fine-tune)")
    p.add_argument("--data", action="append", required=True, help="HR face folder, >= 176 px (repeatable)")
    p.add_argument("--out", required=True, help="run folder: state.safetensors, log.jsonl, l1/, gan/")
    p.add_argument("--patch", type=int, default=O.patch, help="HR patch side (LR is patch/4)")
    p.add_argument("--batch-size", type=int, default=O.batch_size)
    p.add_argument("--l1-steps", type=int, default=None, help=f"default {O.l1_steps}; 0 with --init-from")
    p.add_argument("--gan-steps", type=int, default=O.gan_steps)
    p.add_argument("--l1-minutes", type=float, default=None, help="time budget of the L1 phase")
    p.add_argument("--gan-minutes", type=float, default=None, help="time budget of the GAN phase")
    p.add_argument("--lr", type=float, default=O.lr)
    p.add_argument("--gan-lr", type=float, default=O.gan_lr)
    p.add_argument("--d-lr", type=float, default=O.d_lr)
    p.add_argument("--adv-weight", type=float, default=O.adv_weight)
    p.add_argument("--fm-weight", type=float, default=O.fm_weight, help="feature matching on D's activations")
    p.add_argument("--pixel-weight", type=float, default=O.pixel_weight, help="weight of the pixel loss in the GAN phase")
    p.add_argument("--gan-loss", choices=GAN_LOSSES, default=O.gan_loss, help="relativistic: relativistic average GAN (ESRGAN)")
    p.add_argument("--freq-sigma", type=float, default=O.freq_sigma, metavar="SIGMA",
                   help="GAN phase: frequency separation (Fritsche et al. 2019): the pixel loss on the Gaussian low-pass "
                        "of this sigma (HR px), D on the high-pass (default 0: off)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start the GAN phase from this upscaler (name in weights/ or a folder), skipping the L1 phase: "
                        "how its GAN end (detail weights) is trained; with --resume, a run that has a state resumes it")
    p.add_argument("--max-blur", type=float, default=O.max_blur, help="HR Gaussian blur sigma, HR pixels")
    p.add_argument("--max-noise", type=float, default=O.max_noise, help="LR noise std, fraction of [0, 1]")
    p.add_argument("--every", type=int, default=O.every, help="use every n-th training file")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=O.eval_every)
    p.add_argument("--checkpoint-every", type=int, default=O.checkpoint_every)
    p.add_argument("--checkpoint-minutes", type=float, default=None, help="also save the state this often (minutes)")
    p.add_argument("--log-every", type=int, default=O.log_every, help="a log line every this many steps")
    p.add_argument("--snapshot-every", type=int, default=O.snapshot_every,
                   help="keep the EMA model every this many steps in OUT/snapshots/ (0: none)")
    add_seed(p)
    add_threads(p)
    add_model_overrides(p, "channels=48")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where its state stopped")
    add_dry_run(p)


def cmd_train_upscaler(a: argparse.Namespace) -> int:
    from ..training.upscaler import UpscalerTrainOptions, train_upscaler

    opts = UpscalerTrainOptions(
        data=a.data, out=a.out, model=dict(a.model), patch=a.patch, batch_size=a.batch_size,
        l1_steps=a.l1_steps if a.l1_steps is not None else 0 if a.init_from else UpscalerTrainOptions.l1_steps,
        gan_steps=a.gan_steps, l1_minutes=a.l1_minutes, gan_minutes=a.gan_minutes, lr=a.lr, gan_lr=a.gan_lr,
        d_lr=a.d_lr, adv_weight=a.adv_weight, fm_weight=a.fm_weight, max_blur=a.max_blur, max_noise=a.max_noise,
        every=a.every, limit=a.limit, eval_every=a.eval_every, checkpoint_every=a.checkpoint_every, seed=a.seed,
        threads=a.threads, resume=a.resume, pixel_weight=a.pixel_weight, gan_loss=a.gan_loss, init_from=a.init_from,
        freq_sigma=a.freq_sigma,
        checkpoint_minutes=a.checkpoint_minutes, log_every=a.log_every, snapshot_every=a.snapshot_every,
    )
    opts.validate()
    for d in opts.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    config = opts.config()
    print(json.dumps({"train_upscaler": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, indent=2))
    if a.dry_run:
        return 0
    result = train_upscaler(opts)
    print(f"model written to {result}" if result != Path(opts.out) else f"stopped; the state is in {result} (--resume continues)")
    return 0


def add_export_upscaler_detail(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-upscaler-detail",
                       help="write a train-upscaler run's GAN-end EMA weights as an upscaler's detail.safetensors")
    p.add_argument("--run", required=True, help="train-upscaler run folder (its state.safetensors), during or after the run")
    p.add_argument("--into", required=True, help="upscaler folder (or name in weights/) whose GAN end this becomes")
    p.add_argument("--snapshot", default=None, metavar="stepNNNNNNN",
                   help="export this snapshot of the run (RUN/snapshots/NAME) instead of its current state")
    add_dry_run(p)


def cmd_export_upscaler_detail(a: argparse.Namespace) -> int:
    from ..checkpoint import read_training_info, resolve_model_path
    from ..training.upscaler import export_detail

    into = resolve_model_path(a.into)
    info = read_training_info(Path(a.run) / "state.safetensors") if (Path(a.run) / "state.safetensors").is_file() else {}
    print(json.dumps({"export_upscaler_detail": {"run": a.run, "into": str(into), "step": info.get("step"),
                                                 "gan_phase_start": (info.get("phase_start") or {}).get("gan"),
                                                 "snapshot": a.snapshot}}, indent=2))
    if a.dry_run:
        return 0
    export_detail(a.run, into, snapshot=a.snapshot)
    return 0
