"""Edit directions compared: the logistic boundary's normal ("filter", the method before 2026-12-03), its latent
pattern (covariance @ normal, what `faces.edits.compute_directions` uses now) and the plain class-mean
difference, each for the age attribute (oldest vs youngest third of 4,000 labelled samples), measured by
`faces.edits.measure_edit` (+1 unit = one standard deviation of sampled latents along the direction, 200 other
samples).

    python scripts/probe_directions.py weights/stylegan2-celeba64 weights/dcgan-celeba64 --json docs/results/edit-directions-probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.checkpoint import load_model, resolve_model_path  # noqa: E402
from dgf_core.faces import edits as E  # noqa: E402
from dgf_core.faces.alignment import model_recipe  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="generator folders or names")
    ap.add_argument("--n", type=int, default=4000, help="labelled samples for the fit")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clf = E.load_classifier(resolve_model_path(E.ATTRIBUTE_CLASSIFIER), "cpu")
    results = {}
    for name in args.models:
        m = load_model(name)
        g = m.generator
        space = "w" if hasattr(g, "synthesis") else "z"
        lat = E.sample_latents(g, space, args.n, 0, m.config.z_dim)
        pred = clf.predict(E._render(g, lat, space), model_recipe(m.card))
        lo, hi = pred["age"].quantile(1 / 3), pred["age"].quantile(2 / 3)
        sel = (pred["age"] <= lo) | (pred["age"] >= hi)
        normal = E.learn_direction(lat[sel], (pred["age"][sel] >= hi).long())
        pattern = E.pattern_direction(lat[sel], normal)
        diff = lat[pred["age"] >= hi].mean(0) - lat[pred["age"] <= lo].mean(0)
        diff = diff / diff.norm()
        res = {"model": m.name, "weights_sha256": m.weights_sha256, "space": space,
               "cos_normal_pattern": round(float(normal @ pattern), 4), "cos_pattern_mean_difference": round(float(pattern @ diff), 4)}
        for tag, d in (("normal", normal), ("pattern", pattern), ("mean_difference", diff)):
            std = float(((lat - lat.mean(0)) @ d).std())
            res[tag] = E.measure_edit(m, clf, {"age": d * std}, n=200, seed=1, amount=1.0)["age"]
            print(m.name, tag, res[tag], flush=True)
        results[m.name] = res
    if args.json:
        Path(args.json).write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                               "command": "python " + " ".join(sys.argv), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
