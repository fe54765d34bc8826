"""Measure the canonical landmarks of a training crop recipe and store them in dgf_core/canonical_landmarks.json.

    nice -n 10 python scripts/measure_canonical_landmarks.py --data ../shared/data/celeba/img_align_celeba --n 500

The recipe is data.center_crop_resize (shorter side -> crop side, centre square), the DCGAN/StyleGAN2
preprocessing. Images are taken evenly spread over the training split (held-out files excluded).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/measure_canonical_landmarks.py from anywhere
from dgf_core.data import list_images  # noqa: E402
from dgf_core.faces.alignment import (  # noqa: E402
    DEFAULT_RECIPE,
    measure_canonical_landmarks,
    save_canonical,
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument("--description", default="data.center_crop_resize of CelebA img_align_celeba (178x218): "
                   "shorter side to R, centre R x R crop; the DCGAN and StyleGAN2 64x64 recipe")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    files = list_images(a.data, "train")
    step = max(1, len(files) // a.n)
    files = files[::step][: a.n]
    t0 = time.time()
    entry = measure_canonical_landmarks(files)
    entry.update(description=a.description, data=a.data, seconds=round(time.time() - t0, 1))
    save_canonical(a.recipe, entry)
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
