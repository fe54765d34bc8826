"""Learn the age / gender edit directions of a generator and store them beside it (directions.json).

    nice -n 10 python scripts/compute_directions.py --model weights/dcgan-celeba64 --classifier weights/attributes-utkface

Labels n generated samples with the UTKFace attribute classifier, fits the InterFaceGAN boundaries, then
measures what one unit of each edit does on other samples (age change in years, female-probability change,
RMS pixel change) and stores that in the file too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/compute_directions.py from anywhere
from dgf_core.checkpoint import load_model  # noqa: E402
from dgf_core.faces.edits import (  # noqa: E402
    DIRECTIONS_FILE,
    compute_directions,
    load_classifier,
    load_directions,
    measure_edit,
    save_directions,
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--classifier", default="weights/attributes-utkface")
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"default: <model folder>/{DIRECTIONS_FILE}")
    p.add_argument("--likeness", default=None, help="identity embedding folder: also measure likeness per unit of edit")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    clf = load_classifier(a.classifier)
    table = compute_directions(model, clf, n=a.n, seed=a.seed, log=lambda m: print(m, flush=True))
    table["command"] = "python " + " ".join(sys.argv)
    out = Path(a.out) if a.out else Path(model.path) / DIRECTIONS_FILE
    save_directions(table, out)
    dirs = load_directions(model, out)
    like = None
    if a.likeness:
        from dgf_core.faces.likeness import load_likeness

        like = load_likeness(a.likeness)
        table["likeness_baseline"] = like.card.get("heldout_verification")
    table["effect_per_unit"] = {f"{amt:+g}": measure_edit(model, clf, dirs, n=300, seed=a.seed + 1, amount=amt, likeness=like)
                                for amt in (1.0, -1.0, 2.0)}
    save_directions(table, out)
    print(json.dumps({k: v for k, v in table.items() if k != "directions"}, indent=1))


if __name__ == "__main__":
    main()
