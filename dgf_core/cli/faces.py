"""Commands on photos of faces: `project` (photo -> latent, optionally tuned, optionally a memory clip)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_device, add_dry_run, add_seed, add_threads, set_threads

if TYPE_CHECKING:  # the command imports them when it runs, so that `--help` stays fast
    from ..faces.memory import MemorySpec
    from ..faces.projection import ProjectionOptions
    from ..faces.tuning import TuningOptions
    from ..generation.audio import Recording


def add_project(sub: argparse._SubParsersAction) -> None:
    from ..faces.projection import DEFAULT_STEPS, MAX_STEPS, SPACES
    from ..faces.memory import RENDERS
    from ..faces.tuning import MAX_TUNE_STEPS, SPACE_DEFAULTS
    from ..generation.motion import KNOWN

    p = sub.add_parser("project", help="find the face in a photo in a generator's latent space (writes a latent .npz)")
    p.add_argument("photo", help="a photo with one face (PNG, JPEG, WebP, BMP, GIF: first frame)")
    p.add_argument("--model", required=True, help="generator name in weights/ or a model folder")
    p.add_argument("--out", required=True, help="latent .npz: the latent, its space, model name and weights hash (never the photo)")
    p.add_argument("--space", default="auto", choices=("auto",) + SPACES, help="auto: w+ for StyleGAN2, z otherwise")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimiser steps, 1..{MAX_STEPS}")
    add_seed(p, help="names the projection: same photo, model and seed, same latent")
    p.add_argument("--no-align", action="store_true", help="the photo is already a training-style crop: no face detection")
    p.add_argument("--save-reconstruction", default=None,
                   help="also write the reconstruction (PNG; not the photo): the tuned generator's when tuning")
    p.add_argument("--tune-steps", type=int, default=None,
                   help=f"pivotal tuning of a private copy of the generator to the photo, 0..{MAX_TUNE_STEPS} steps "
                        f"(0: off; default: the latent space's, {SPACE_DEFAULTS['z']['steps']} for z, "
                        f"{SPACE_DEFAULTS['w+']['steps']} for w/w+); the tuned copy is never saved, so only "
                        "--save-memory/--save-reconstruction use it")
    p.add_argument("--save-memory", action="append", default=[], metavar="CLIP",
                   help="also write the memory clip (.mp4 or .gif; repeatable), rendered with the tuned generator")
    p.add_argument("--edit", action="append", default=[], metavar="NAME=AMOUNT",
                   help="with --save-memory: a gentle edit reached mid-clip, e.g. age=+1.5 (needs directions.json)")
    p.add_argument("--frames", type=int, default=48, help="with --save-memory: frames of the loop")
    p.add_argument("--fps", type=int, default=24, help="with --save-memory: frames per second")
    p.add_argument("--no-mark", action="store_true", help="with --save-memory: no visible SYNTHETIC mark")
    p.add_argument("--motion", default=None, metavar="NAME[,NAME...]",
                   help=f"with --save-memory: how the face moves ({', '.join(KNOWN)}; composable, e.g. smile,blink; "
                        "default: drift, today's small walk); see docs/motion.md")
    p.add_argument("--render", default="photo", choices=RENDERS,
                   help="with --save-memory: photo (default): the photo itself at its resolution (up to 1024 px), moved "
                        "by the generator; model: the generator's frames")
    p.add_argument("--voice", default=None, metavar="RECORDING",
                   help="with --save-memory: the person's own recording (WAV, MP3, M4A, OGG, FLAC, WebM; up to 60 s): "
                        "the clip lasts as long, the MP4 carries it as sound, the mouth follows it; needs --voice-consent")
    p.add_argument("--voice-consent", action="store_true",
                   help="with --voice: I have the right to use this recording")
    p.add_argument("--no-mouth-follow", action="store_true",
                   help="with --voice: keep the mouth as the motion moves it (default: it follows the voice)")
    add_device(p, default="cpu")
    add_threads(p)
    add_dry_run(p)


@dataclasses.dataclass
class _ProjectPlan:
    """What `project` will do, checked before any slow work: the projection and tuning options, the memory clip's
    spec (None without --save-memory), the decoded recording (None without --voice) and whether tuning is skipped
    because nothing would use the tuned generator."""
    opts: ProjectionOptions
    tuning: TuningOptions
    spec: MemorySpec | None
    voice: Recording | None
    skip_tuning: bool


def _check_project_options(a: argparse.Namespace) -> _ProjectPlan:
    """Validate every option (the recording is decoded here too) before the photo or the model is read."""
    from ..faces.edits import parse_edits
    from ..faces.memory import MemorySpec
    from ..faces.projection import ProjectionOptions
    from ..faces.tuning import TuningOptions
    from ..generation.video import check_outputs
    from ..latent import check_seed

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
        spec = MemorySpec(frames=a.frames, fps=a.fps, edit=parse_edits(a.edit), mark=not a.no_mark,
                          motion=a.motion or "", render=a.render)
        spec.validate()
    elif a.edit or a.motion or a.voice:
        raise ValueError(f"--{'edit' if a.edit else 'motion' if a.motion else 'voice'} works with --save-memory"
                         + ("" if a.voice else " (or with `video --latent`)"))
    voice = None
    if a.voice:
        from ..generation.audio import load_recording
        from ..faces.memory import voice_spec

        if not a.voice_consent:
            raise ValueError("--voice needs --voice-consent: confirm that you have the right to use this recording")
        voice = load_recording(a.voice)  # checked and decoded before any slow work; held in memory only
        spec = voice_spec(spec, voice)
        if not any(str(o).lower().endswith(".mp4") for o in a.save_memory):
            print("note: a GIF has no sound: the recording is heard only in an .mp4 clip", file=sys.stderr)
    skip_tuning = tuning.steps != 0 and not (a.save_memory or a.save_reconstruction)
    if skip_tuning:
        tuning = TuningOptions(steps=0)
    return _ProjectPlan(opts, tuning, spec, voice, skip_tuning)


def _print_project_config(a: argparse.Namespace, plan: _ProjectPlan, model, image) -> None:
    """The resolved configuration, as JSON on stdout (also what --dry-run shows)."""
    spec, voice = plan.spec, plan.voice
    print(json.dumps({"project": {"model": model.name, "path": str(model.path), "photo_size": list(image.size),
                                  "align": not a.no_align, **dataclasses.asdict(plan.opts),
                                  "discriminator": model.discriminator is not None,
                                  "tuning": dataclasses.asdict(plan.tuning), "memory": a.save_memory,
                                  "edit": spec.edit if spec else {}, "motion": spec.motion if spec else "",
                                  "render": spec.render if spec else None,
                                  "voice_seconds": round(voice.seconds, 2) if voice else None,
                                  "mouth_follows_voice": bool(voice) and not a.no_mouth_follow,
                                  "out": a.out, "device": a.device}}, indent=2))


def _progress_printer(t0: float):
    """progress(phase, fraction, text): one line on stderr per tenth of each phase, with the seconds since t0."""
    import time

    last = {}

    def progress(phase: str, frac: float, text: str) -> None:
        tenth = int(frac * 10)
        if last.get(phase) != tenth:
            last[phase] = tenth
            print(f"{text} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    return progress


def _run_project(a: argparse.Namespace, plan: _ProjectPlan, model, image, progress):
    """Project the photo (tuned when asked; the memory clip too with --save-memory): one core call ->
    (projected, notices, reconstruction uint8 (3, H, W), its PSNR)."""
    from ..data import to_uint8
    from ..faces.likeness import default_likeness
    from ..faces.memory import memory_from_photo

    opts, tuning, spec = plan.opts, plan.tuning, plan.spec
    likeness = default_likeness() if tuning.steps else None
    detector = None
    if not a.no_align:
        from ..faces.alignment import load_detector

        detector = load_detector("cpu")
    if a.save_memory:
        res = memory_from_photo(model, image, spec, a.save_memory, projection=opts, tuning=tuning, align=not a.no_align,
                                detector=detector, likeness=likeness, render=spec.render, progress=progress,
                                voice=plan.voice, mouth_follows_voice=not a.no_mouth_follow)
        return res.projected, res.notices, res.reconstruction, res.psnr
    from ..faces.projection import prepare_target, project_model

    target, notices = prepare_target(image, model, align=not a.no_align, detector=detector)  # aligned once
    projected = project_model(model, target, opts, progress=lambda step, total, loss: progress(
        "project", step / total, f"projection step {step}/{total} loss {loss:.4f}"))
    recon, psnr = to_uint8(projected.image)[0], projected.psnr
    if tuning.steps:
        from ..faces.alignment import model_recipe
        from ..faces.tuning import tune

        tuned = tune(model.generator, projected.latent, projected.space, target, tuning,
                     discriminator=model.discriminator, likeness=likeness, recipe=model_recipe(model.card),
                     progress=lambda step, total, loss: progress("tune", step / total, f"tuning step {step}/{total}"))
        recon, psnr = to_uint8(tuned.image)[0], tuned.psnr
        del tuned
    del target
    return projected, notices, recon, psnr


def _write_project_outputs(a: argparse.Namespace, plan: _ProjectPlan, projected, recon, psnr, t0: float) -> None:
    """The latent .npz, the reconstruction PNG when asked, and the one-line summary (seconds since t0)."""
    import time

    from ..faces.projection import save_latent

    save_latent(a.out, projected)
    if a.save_reconstruction:
        from ..images import save_png

        save_png(recon, a.save_reconstruction, {"Description": "Synthetic image: a generator's reconstruction"
                                                               + (" (pivotal-tuned)" if plan.tuning.steps else ""),
                                                "Software": "Deeply Good Fakes"})
    print(f"wrote {a.out} (space {projected.space}, projection PSNR {projected.psnr:.2f} dB"
          + (f", tuned PSNR {psnr:.2f} dB" if plan.tuning.steps else "") + f", {time.perf_counter() - t0:.1f} s)"
          + (f" and {', '.join(a.save_memory)}" if a.save_memory else ""))


def cmd_project(a: argparse.Namespace) -> int:
    """Check the options, read the photo and the model, print the resolved configuration, then project (and tune,
    and make the memory clip) and write what was asked."""
    import time

    from ..faces.projection import load_projection_model, space_name
    from ..serving.uploads import open_upload

    plan = _check_project_options(a)
    set_threads(a.threads)
    image = open_upload(a.photo)
    model = load_projection_model(a.model, a.device)
    plan.tuning = plan.tuning.resolved(space_name(model.generator, plan.opts.space))  # the space's defaults, printed
    _print_project_config(a, plan, model, image)
    if a.dry_run:
        return 0
    t0 = time.perf_counter()
    projected, notices, recon, psnr = _run_project(a, plan, model, image, _progress_printer(t0))
    del image
    if plan.skip_tuning:
        notices = [*notices, "no tuning: the tuned generator is never saved, and neither --save-memory nor "
                             "--save-reconstruction asked for what it makes"]
    for note in notices:
        print(f"note: {note}", file=sys.stderr)
    _write_project_outputs(a, plan, projected, recon, psnr, t0)
    return 0
