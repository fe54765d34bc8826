"""Command line: python -m dgf_core {train, generate, evaluate, bench} ...

Each command validates its arguments, prints the resolved configuration, then calls one library function.
Errors a user can fix (bad seeds, missing folders, corrupt checkpoints) print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .data import DataError
from .latent import SeedError

USER_ERRORS = (SeedError, CheckpointError, DataError, FileNotFoundError, FileExistsError, ValueError)


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def add_train(sub: argparse._SubParsersAction) -> None:
    from .models import FAMILIES

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast (used on CUDA and on CPUs with native bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--cache-dir", default=None, help="cache decoded images here (safetensors)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--model", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture override, e.g. g_channels=32")
    p.add_argument("--note", default="", help="free text stored on the model card")
    p.add_argument("--augment", default="", metavar="POLICY",
                   help="DiffAugment for D's inputs: comma-separated color,translation,cutout (default: none)")
    p.add_argument("--augment-p", type=float, default=1.0, help="probability of each augmentation per image")
    p.add_argument("--eval-every", type=int, default=0, metavar="IMAGES",
                   help="every this many images: face rate of fixed seeds in log.jsonl and a snapshot (0: off)")
    p.add_argument("--eval-seeds", type=int, default=256, help="seeds 0..N-1 scored at each evaluation")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="also save the run state when this much time passed since the last save")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a shipped generator (name in weights/ or a model folder) instead of from scratch")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")


def cmd_train(a: argparse.Namespace) -> int:
    from .models import get_family
    from .train import TrainOptions, train

    defaults = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "r1_gamma": 0.0}  # the DCGAN paper's
    defaults.update({"stylegan2": {"lr": 2e-3, "beta1": 0.0, "beta2": 0.99, "r1_gamma": 0.1}}.get(a.family, {}))

    def pick(name: str):
        return getattr(a, name) if getattr(a, name) is not None else defaults[name]

    opts = TrainOptions(
        data=a.data, out=a.out, family=a.family, model=dict(a.model), resolution=a.resolution,
        batch_size=a.batch_size, steps=a.steps, lr=pick("lr"), betas=(pick("beta1"), pick("beta2")), ema_decay=a.ema_decay,
        r1_gamma=pick("r1_gamma"), seed=a.seed,
        log_every=a.log_every, sample_every=a.sample_every, checkpoint_every=a.checkpoint_every, device=a.device,
        amp=not a.no_amp, compile=a.compile, limit=a.limit, cache_dir=a.cache_dir, resume=a.resume,
        progress=not a.no_progress, threads=a.threads, note=a.note, augment=a.augment, augment_p=a.augment_p,
        eval_every=a.eval_every, eval_seeds=a.eval_seeds, checkpoint_minutes=a.checkpoint_minutes, init_from=a.init_from,
    )
    opts.validate()
    for d in opts.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    if opts.init_from:
        from .checkpoint import resolve_model_path

        resolve_model_path(opts.init_from)  # a clear error now, not after the data has loaded
    config = get_family(opts.family).make_config({"resolution": opts.resolution, **opts.model})
    print(json.dumps({"train": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, indent=2, default=list))
    if a.dry_run:
        return 0
    model_dir = train(opts)
    print(f"model written to {model_dir}")
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write one PNG per seed (and optionally a grid)")
    p.add_argument("--model", required=True, help="model name in weights/ or a model folder")
    p.add_argument("--seeds", required=True, help="e.g. 0-63 or 1,7,42")
    p.add_argument("--out", required=True, help="output folder: seed000042.png per seed")
    p.add_argument("--grid", default=None, help="also write all seeds as one grid PNG")
    p.add_argument("--truncation", type=float, default=1.0, help="psi in [0, 1]; 1 = none")
    p.add_argument("--mix-seed", type=int, default=None,
                   help="style mixing (StyleGAN2): fine styles from this seed, coarse styles from each --seeds seed")
    p.add_argument("--mix-crossover", type=int, default=4,
                   help="with --mix-seed: styles [0, K) come from the seed, the rest from --mix-seed (4 = 4x4-8x8 coarse)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dry-run", action="store_true")


def cmd_generate(a: argparse.Namespace) -> int:
    from .latent import check_seed, check_truncation, parse_seeds
    from .pipeline import FacePipeline, MAX_SEEDS_PER_CALL

    seeds = parse_seeds(a.seeds, max_count=100_000)
    psi = check_truncation(a.truncation)
    mix_seed = check_seed(a.mix_seed) if a.mix_seed is not None else None
    pipe = FacePipeline.from_pretrained(a.model, device=a.device)
    mixing = {}
    if mix_seed is not None:
        if pipe.n_styles is None:
            raise ValueError(f"--mix-seed: model {pipe.model.name!r} ({pipe.model.family.name}) has no style mixing")
        if not 0 <= a.mix_crossover <= pipe.n_styles:
            raise ValueError(f"--mix-crossover must be in 0..{pipe.n_styles} for this model, got {a.mix_crossover}")
        mixing = {"mix_seed": mix_seed, "mix_crossover": a.mix_crossover, "n_styles": pipe.n_styles}
    print(json.dumps({"generate": {"model": pipe.model.name, "path": str(pipe.model.path), "seeds": len(seeds),
                                   "first": seeds[0], "last": seeds[-1], "truncation": psi, **mixing, "out": a.out,
                                   "grid": a.grid, "device": str(pipe.device)}}, indent=2))
    if a.dry_run:
        return 0
    bs = min(a.batch_size, MAX_SEEDS_PER_CALL)
    if mix_seed is not None:
        paths = pipe.write_mixed_pngs(seeds, mix_seed, a.mix_crossover, a.out, truncation=psi, batch_size=bs, grid=a.grid)
    else:
        paths = pipe.write_pngs(seeds, a.out, truncation=psi, batch_size=bs, grid=a.grid)
    print(f"wrote {len(paths)} images to {a.out}" + (f" and grid {a.grid}" if a.grid else ""))
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="face-detection rates, memorization ratio, classifier two-sample test (C2ST), "
                                        "coverage (female share, ages) (and FID with --inception-weights)")
    p.add_argument("--model", required=True)
    p.add_argument("--real", action="append", required=True, help="real image folder(s) the model was trained on")
    p.add_argument("--n", type=int, default=1000, help="number of samples (seeds 0..n-1)")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--inception-weights", default=None, help="FID Inception weights file (pt_inception-2015-12-05 .pth or .safetensors)")
    p.add_argument("--no-c2st", action="store_true",
                   help="skip the classifier two-sample tests (two 5-fold CNN fits, ~15 s each on one CPU thread at 64x64)")
    p.add_argument("--no-coverage", action="store_true", help="skip coverage by the attribute classifier (weights/attributes-utkface)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--write-card", action="store_true", help="store the results in the model card (config.json)")
    p.add_argument("--dry-run", action="store_true")


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .checkpoint import resolve_model_path
    from .latent import check_truncation
    from .metrics import evaluate_model

    if a.n < 2:
        raise ValueError("--n must be at least 2")
    check_truncation(a.truncation)
    folder = resolve_model_path(a.model)
    for r in a.real:
        if not Path(r).exists():
            raise DataError(f"real data path does not exist: {r}")
    if a.inception_weights and not Path(a.inception_weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no such file {a.inception_weights}")
    print(json.dumps({"evaluate": {"model": str(folder), "real": a.real, "n": a.n, "truncation": a.truncation,
                                   "fid": bool(a.inception_weights), "c2st": not a.no_c2st, "coverage": not a.no_coverage,
                                   "json": a.json}}, indent=2))
    if a.dry_run:
        return 0
    res = evaluate_model(folder, a.real, n=a.n, truncation=a.truncation, device=a.device, inception_weights=a.inception_weights,
                         c2st=not a.no_c2st, coverage=not a.no_coverage)
    from .bench import machine

    res["machine"] = machine()
    res["command"] = "python -m dgf_core " + " ".join(a.argv)
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        from .checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
    if a.write_card:
        from .checkpoint import CONFIG_FILE, read_config, write_json_atomic

        meta = read_config(folder)
        key = "evaluation" if a.truncation == 1.0 else f"evaluation_psi{a.truncation}"
        meta.setdefault("card", {})[key] = res
        write_json_atomic(meta, folder / CONFIG_FILE)
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import BENCHMARKS

    p = sub.add_parser("bench", help="speed benchmarks (latency, clip rendering, training throughput)")
    p.add_argument("--model", default="dcgan-celeba64", help="generator for the inference benchmarks")
    p.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these (repeatable)")
    p.add_argument("--data", action="append", default=[], help="image folder(s) for training throughput (default: synthetic)")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="few repeats, tiny batches (smoke test)")
    p.add_argument("--json", default=None)
    p.add_argument("--dry-run", action="store_true")


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import BenchContext, run_benchmarks

    ctx = BenchContext(model=a.model, data=a.data, device=a.device, repeats=a.repeats, train_steps=a.train_steps, quick=a.quick)
    print(json.dumps({"bench": {"only": a.only, "model": a.model, "data": a.data, "device": a.device,
                                "repeats": a.repeats, "train_steps": a.train_steps, "quick": a.quick}}, indent=2))
    if a.dry_run:
        return 0
    res = run_benchmarks(ctx, a.only)
    if a.json:
        from .checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
        print(f"wrote {a.json}")
    return 0


def add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale an image 2x or 4x with an upscaler model")
    p.add_argument("input", help="image file (PNG, JPEG, WebP, BMP, GIF: first frame); at most 512 px a side")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--model", default="upscaler-x4", help="upscaler in weights/, a model folder, or 'bicubic'")
    p.add_argument("--factor", default="4", help="2 or 4")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true")


def cmd_upscale(a: argparse.Namespace) -> int:
    from .images import save_png
    from .uploads import open_upload
    from .upscale import MAX_INPUT_SIDE, Upscaler, check_factor

    factor = check_factor(a.factor)
    if factor == 1:
        raise ValueError("--factor must be 2 or 4")
    if Path(a.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {a.out}")
    image = open_upload(a.input)
    w, h = image.size
    if max(w, h) > MAX_INPUT_SIDE:
        raise ValueError(f"{a.input} is {w}x{h}; the upscaler takes at most {MAX_INPUT_SIDE} pixels a side")
    up = Upscaler.from_pretrained(a.model, device=a.device)
    print(json.dumps({"upscale": {"model": up.name, "input": a.input, "size": [w, h], "factor": factor,
                                  "output_size": [w * factor, h * factor], "out": a.out, "device": str(up.device)}}, indent=2))
    if a.dry_run:
        return 0
    recipe = json.dumps(up.recipe(input=Path(a.input).name, factor=factor))
    save_png(up.upscale_pil(image, factor), a.out, {"Software": "Deeply Good Fakes", "dgf_upscale": recipe})
    print(f"wrote {a.out} ({w * factor}x{h * factor})")
    return 0


def add_train_upscaler(sub: argparse._SubParsersAction) -> None:
    from .train_upscaler import UpscalerTrainOptions as O

    p = sub.add_parser("train-upscaler", help="train the face upscaler (L1 phase, then adversarial fine-tune)")
    p.add_argument("--data", action="append", required=True, help="HR face folder, >= 176 px (repeatable)")
    p.add_argument("--out", required=True, help="run folder: state.safetensors, log.jsonl, l1/, gan/")
    p.add_argument("--patch", type=int, default=O.patch, help="HR patch side (LR is patch/4)")
    p.add_argument("--batch-size", type=int, default=O.batch_size)
    p.add_argument("--l1-steps", type=int, default=O.l1_steps)
    p.add_argument("--gan-steps", type=int, default=O.gan_steps)
    p.add_argument("--l1-minutes", type=float, default=None, help="time budget of the L1 phase")
    p.add_argument("--gan-minutes", type=float, default=None, help="time budget of the GAN phase")
    p.add_argument("--lr", type=float, default=O.lr)
    p.add_argument("--gan-lr", type=float, default=O.gan_lr)
    p.add_argument("--d-lr", type=float, default=O.d_lr)
    p.add_argument("--adv-weight", type=float, default=O.adv_weight)
    p.add_argument("--fm-weight", type=float, default=O.fm_weight)
    p.add_argument("--max-blur", type=float, default=O.max_blur, help="HR Gaussian blur sigma, HR pixels")
    p.add_argument("--max-noise", type=float, default=O.max_noise, help="LR noise std, fraction of [0, 1]")
    p.add_argument("--every", type=int, default=O.every, help="use every n-th training file")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=O.eval_every)
    p.add_argument("--checkpoint-every", type=int, default=O.checkpoint_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--model", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture override, e.g. channels=48")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--dry-run", action="store_true")


def cmd_train_upscaler(a: argparse.Namespace) -> int:
    from .train_upscaler import UpscalerTrainOptions, train_upscaler

    opts = UpscalerTrainOptions(
        data=a.data, out=a.out, model=dict(a.model), patch=a.patch, batch_size=a.batch_size, l1_steps=a.l1_steps,
        gan_steps=a.gan_steps, l1_minutes=a.l1_minutes, gan_minutes=a.gan_minutes, lr=a.lr, gan_lr=a.gan_lr,
        d_lr=a.d_lr, adv_weight=a.adv_weight, fm_weight=a.fm_weight, max_blur=a.max_blur, max_noise=a.max_noise,
        every=a.every, limit=a.limit, eval_every=a.eval_every, checkpoint_every=a.checkpoint_every, seed=a.seed,
        threads=a.threads, resume=a.resume,
    )
    opts.validate()
    for d in opts.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    config = opts.config()
    print(json.dumps({"train_upscaler": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, indent=2))
    if a.dry_run:
        return 0
    print(f"model written to {train_upscaler(opts)}")
    return 0


def add_evaluate_upscaler(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate-upscaler", help="PSNR/SSIM vs bicubic on held-out faces; clip temporal stability")
    p.add_argument("--model", action="append", required=True, help="upscaler(s) to evaluate (repeatable)")
    p.add_argument("--data", action="append", required=True, help="HR face folder(s); their held-out split is used")
    p.add_argument("--faces", type=int, default=300, help="held-out faces per folder (spread evenly)")
    p.add_argument("--walk-model", default=None, help="also measure flicker on a latent walk of this generator")
    p.add_argument("--clip-frames", type=int, default=96, help="frames of each stability clip")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--dry-run", action="store_true")


def cmd_evaluate_upscaler(a: argparse.Namespace) -> int:
    from .checkpoint import resolve_model_path

    if a.faces < 1 or a.clip_frames < 4:
        raise ValueError("--faces must be >= 1 and --clip-frames >= 4")
    models = [m if m == "bicubic" else str(resolve_model_path(m)) for m in a.model]
    for d in a.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    print(json.dumps({"evaluate_upscaler": {"models": models, "data": a.data, "faces": a.faces, "walk_model": a.walk_model,
                                            "json": a.json}}, indent=2))
    if a.dry_run:
        return 0
    from .sr_metrics import evaluate_upscalers

    walk = str(resolve_model_path(a.walk_model)) if a.walk_model else None
    res = evaluate_upscalers(models, a.data, faces_per_folder=a.faces, walk_model=walk, clip_frames=a.clip_frames)
    print(json.dumps(res, indent=2))
    if a.json:
        from .checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
    return 0


def add_import_rosinality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-rosinality", help="convert a rosinality/stylegan2-pytorch generator into a model folder")
    p.add_argument("file", help="g_ema weights: .safetensors, or .pt/.pth holding a state dict or {'g_ema', 'latent_avg'}")
    p.add_argument("--out", required=True, help="model folder to write, e.g. weights/stylegan2-ffhq256")
    p.add_argument("--resolution", type=int, default=None, help="refuse the file unless it is this resolution")
    p.add_argument("--mapping-lr-mul", type=float, default=0.01, help="rosinality's lr_mlp (0.01 in the public ports)")
    p.add_argument("--fp32", action="store_true", help="store float32 (default float16, half the size)")
    p.add_argument("--dry-run", action="store_true", help="read and check the file, print the config, write nothing")


def cmd_import_rosinality(a: argparse.Namespace) -> int:
    import torch

    from .official import import_rosinality, load_rosinality

    if Path(a.out).exists() and any(Path(a.out).iterdir()):
        raise FileExistsError(f"{a.out} exists and is not empty")
    print(json.dumps({"import-rosinality": {"file": a.file, "out": a.out, "resolution": a.resolution,
                                            "mapping_lr_mul": a.mapping_lr_mul, "dtype": "float32" if a.fp32 else "float16"}}, indent=2))
    if a.dry_run:
        imported = load_rosinality(a.file, mapping_lr_mul=a.mapping_lr_mul)
        print(json.dumps({"config": dataclasses.asdict(imported.config), "notes": imported.notes}, indent=2))
        return 0
    folder = import_rosinality(a.file, a.out, resolution=a.resolution, mapping_lr_mul=a.mapping_lr_mul,
                               dtype=None if a.fp32 else torch.float16)
    print(f"model written to {folder}")
    return 0


def add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="pre-crop a data set to small JPEGs (to carry it to a GPU machine)")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--quality", type=int, default=92)
    p.add_argument("--dry-run", action="store_true")


def cmd_pack(a: argparse.Namespace) -> int:
    from .data import list_images, pack_images

    n = len(list_images(a.data))
    if not 8 <= a.resolution <= 1024:
        raise ValueError("--resolution must be in 8..1024")
    print(json.dumps({"pack": {"data": a.data, "images": n, "out": a.out, "resolution": a.resolution, "quality": a.quality}}, indent=2))
    if a.dry_run:
        return 0
    written, skipped = pack_images(a.data, a.out, a.resolution, a.quality)
    print(f"packed {written} images into {a.out} ({skipped} unreadable skipped)")
    return 0


def add_video(sub: argparse._SubParsersAction) -> None:
    from .latent import EASINGS, INTERPOLATIONS
    from .video import MAX_FPS, MAX_FRAMES, MAX_FRAMES_PER_TRANSITION, MAX_KEYFRAMES, MAX_PIXEL_SCALE, MAX_SIDE

    p = sub.add_parser("video", help="a video memory: a latent walk between keyframe seeds, as MP4 and/or GIF",
                       description=f"Limits: {MAX_KEYFRAMES} keyframes, {MAX_FRAMES_PER_TRANSITION} frames per transition, "
                                   f"{MAX_FRAMES} frames, {MAX_FPS} fps, {MAX_SIDE}px frames.")
    p.add_argument("--model", default=None, help="model name in weights/ or a model folder (default with --recipe: the recipe's)")
    p.add_argument("--seeds", default=None, help="keyframe seeds, e.g. 1,7,42 (ranges such as 0-3 work too)")
    p.add_argument("--frames-per-seed", "--frames-per-transition", dest="frames_per_transition", type=int, default=None,
                   help="frames from one keyframe to the next (default 24)")
    p.add_argument("--fps", type=int, default=None, help="frames per second (default 24)")
    p.add_argument("--loop", action="store_true", default=None, help="walk back to the first keyframe")
    p.add_argument("--method", choices=sorted(INTERPOLATIONS), default=None, help="latent interpolation (default slerp)")
    p.add_argument("--easing", choices=sorted(EASINGS), default=None, help="timing of each transition (default linear)")
    p.add_argument("--truncation", type=float, default=None, help="psi in [0, 1]; 1 = none (default)")
    p.add_argument("--scale", type=int, default=None, help=f"nearest-neighbour pixel scale 1..{MAX_PIXEL_SCALE} (default 1)")
    p.add_argument("--upscale", default=None, help="upscale each face 2x or 4x with an upscaler GAN before the pixel scale "
                                                   "(off, 2, 4; default off)")
    p.add_argument("--upscaler", default=None, help="upscaler in weights/ or a model folder (default: upscaler-x4, or the "
                                                    "weights folder's only upscaler; with --recipe: the recipe's)")
    p.add_argument("--recipe", default=None, help="reproduce a clip exactly from its recipe (.json, or a .mp4/.gif we wrote)")
    p.add_argument("--latent", default=None, help="a memory clip around a projected face (latent.npz from `project`)")
    p.add_argument("--edit", action="append", default=[], metavar="NAME=AMOUNT",
                   help="with --latent: a gentle edit reached mid-clip, e.g. age=+1.5 (needs the model's directions.json)")
    p.add_argument("--frames", type=int, default=48, help="with --latent: frames of the loop (default 48)")
    p.add_argument("--no-mark", action="store_true", help="with --latent: no visible SYNTHETIC mark")
    p.add_argument("--out", action="append", required=True, help="clip.mp4 or clip.gif (repeatable: one render, several files)")
    p.add_argument("--save-recipe", default=None, help="also write the recipe as JSON here")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true")


def cmd_video(a: argparse.Namespace) -> int:
    from .pipeline import FacePipeline
    from .upscale import check_factor
    from .video import (ClipSpec, check_frame_size, check_outputs, check_recipe_model, make_clip,
                        parse_keyframes, read_clip_recipe)

    check_outputs(a.out)
    factor = check_factor(a.upscale) if a.upscale is not None else None
    if a.latent:
        return _video_from_latent(a, factor or 1)
    if a.edit:
        raise ValueError("--edit works with --latent (a projected face)")
    spec_args = {"seeds": a.seeds, "frames_per_transition": a.frames_per_transition, "fps": a.fps, "loop": a.loop,
                 "method": a.method, "easing": a.easing, "truncation": a.truncation, "scale": a.scale}
    given = {k: v for k, v in spec_args.items() if v is not None}
    if a.recipe:
        if given or factor is not None:
            extra = [*given, *(["upscale"] if factor is not None else [])]
            raise ValueError(f"--recipe fixes the clip; drop {', '.join('--' + k.replace('_', '-') for k in extra)}")
        rpath = Path(a.recipe)
        if not rpath.is_file():
            raise FileNotFoundError(f"--recipe: no such file {rpath}")
        if rpath.suffix.lower() in (".mp4", ".gif"):
            recipe = read_clip_recipe(rpath)
        else:
            try:
                recipe = json.loads(rpath.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"--recipe {rpath} is not valid JSON: {e}") from None
        spec = ClipSpec.from_recipe(recipe)
        model = a.model or recipe.get("model")
        if not model:
            raise ValueError("the recipe names no model; pass --model")
    else:
        if a.model is None or a.seeds is None:
            raise ValueError("video needs --model and --seeds (or --recipe FILE.json)")
        given["seeds"] = parse_keyframes(a.seeds)
        spec, model, recipe = ClipSpec(**given), a.model, None
    pipe = FacePipeline.from_pretrained(model, device=a.device)
    if recipe is not None:
        check_recipe_model(pipe, recipe)
        factor = check_factor((recipe.get("upscale") or {}).get("factor", 1))
    factor = factor or 1
    check_frame_size(pipe.resolution, spec.scale, factor)
    upscaler = _video_upscaler(a, recipe, pipe.device) if factor > 1 else None
    print(json.dumps({"video": {"model": pipe.model.name, "path": str(pipe.model.path), **spec.params(),
                                "upscale": factor, "upscaler": upscaler.name if upscaler else None,
                                "n_frames": spec.n_frames, "duration_s": round(spec.duration, 3),
                                "size": pipe.resolution * factor * spec.scale, "out": a.out, "device": str(pipe.device)}},
                     indent=2))
    if a.dry_run:
        return 0
    recipe = make_clip(pipe, spec, a.out, upscaler=upscaler, factor=factor)
    if a.save_recipe:
        from .checkpoint import write_json_atomic

        write_json_atomic(recipe, a.save_recipe)
    print(f"wrote {', '.join(a.out)} ({spec.n_frames} frames, {spec.duration:.2f} s)"
          + (f" and recipe {a.save_recipe}" if a.save_recipe else ""))
    return 0


def _video_from_latent(a: argparse.Namespace, factor: int) -> int:
    """`video --latent latent.npz [--edit age=+1.5]`: a looping memory clip around a projected face."""
    from .edits import parse_edits
    from .memory import MemorySpec, memory_from_file

    if a.seeds or a.recipe:
        raise ValueError("--latent makes its own path: drop --seeds / --recipe")
    if not Path(a.latent).is_file():
        raise FileNotFoundError(f"--latent: no such file {a.latent}")
    spec = MemorySpec(frames=a.frames, fps=a.fps or 24, edit=parse_edits(a.edit), upscale=factor, mark=not a.no_mark)
    spec.validate()
    print(json.dumps({"video": {"latent": a.latent, "model": a.model, "frames": spec.frames, "fps": spec.fps,
                                "edit": spec.edit, "upscale": factor, "mark": spec.mark, "out": a.out}}, indent=2))
    if a.dry_run:
        return 0
    upscaler = _video_upscaler(a, None, "cpu") if factor > 1 else None
    from .pipeline import pick_device

    recipe = memory_from_file(a.latent, a.out, spec, model_name=a.model, device=str(pick_device(a.device)), upscaler=upscaler)
    if a.save_recipe:
        from .checkpoint import write_json_atomic

        write_json_atomic(recipe, a.save_recipe)
    print(f"wrote {', '.join(a.out)}")
    return 0


def _video_upscaler(a: argparse.Namespace, recipe: dict | None, device):
    """The upscaler of `video --upscale`: --upscaler, else the recipe's (checked against its weights hash), else the
    weights folder's default."""
    from . import registry
    from .upscale import Upscaler
    from .video import check_recipe_upscaler

    name = a.upscaler or (recipe or {}).get("upscale", {}).get("upscaler") or registry.default_upscaler()
    if name is None:
        raise ValueError("--upscale needs an upscaler: pass --upscaler NAME_OR_FOLDER or put one in the weights folder")
    up = Upscaler.from_pretrained(name, device=device)
    if recipe is not None:
        check_recipe_upscaler(up, recipe)
    return up


