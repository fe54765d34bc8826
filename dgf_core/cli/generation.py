"""Commands that make images and clips: `generate`, `video`, `upscale`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_device, add_dry_run


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write one PNG per seed (and optionally a grid)")
    p.add_argument("--model", required=True, help="model name in weights/ or a model folder")
    p.add_argument("--seeds", required=True, help="e.g. 0-63 or 1,7,42")
    p.add_argument("--out", required=True, help="output folder: seed000042.png per seed")
    p.add_argument("--grid", default=None, help="also write all seeds as one grid PNG to this file (NAME.png)")
    p.add_argument("--truncation", type=float, default=1.0, help="psi in [0, 1]; 1 = none")
    p.add_argument("--mix-seed", type=int, default=None,
                   help="style mixing (StyleGAN2): fine styles from this seed, coarse styles from each --seeds seed")
    p.add_argument("--mix-crossover", type=int, default=4,
                   help="with --mix-seed: styles [0, K) come from the seed, the rest from --mix-seed (4 = 4x4-8x8 coarse)")
    add_device(p)
    p.add_argument("--batch-size", type=int, default=64)
    add_dry_run(p)


def cmd_generate(a: argparse.Namespace) -> int:
    from ..generation.pipeline import MAX_SEEDS_PER_CALL, FacePipeline
    from ..latent import check_seed, check_truncation, parse_seeds

    seeds = parse_seeds(a.seeds, max_count=100_000)
    if a.grid is not None and not a.grid.lower().endswith(".png"):
        raise ValueError(f"--grid is the grid's file name and must end in .png, got {a.grid!r} (e.g. --grid grid.png)")
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


def add_video(sub: argparse._SubParsersAction) -> None:
    from ..generation.video import (
        MAX_FPS,
        MAX_FRAMES,
        MAX_FRAMES_PER_TRANSITION,
        MAX_KEYFRAMES,
        MAX_PIXEL_SCALE,
        MAX_SIDE,
    )
    from ..generation.motion import KNOWN
    from ..latent import EASINGS, INTERPOLATIONS

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
    p.add_argument("--motion", default=None, metavar="NAME[,NAME...]",
                   help=f"with --latent: how the face moves ({', '.join(KNOWN)}; composable, e.g. smile,blink; default "
                        "drift); the model's frames (a latent file has no photo to render at its resolution)")
    p.add_argument("--out", action="append", required=True, help="clip.mp4 or clip.gif (repeatable: one render, several files)")
    p.add_argument("--save-recipe", default=None, help="also write the recipe as JSON here")
    add_device(p)
    add_dry_run(p)


def cmd_video(a: argparse.Namespace) -> int:
    from ..generation.pipeline import FacePipeline
    from ..generation.upscale import check_factor
    from ..generation.video import (
        ClipSpec,
        check_frame_size,
        check_outputs,
        check_recipe_model,
        make_clip,
        parse_keyframes,
        read_clip_recipe,
    )

    check_outputs(a.out)
    factor = check_factor(a.upscale) if a.upscale is not None else None
    if a.latent:
        return _video_from_latent(a, factor or 1)
    if a.edit or a.motion:
        raise ValueError(f"--{'edit' if a.edit else 'motion'} works with --latent (a projected face)")
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
        from ..checkpoint import write_json_atomic

        write_json_atomic(recipe, a.save_recipe)
    print(f"wrote {', '.join(a.out)} ({spec.n_frames} frames, {spec.duration:.2f} s)"
          + (f" and recipe {a.save_recipe}" if a.save_recipe else ""))
    return 0


def _video_from_latent(a: argparse.Namespace, factor: int) -> int:
    """`video --latent latent.npz [--edit age=+1.5]`: a looping memory clip around a projected face."""
    from ..faces.edits import parse_edits
    from ..faces.memory import MemorySpec, memory_from_file

    if a.seeds or a.recipe:
        raise ValueError("--latent makes its own path: drop --seeds / --recipe")
    if not Path(a.latent).is_file():
        raise FileNotFoundError(f"--latent: no such file {a.latent}")
    spec = MemorySpec(frames=a.frames, fps=a.fps or 24, edit=parse_edits(a.edit), upscale=factor, mark=not a.no_mark,
                      motion=a.motion or "")
    spec.validate()
    print(json.dumps({"video": {"latent": a.latent, "model": a.model, "frames": spec.frames, "fps": spec.fps,
                                "edit": spec.edit, "motion": spec.motion, "upscale": factor, "mark": spec.mark, "out": a.out}}, indent=2))
    if a.dry_run:
        return 0
    upscaler = _video_upscaler(a, None, "cpu") if factor > 1 else None
    from ..generation.pipeline import pick_device

    recipe = memory_from_file(a.latent, a.out, spec, model_name=a.model, device=str(pick_device(a.device)), upscaler=upscaler)
    if a.save_recipe:
        from ..checkpoint import write_json_atomic

        write_json_atomic(recipe, a.save_recipe)
    print(f"wrote {', '.join(a.out)}")
    return 0


def _video_upscaler(a: argparse.Namespace, recipe: dict | None, device):
    """The upscaler of `video --upscale`: --upscaler, else the recipe's (checked against its weights hash), else the
    weights folder's default."""
    from ..generation.upscale import Upscaler
    from ..generation.video import check_recipe_upscaler
    from ..serving import registry

    name = a.upscaler or (recipe or {}).get("upscale", {}).get("upscaler") or registry.default_upscaler()
    if name is None:
        raise ValueError("--upscale needs an upscaler: pass --upscaler NAME_OR_FOLDER or put one in the weights folder")
    up = Upscaler.from_pretrained(name, device=device)
    if recipe is not None:
        check_recipe_upscaler(up, recipe)
    return up


