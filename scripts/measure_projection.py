"""Projection quality on held-out real faces: PSNR / SSIM of the reconstruction at the generator's resolution.

    nice -n 10 python scripts/measure_projection.py --model weights/dcgan-celeba64 \
        --data ../shared/data/celeba/img_align_celeba --n 12 --steps 200 --json runs-projection.json

Faces are the held-out split (data.is_heldout), spread evenly; each goes through the user path: the file is
opened with uploads.open_upload, aligned with MTCNN onto the model's canonical landmarks (or, with
--no-align, centre-cropped like the training data), then projected with the default options.
PSNR is on RGB 8-bit values, SSIM on the Y channel (dgf_core.evaluation.sr_metrics). Time is reported as wall seconds and
as this process's CPU seconds (with --threads 1, the time one free core would take).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/measure_projection.py from anywhere
from dgf_core.checkpoint import load_model, write_json_atomic  # noqa: E402
from dgf_core.data import list_images, to_uint8  # noqa: E402
from dgf_core.faces.alignment import AlignmentError  # noqa: E402
from dgf_core.faces.projection import ProjectionOptions, prepare_target, project_model  # noqa: E402
from dgf_core.images import psnr, ssim  # noqa: E402
from dgf_core.serving.uploads import open_upload  # noqa: E402


def summary(xs: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(xs), 3), "std": round(statistics.pstdev(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--first", type=int, default=None, help="measure only the first K of the n faces (same faces as a full run)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--space", default="auto")
    p.add_argument("--fm-weight", type=float, default=ProjectionOptions.fm_weight)
    p.add_argument("--no-align", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--likeness", default=None, help="identity embedding folder (scripts/train_identity.py)")
    p.add_argument("--save-pairs", default=None, help="also write targets and reconstructions (uint8) to this .safetensors, "
                   "for later analysis (face images: keep it outside the repository)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    files = list_images(a.data, "heldout")
    files = files[:: max(1, len(files) // a.n)][: a.n][: a.first]
    out = {"data": a.data, "split": "heldout", "n_files": len(files), "align": not a.no_align, "steps": a.steps,
           "threads": a.threads, "command": "python " + " ".join(sys.argv), "models": {}}
    like = None
    if a.likeness:
        from dgf_core.faces.likeness import load_likeness

        like = load_likeness(a.likeness)
        out["likeness_baseline"] = like.card.get("heldout_verification")
    pairs = {}
    for name in a.model:
        model = load_model(name, with_discriminator=True)
        opts = ProjectionOptions(steps=a.steps, space=a.space, fm_weight=a.fm_weight)
        rows, failures = [], []
        for f in files:
            try:
                target, _ = prepare_target(open_upload(f), model, align=not a.no_align)
            except AlignmentError as e:
                failures.append({"file": f.name, "error": str(e)})
                continue
            c0 = time.process_time()
            res = project_model(model, target, opts)
            cpu = time.process_time() - c0
            rec, tgt = to_uint8(res.image), to_uint8(target)
            pairs.setdefault(f"{model.name}.target", []).append(tgt)
            pairs.setdefault(f"{model.name}.reconstruction", []).append(rec)
            rows.append({"file": f.name, "psnr": float(psnr(rec, tgt, channel="rgb")[0]), "ssim": float(ssim(rec, tgt)[0]),
                         "seconds": res.seconds, "cpu_seconds": cpu, "space": res.space})
            if like is not None:
                from dgf_core.faces.alignment import model_recipe

                rows[-1]["likeness"] = float(like(res.image, target, model_recipe(model.card))[0])
            print(f"{name} {f.name}: PSNR {rows[-1]['psnr']:.2f} dB SSIM {rows[-1]['ssim']:.3f} ({res.seconds:.1f} s)", flush=True)
        out["models"][model.name] = {
            "path": str(model.path), "weights_sha256": model.weights_sha256, "space": rows[0]["space"] if rows else None,
            "options": vars(opts), "psnr_db": summary([r["psnr"] for r in rows]), "ssim": summary([r["ssim"] for r in rows]),
            "seconds_per_face": summary([r["seconds"] for r in rows]),
            "cpu_seconds_per_face": summary([r["cpu_seconds"] for r in rows]), "n": len(rows), "alignment_failures": failures,
            "likeness": summary([r["likeness"] for r in rows]) if like is not None and rows else None,
            "faces": rows,
        }
    if a.save_pairs:
        from safetensors.torch import save_file

        save_file({k: torch.cat(v) for k, v in pairs.items()}, a.save_pairs)
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        write_json_atomic(out, a.json)


if __name__ == "__main__":
    main()