def add_project(sub: argparse._SubParsersAction) -> None:
    from .projection import DEFAULT_STEPS, MAX_STEPS, SPACES
    from .tuning import DEFAULT_TUNE_STEPS, MAX_TUNE_STEPS

    p = sub.add_parser("project", help="find the face in a photo in a generator's latent space (writes a latent .npz)")
    p.add_argument("photo", help="a photo with one face (PNG, JPEG, WebP, BMP, GIF: first frame)")
    p.add_argument("--model", required=True, help="generator name in weights/ or a model folder")
    p.add_argument("--out", required=True, help="latent .npz: the latent, its space, model name and weights hash (never the photo)")
    p.add_argument("--space", default="auto", choices=("auto",) + SPACES, help="auto: w+ for StyleGAN2, z otherwise")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimiser steps, 1..{MAX_STEPS}")
    p.add_argument("--seed", type=int, default=0, help="names the projection: same photo, model and seed, same latent")
    p.add_argument("--no-align", action="store_true", help="the photo is already a training-style crop: no face detection")
    p.add_argument("--save-reconstruction", default=None,
                   help="also write the reconstruction (PNG; not the photo): the tuned generator's when tuning")
    p.add_argument("--tune-steps", type=int, default=DEFAULT_TUNE_STEPS,
                   help=f"pivotal tuning of a private copy of the generator to the photo, 0..{MAX_TUNE_STEPS} steps "
                        "(0: off); the tuned copy is never saved, so only --save-memory/--save-reconstruction use it")
    p.add_argument("--save-memory", action="append", default=[], metavar="CLIP",
                   help="also write the memory clip (.mp4 or .gif; repeatable), rendered with the tuned generator")
    p.add_argument("--edit", action="append", default=[], metavar="NAME=AMOUNT",
                   help="with --save-memory: a gentle edit reached mid-clip, e.g. age=+1.5 (needs directions.json)")
    p.add_argument("--frames", type=int, default=48, help="with --save-memory: frames of the loop")
    p.add_argument("--fps", type=int, default=24, help="with --save-memory: frames per second")
    p.add_argument("--no-mark", action="store_true", help="with --save-memory: no visible SYNTHETIC mark")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--dry-run", action="store_true")


