"""A strip of photo memories coming alive: per row a stand-in photo, then frames of its `look-around`, `smile` and
`blink` clips (render photo), and a looping GIF of the first row's `alive,look-around` clip.

    python scripts/motion_strip.py --model stylegan2-celeba64 --out docs/motion-strip.png --gif docs/motion-alive.gif

Columns: the photo; the head turned one way and the other (look-around), the smile and the blink at their fullest.

Real photos (CelebA, UTKFace) may not be committed (data licences, privacy), so the photos here are *stand-ins*, as
in scripts/memory_grid.py: the model's own faces for seeds, enlarged x4 by the upscaler to 256 px and softened, so
that the 64-px model does not hold them exactly; the first seed from --seeds whose face the age classifier reads at
--old-age or more leads, so that the strip shows an older person. Each goes the user's way: MTCNN alignment,
projection, pivotal tuning with the default options, then `memory_frames` at the photo's 256 px.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.checkpoint import default_weights_dir  # noqa: E402
from dgf_core.faces.alignment import load_detector, model_recipe  # noqa: E402
from dgf_core.faces.edits import load_classifier  # noqa: E402
from dgf_core.faces.likeness import default_likeness  # noqa: E402
from dgf_core.faces.memory import MemorySpec, PhotoFrame, memory_frames, motion_directions  # noqa: E402
from dgf_core.faces.projection import ProjectionOptions, aligned_target, load_projection_model, project_model  # noqa: E402
from dgf_core.faces.tuning import TuningOptions, tune  # noqa: E402
from dgf_core.generation.upscale import Upscaler  # noqa: E402
from dgf_core.generation.video import write_clip  # noqa: E402
from dgf_core.data import to_uint8  # noqa: E402
from dgf_core.latent import seeds_to_z, synthesize  # noqa: E402

FRAMES, FPS = 96, 24


def moments() -> list[tuple[str, int]]:
    """(motion, frame) the strip shows: the head turned each way, the smile and the blink at their fullest."""
    from dgf_core.generation.motion import motion_curves

    yaw = motion_curves("look-around", FRAMES, FPS)["yaw"]
    return [("look-around", int(np.argmin(yaw))), ("look-around", int(np.argmax(yaw))),
            ("smile", int(np.argmax(motion_curves("smile", FRAMES, FPS)["smile"]))),
            ("blink", int(np.argmax(motion_curves("blink", FRAMES, FPS)["eyes"])))]


def stand_ins(model, upscaler, classifier, seeds: list[int], old_age: float, n: int) -> list[tuple[int, Image.Image]]:
    g = model.generator
    with torch.no_grad():
        w = g.mapped(seeds_to_z(seeds, model.config.z_dim), 0.7)  # typical faces (truncation 0.7)
        faces = synthesize(g, w, "w").clamp(-1, 1)
        ages = classifier.predict(faces, model_recipe(model.card))["age"].numpy()
    order = sorted(range(len(seeds)), key=lambda i: (ages[i] < old_age, i))[:n]  # an older face first
    big = upscaler.upscale(to_uint8(faces[order]), 4)
    return [(seeds[i], Image.fromarray(b.permute(1, 2, 0).numpy()).filter(ImageFilter.GaussianBlur(0.6)))
            for i, b in zip(order, big)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="stylegan2-celeba64")
    p.add_argument("--seeds", default="343,186,8", help="candidates; those read at --old-age or more lead")
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--old-age", type=float, default=55.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--gif", default=None)
    p.add_argument("--gif-side", type=int, default=192)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_projection_model(a.model, "cpu")
    recipe = model_recipe(model.card)
    upscaler = Upscaler.from_pretrained("upscaler-x4")
    classifier = load_classifier(default_weights_dir() / "attributes-utkface")
    detector, like = load_detector("cpu"), default_likeness()
    rows = []
    for k, (seed, photo) in enumerate(stand_ins(model, upscaler, classifier, [int(s) for s in a.seeds.split(",")],
                                                a.old_age, a.rows)):
        print(f"seed {seed} ...", flush=True)
        target, _, to_crop = aligned_target(photo, model, detector=detector)
        proj = project_model(model, target, ProjectionOptions())
        tuned = tune(model.generator, proj.latent, proj.space, target, TuningOptions(), discriminator=model.discriminator,
                     likeness=like, recipe=recipe)
        frame = PhotoFrame.from_photo(photo, to_crop, recipe)
        cells, clips = [frame.canvas], {}
        for motion, i in moments():
            if motion not in clips:
                spec = MemorySpec(frames=FRAMES, fps=FPS, mark=False, motion=motion, render="photo")
                dirs, extents = motion_directions(model, spec, None)
                clips[motion] = memory_frames(model, proj.latent, proj.space, spec, directions=dirs, extents=extents,
                                              generator=tuned.generator, photo=frame)
            cells.append(clips[motion][i])
        rows.append(np.concatenate(cells, 1))
        if k == 0 and a.gif:
            spec = MemorySpec(frames=FRAMES, fps=FPS, mark=True, motion="alive,look-around", render="photo")
            dirs, extents = motion_directions(model, spec, None)
            clip = memory_frames(model, proj.latent, proj.space, spec, directions=dirs, extents=extents,
                                 generator=tuned.generator, photo=frame)
            small = np.stack([np.asarray(Image.fromarray(f).resize((a.gif_side, a.gif_side), Image.Resampling.LANCZOS))
                              for f in clip[::3]])  # 8 fps, smaller: a README-sized GIF
            write_clip(small, a.gif, FPS // 3, {"synthetic": True, "kind": "memory", "model": model.name,
                                                "motion": spec.motion, "note": "stand-in photo: scripts/motion_strip.py"})
    Image.fromarray(np.concatenate(rows, 0)).save(a.out, optimize=True)
    print(f"wrote {a.out}" + (f" and {a.gif}" if a.gif else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