def add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale an image 2x or 4x with an upscaler model")
    p.add_argument("input", help="image file (PNG, JPEG, WebP, BMP, GIF: first frame); at most 512 px a side")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--model", default="upscaler-x4", help="upscaler in weights/, a model folder, or 'bicubic'")
    p.add_argument("--factor", default="4", help="2 or 4")
    p.add_argument("--detail", type=float, default=0.0,
                   help="0..1: 0 the PSNR (L1) weights, 1 the GAN end (sharper, invented texture), between: a blend "
                        "(network interpolation); above 0 needs a model with detail weights (default 0)")
    add_device(p, default="cpu")
    add_dry_run(p)


def cmd_upscale(a: argparse.Namespace) -> int:
    from ..generation.compare import upscaled_picture
    from ..generation.upscale import MAX_INPUT_SIDE, Upscaler, check_detail, check_factor, no_detail_message
    from ..serving.uploads import open_upload

    factor = check_factor(a.factor)
    detail = check_detail(a.detail)
    if factor == 1:
        raise ValueError("--factor must be 2 or 4")
    if Path(a.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {a.out}")
    image = open_upload(a.input)
    w, h = image.size
    if max(w, h) > MAX_INPUT_SIDE:
        raise ValueError(f"{a.input} is {w}x{h}; the upscaler takes at most {MAX_INPUT_SIDE} pixels a side")
    up = Upscaler.from_pretrained(a.model, device=a.device)
    if detail > 0 and not up.has_detail:
        raise ValueError(f"--detail {a.detail}: {no_detail_message(up.name)}")
    print(json.dumps({"upscale": {"model": up.name, "input": a.input, "size": [w, h], "factor": factor, "detail": detail,
                                  "output_size": [w * factor, h * factor], "out": a.out, "device": str(up.device)}}, indent=2))
    if a.dry_run:
        return 0
    upscaled_picture(up, image, factor, detail).save(a.out)  # as the app's Upscale tab: notice + recipe, never the file name
    print(f"wrote {a.out} ({w * factor}x{h * factor})")
    return 0
