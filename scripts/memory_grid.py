"""A grid of photo | projection | tuned | edited (age -1.5, +1.5) rows, the steps of a memory from a photo.

    python scripts/memory_grid.py --model dcgan-celeba64 --photo a.jpg --photo b.jpg --out grid.png   # your photos
    python scripts/memory_grid.py --model dcgan-celeba64 --stand-in-seeds 3,11,27 --out docs/memory-grid.png

Real photos of people (CelebA, UTKFace) are not committed to this repository (data licences, privacy), and a tuned
reconstruction is close to a copy of its photo, so the README's grid uses *stand-ins*: the model's own faces for
the given seeds, moved off its range (shifted 3 px, colour-jittered, smooth noise added) so that projection cannot
reach them exactly. Each row runs the same path as the app (`faces.memory`'s pieces: alignment is skipped for
stand-ins, which are already crops), with the default projection and tuning options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.data import to_uint8  # noqa: E402
from dgf_core.faces.alignment import model_recipe  # noqa: E402
from dgf_core.faces.edits import apply_edits, load_directions  # noqa: E402
from dgf_core.faces.likeness import default_likeness  # noqa: E402
from dgf_core.faces.projection import ProjectionOptions, load_projection_model, prepare_target, project_model  # noqa: E402
from dgf_core.faces.tuning import TuningOptions, tune  # noqa: E402
from dgf_core.images import make_grid, save_png  # noqa: E402
from dgf_core.latent import seeds_to_z, synthesize  # noqa: E402
from dgf_core.serving.uploads import open_upload  # noqa: E402


def stand_in(model, seed: int) -> torch.Tensor:
    """The model's face for `seed`, moved off its range: (1, 3, R, R) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        face = synthesize(model.generator, seeds_to_z([seed], model.config.z_dim), "z") if not hasattr(
            model.generator, "mapped") else model.generator.truncated(seeds_to_z([seed], model.config.z_dim), 1.0)
    face = torch.roll(face, shifts=(3, -2), dims=(2, 3))
    jitter = (torch.rand(1, 3, 1, 1, generator=g) - 0.5) * 0.3
    smooth = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8, generator=g), size=face.shape[-2:], mode="bilinear")
    return (face + jitter + 0.12 * smooth).clamp(-1, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--photo", action="append", default=[], help="a photo with one face (aligned with MTCNN)")
    p.add_argument("--stand-in-seeds", default="", help="comma-separated seeds of stand-in faces")
    p.add_argument("--age", type=float, default=1.5)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    model = load_projection_model(a.model)
    like = default_likeness()
    recipe = model_recipe(model.card)
    directions = load_directions(model)
    targets = [prepare_target(open_upload(f), model, align=True)[0] for f in a.photo]
    targets += [stand_in(model, int(s)) for s in a.stand_in_seeds.split(",") if s.strip()]
    if not targets:
        sys.exit("give --photo or --stand-in-seeds")
    tiles = []
    for t in targets:
        proj = project_model(model, t, ProjectionOptions())
        tuned = tune(model.generator, proj.latent, proj.space, t, TuningOptions(), discriminator=model.discriminator,
                     likeness=like, recipe=recipe)
        with torch.no_grad():
            edits = [synthesize(tuned.generator, apply_edits(proj.latent, proj.space, directions, {"age": s * a.age}),
                                proj.space).clamp(-1, 1) for s in (-1, 1)]
        tiles += [to_uint8(x)[0] for x in (t, proj.image, tuned.image, *edits)]
        print(f"projection {proj.psnr:.1f} dB -> tuned {tuned.psnr:.1f} dB", flush=True)
    grid = make_grid(torch.stack(tiles), nrow=5)
    save_png(grid, a.out, {"Description": "photo (or stand-in) | projection | tuned | age -/+ "
                                          f"{a.age}: synthetic images, made by {' '.join(sys.argv)}"})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
