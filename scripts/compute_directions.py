"""Learn the age / gender edit directions of a generator and store them beside it (directions.json).

    nice -n 10 python scripts/compute_directions.py --model weights/dcgan-celeba64 --classifier weights/attributes-utkface

Labels n generated samples with the UTKFace attribute classifier, fits the InterFaceGAN boundaries, then
measures what one unit of each edit does on other samples (age change in years, female-probability change,
RMS pixel change) and stores that in the file too.

With --motions, adds the motion directions (smile, mouth_open, eyes, yaw, pitch; dgf_core/faces/motion_directions.py)
to the model's existing directions.json, keeping its age / gender entries:

    nice -n 10 python scripts/compute_directions.py --model weights/stylegan2-celeba64 --motions all

Each kept motion holds vector, motion_amount, effects (per unit) and method; the dropped ones and the measurements
go under the file's "motions" entry. See docs/motion-directions.md.
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
    p.add_argument("--motions", default=None, help="comma-separated motions, or 'all': add motion directions to the "
                   "existing directions.json instead of learning age / gender")
    p.add_argument("--celeba-classifier", default="weights/attributes-celeba")
    p.add_argument("--judge", default="weights/identity-celeba200-judge")
    p.add_argument("--n-eval", type=int, default=120, help="with --motions: samples each amount is measured on")
    p.add_argument("--ladder", default="0.25,0.5,1,1.5,2,3", help="with --motions: the positive amounts measured")
    p.add_argument("--attribute-filters", action="store_true",
                   help="with --motions: the head pose also orthogonal to the age and p(female) regression filters")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.motions:
        add_motions(a)
        return
    model = load_model(a.model)
    clf = load_classifier(a.classifier)
    table = compute_directions(model, clf, n=a.n, seed=a.seed, log=lambda m: print(m, flush=True))
    table["command"] = "python " + " ".join(sys.argv)
    out = Path(a.out) if a.out else Path(model.path) / DIRECTIONS_FILE
    old = json.loads(out.read_text()).get("directions", {}) if out.is_file() else {}
    gone = sorted(k for k in old if k not in table["directions"])
    if gone:  # motions are orthogonal to the old age / gender: they go with them
        print(f"note: {out} held {', '.join(gone)}, learnt against the previous age / gender directions; they are "
              "removed; add them again with --motions", flush=True)
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


def add_motions(a) -> None:
    import time

    from dgf_core.faces.likeness import load_likeness
    from dgf_core.faces.motion_directions import (
        MOTION_NAMES,
        compute_motion_directions,
        cosines,
        verification_failures,
        verify_motion,
    )

    names = list(MOTION_NAMES) if a.motions == "all" else [x.strip() for x in a.motions.split(",") if x.strip()]
    unknown = [x for x in names if x not in MOTION_NAMES]
    if unknown:
        raise SystemExit(f"unknown motions {unknown}; known: {', '.join(MOTION_NAMES)}")
    model = load_model(a.model)
    out = Path(a.out) if a.out else Path(model.path) / DIRECTIONS_FILE
    dirs = load_directions(model, out)  # the age / gender directions this file already holds, for these weights
    if "age" not in dirs or "gender" not in dirs:
        raise SystemExit(f"{out} has no age / gender directions; compute them first (without --motions)")
    table = json.loads(out.read_text())
    needs_celeba = any(x not in ("yaw", "pitch") for x in names)  # head pose needs landmarks only
    celeba = load_classifier(a.celeba_classifier) if needs_celeba else None
    utk, judge = load_classifier(a.classifier), load_likeness(a.judge)
    print(json.dumps({"model": a.model, "motions": names, "n": a.n, "n_eval": a.n_eval, "seed": a.seed, "out": str(out),
                      "celeba_classifier": a.celeba_classifier if needs_celeba else None, "judge": a.judge}), flush=True)
    t0 = time.perf_counter()
    try:
        ladder = tuple(float(x) for x in a.ladder.split(","))
    except ValueError:
        raise SystemExit(f"--ladder expects comma-separated amounts such as 0.5,1,2,3, got {a.ladder!r}") from None
    res = compute_motion_directions(model, celeba, utk, judge, dirs["age"], dirs["gender"], n=a.n, n_eval=a.n_eval,
                                    seed=a.seed, names=names, ladder=ladder, log=lambda m: print(m, flush=True),
                                    attribute_filters=a.attribute_filters)
    verified = {}
    for name, entry in list(res["directions"].items()):
        verified[name] = verify_motion(model, entry, name, celeba, utk, judge, n=a.n_eval, seed=a.seed + 2)
        print(f"{name} at motion_amount {entry['motion_amount']} on fresh samples: {verified[name]}", flush=True)
        broken = verification_failures(verified[name], res["identity_floor"])
        if broken:  # chosen on one set of samples, it does not hold on another: not kept
            res["dropped"][name] = {"reason": "at motion_amount on fresh samples " + "; ".join(broken),
                                    "effects": entry["effects"], "motion_amount": entry["motion_amount"],
                                    "measured": entry.get("measured")}
            del res["directions"][name]
    table = json.loads(out.read_text())  # again: another run may have added other motions meanwhile
    for name in names:
        table["directions"].pop(name, None)
    table["directions"].update(res["directions"])
    info = table.setdefault("motions", {"method": "dgf_core/faces/motion_directions.py; docs/motion-directions.md",
                                        "dropped": {}, "at_motion_amount_fresh_samples": {}, "runs": []})
    for name in names:
        info["dropped"].pop(name, None)
        info["at_motion_amount_fresh_samples"].pop(name, None)
    info["dropped"].update(res["dropped"])
    info["at_motion_amount_fresh_samples"].update(verified)
    info["kept"] = sorted(k for k in table["directions"] if k not in ("age", "gender"))
    info["cosines"] = cosines({k: torch.tensor(v["vector"]) for k, v in table["directions"].items()})
    for r in info["runs"]:  # an earlier run's record keeps the motions this run did not redo
        r["motions"] = [x for x in r["motions"] if x not in names]
    info["runs"] = [r for r in info["runs"] if r["motions"]] + [{
        "motions": names, "celeba_classifier_sha256": celeba.sha256 if celeba else None,
        "age_gender_classifier_sha256": utk.sha256, "judge_sha256": judge.sha256, "identity_floor": res["identity_floor"],
        "learning": res["learning"], "evaluation": res["evaluation"], "verification_seed": a.seed + 2,
        "seconds": round(time.perf_counter() - t0), "command": "python " + " ".join(sys.argv)}]
    save_directions(table, out)
    load_directions(model, out)
    print(json.dumps({k: {"motion_amount": v["motion_amount"], "effects": v["effects"]} for k, v in res["directions"].items()}, indent=1))
    print("dropped:", {k: v["reason"] for k, v in res["dropped"].items()})


if __name__ == "__main__":
    main()