def cmd_project(a: argparse.Namespace) -> int:
    import time

    from .edits import parse_edits
    from .latent import check_seed
    from .memory import MemorySpec, memory_from_photo
    from .projection import ProjectionOptions, load_projection_model, project_photo, save_latent
    from .tuning import TuningOptions
    from .uploads import open_upload
    from .video import check_outputs

    opts = ProjectionOptions(steps=a.steps, seed=check_seed(a.seed), space=a.space)
    opts.validate()
    tuning = TuningOptions(steps=a.tune_steps)
    tuning.validate()
    if Path(a.out).suffix != ".npz":
        raise ValueError(f"--out must be a .npz file, got {a.out}")
    if a.save_reconstruction and Path(a.save_reconstruction).suffix.lower() != ".png":
        raise ValueError(f"--save-reconstruction must be a .png file, got {a.save_reconstruction}")
    spec = None
    if a.save_memory:
        check_outputs(a.save_memory)
        spec = MemorySpec(frames=a.frames, fps=a.fps, edit=parse_edits(a.edit), mark=not a.no_mark)
        spec.validate()
    elif a.edit:
        raise ValueError("--edit works with --save-memory (or with `video --latent`)")
    skip_tuning = bool(tuning.steps) and not (a.save_memory or a.save_reconstruction)
    if skip_tuning:
        tuning = TuningOptions(steps=0)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    image = open_upload(a.photo)
    model = load_projection_model(a.model, a.device)
    print(json.dumps({"project": {"model": model.name, "path": str(model.path), "photo_size": list(image.size),
                                  "align": not a.no_align, **dataclasses.asdict(opts), "discriminator": model.discriminator is not None,
                                  "tuning": dataclasses.asdict(tuning), "memory": a.save_memory,
                                  "edit": spec.edit if spec else {}, "out": a.out, "device": a.device}}, indent=2))
    if a.dry_run:
        return 0
    t0, last = time.perf_counter(), {}

    def progress(phase: str, frac: float, text: str) -> None:
        tenth = int(frac * 10)
        if last.get(phase) != tenth:
            last[phase] = tenth
            print(f"{text} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    from .data import to_uint8
    from .likeness import default_likeness

    likeness = default_likeness() if tuning.steps else None
    detector = None
    if not a.no_align:
        from .alignment import load_detector

        detector = load_detector("cpu")
    if a.save_memory:
        from .edits import load_directions

        res = memory_from_photo(model, image, spec, a.save_memory, projection=opts, tuning=tuning, align=not a.no_align,
                                detector=detector, likeness=likeness,
                                directions=load_directions(model) if spec.edit else None, progress=progress)
        projected, notices, recon, psnr = res.projected, res.notices, res.reconstruction, res.psnr
    else:
        projected = project_photo(model, image, opts, align=not a.no_align, detector=detector,
                                  progress=lambda step, total, loss: progress("project", step / total,
                                                                             f"projection step {step}/{total} loss {loss:.4f}"))
        notices, recon, psnr = projected.extra.get("notices", []), to_uint8(projected.image)[0], projected.psnr
        if tuning.steps:
            from .alignment import model_recipe
            from .projection import prepare_target
            from .tuning import tune

            target, _ = prepare_target(image, model, align=not a.no_align, detector=detector)
            tuned = tune(model.generator, projected.latent, projected.space, target, tuning,
                         discriminator=model.discriminator, likeness=likeness, recipe=model_recipe(model.card),
                         progress=lambda step, total, loss: progress("tune", step / total, f"tuning step {step}/{total}"))
            recon, psnr = to_uint8(tuned.image)[0], tuned.psnr
            del tuned, target
    del image
    if skip_tuning:
        notices = [*notices, "no tuning: the tuned generator is never saved, and neither --save-memory nor "
                             "--save-reconstruction asked for what it makes"]
    for note in notices:
        print(f"note: {note}", file=sys.stderr)
    save_latent(a.out, projected)
    if a.save_reconstruction:
        from .images import save_png

        save_png(recon, a.save_reconstruction, {"Description": "Synthetic image: a generator's reconstruction"
                                                               + (" (pivotal-tuned)" if tuning.steps else ""),
                                                "Software": "Deeply Good Fakes"})
    print(f"wrote {a.out} (space {projected.space}, projection PSNR {projected.psnr:.2f} dB"
          + (f", tuned PSNR {psnr:.2f} dB" if tuning.steps else "") + f", {time.perf_counter() - t0:.1f} s)"
          + (f" and {', '.join(a.save_memory)}" if a.save_memory else ""))
    return 0


def add_curves(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("curves", help="draw learning curves (face rate, C2ST) of training runs from their log.jsonl")
    p.add_argument("runs", nargs="+", metavar="RUN", help="training run folder (holds log.jsonl)")
    p.add_argument("--out", required=True, help="PNG to write, e.g. docs/learning-curves.png")
    p.add_argument("--json", default=None, help="also write the extracted series here")
    p.add_argument("--real-rate", type=float, default=None,
                   help="real faces' face rate at p>=0.999 (from `evaluate`): a dashed reference line")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT in pixels (default 450 per panel x 400)")
    p.add_argument("--dry-run", action="store_true")


def cmd_curves(a: argparse.Namespace) -> int:
    from .curves import check_runs, curves_json, default_size, panels, parse_size, plot_curves, read_run

    if Path(a.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {a.out}")
    if a.real_rate is not None and not 0.0 <= a.real_rate <= 1.0:
        raise ValueError(f"--real-rate must be in [0, 1], got {a.real_rate}")
    runs = [read_run(r) for r in a.runs]
    warnings = check_runs(runs)
    kinds = panels(runs)
    size = parse_size(a.size) if a.size else default_size(len(kinds))
    print(json.dumps({"curves": {"runs": [{"run": str(r.path), "family": r.family, "step_records": len(r.steps),
                                           "eval_records": len(r.evals)} for r in runs],
                                 "panels": kinds, "real_rate": a.real_rate, "size": list(size), "out": a.out,
                                 "json": a.json}}, indent=2))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if a.dry_run:
        return 0
    plot_curves(runs, a.out, real_rate=a.real_rate, size=size)
    if a.json:
        from .checkpoint import write_json_atomic

        write_json_atomic(curves_json(runs, real_rate=a.real_rate), a.json)
    print(f"wrote {a.out}" + (f" and {a.json}" if a.json else ""))
    return 0


COMMANDS = {
    "pack": (add_pack, cmd_pack),
    "train": (add_train, cmd_train),
    "generate": (add_generate, cmd_generate),
    "video": (add_video, cmd_video),
    "evaluate": (add_evaluate, cmd_evaluate),
    "bench": (add_bench, cmd_bench),
    "upscale": (add_upscale, cmd_upscale),
    "train-upscaler": (add_train_upscaler, cmd_train_upscaler),
    "evaluate-upscaler": (add_evaluate_upscaler, cmd_evaluate_upscaler),
    "import-rosinality": (add_import_rosinality, cmd_import_rosinality),
    "project": (add_project, cmd_project),
    "curves": (add_curves, cmd_curves),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dgf_core", description="Deeply Good Fakes: train, sample, evaluate, benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    a = parser.parse_args(argv)
    a.argv = list(argv)
    try:
        return COMMANDS[a.command][1](a)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
