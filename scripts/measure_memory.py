"""Memory from a photo, measured: projection + pivotal tuning on held-out CelebA and UTKFace photos.

    nice -n 10 python scripts/measure_memory.py --model dcgan-celeba64 \
        --celeba ../shared/data/celeba --utkface ../shared/data/utkface --n 50 --json docs/results/memory-dcgan.json

Photos go through the user's path (`uploads.open_upload`, MTCNN alignment onto the model's crop recipe), then
`projection.project_model` (the pivot) and `tuning.tune` with the given options (the defaults unless changed).
Per photo: PSNR at the model's resolution for the projection and the tuned reconstruction; likeness, the identity
embedding's cosine (weights/identity-celeba200) between the reconstruction and the aligned photo, and the share
above its same-person threshold (the EER threshold on its card); the same after age edits of -1.5 and +1.5 (when
the model has directions.json); for CelebA photos also the cosine to *another* photo of the same person
(identity_CelebA.txt), so that likeness means the person, not a copy of one photo: CelebA photos are held-out
files of img_align_celeba_89x109 whose identities the embedding never saw and that have a second photo there.
Note: the default tuning uses the same identity embedding in its loss, so "likeness to this photo" is optimised
directly; the cosine to another photo of the same person, and every figure of the independent judge embedding
(--judge, weights/identity-celeba200-judge: another seed and width, never used by tuning; keys ending in _judge),
are the unbiased ones.
Edits after tuning: the attribute classifier's apparent-age difference between the age +1.5 and -1.5 edits, rendered
by the tuned and by the original generator (does the edit still show after tuning?).
Locality drift: `tuning.locality_drift`, the mean pixel change tuning made at 16 latents 0.6 of the typical distance
away from the pivot (in [0, 2] units; how far tuning leaked beyond the photo).
Time: CPU seconds of this process for projection + tuning (run with --threads 1: one free core).

--mix NAME=k:v,k:v compares tuning loss mixes on the same photos (e.g. pixels=identity_weight:0); the mixes share
each photo's projection (it is deterministic), so its CPU time is the first one's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/measure_memory.py from anywhere
from dgf_core.checkpoint import CheckpointError, default_weights_dir, write_json_atomic  # noqa: E402
from dgf_core.data import is_heldout, list_images  # noqa: E402
from dgf_core.faces.alignment import AlignmentError, model_recipe  # noqa: E402
from dgf_core.faces.edits import EditError, apply_edits, load_classifier, load_directions  # noqa: E402
from dgf_core.faces.likeness import default_likeness, load_likeness, read_identity_file  # noqa: E402
from dgf_core.faces.projection import (  # noqa: E402
    ProjectionOptions,
    load_projection_model,
    prepare_target,
    project_model,
    space_name,
)
from dgf_core.faces.tuning import TuningOptions, locality_drift, tune  # noqa: E402
from dgf_core.latent import synthesize  # noqa: E402
from dgf_core.serving.uploads import open_upload  # noqa: E402

_PIVOTS: dict = {}  # (model, photo, projection options) -> (projection result, its CPU seconds)
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TuningOptions)}


def summary(xs: list[float]) -> dict[str, float] | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"mean": round(statistics.fmean(xs), 4), "median": round(statistics.median(xs), 4),
            "min": round(min(xs), 4), "max": round(max(xs), 4), "n": len(xs)}


def share_above(xs: list[float], thr: float) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(x >= thr for x in xs) / len(xs), 4) if xs else None


def celeba_photos(root: Path, n: int, trained_ids: set[str]) -> list[tuple[Path, Path | None]]:
    """n held-out 89x109 CelebA files of identities the embedding did not train on, each with another photo of the
    same person (any split), evenly spread by name."""
    ids = read_identity_file(root / "identity_CelebA.txt")
    folder = root / "img_align_celeba_89x109"
    files = sorted(folder.iterdir())
    by_id: dict[int, list[Path]] = {}
    for f in files:
        if f.name in ids:
            by_id.setdefault(ids[f.name], []).append(f)
    cands = [f for f in files if is_heldout(f) and f.name in ids and str(ids[f.name]) not in trained_ids
             and len(by_id[ids[f.name]]) >= 2]
    picked = cands[:: max(1, len(cands) // n)][:n]
    return [(f, next(o for o in by_id[ids[f.name]] if o != f)) for f in picked]


def utkface_photos(root: Path, n: int) -> list[tuple[Path, None]]:
    files = list_images(root, "heldout")
    return [(f, None) for f in files[:: max(1, len(files) // n)][:n]]


def parse_mix(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition("=")
    kw = {}
    for part in filter(None, spec.split(",")):
        k, _, v = part.partition(":")
        kind = str(_FIELD_TYPES[k])  # "int | None", "float": the annotation (None: the latent space's default)
        kw[k] = int(v) if kind.startswith("int") else float(v)
    return name, kw


def measure(model, photos, tuning: TuningOptions, projection: ProjectionOptions, like, thr: float, edits: bool,
            log, judge=None, judge_thr: float | None = None) -> dict:
    """`like` is the identity embedding tuning optimizes; `judge`, when given, an independent one whose figures
    (suffix _judge) tuning cannot have optimized."""
    recipe = model_recipe(model.card)
    embedders = {"": like} if judge is None else {"": like, "_judge": judge}
    thresholds = {"": thr, "_judge": judge_thr}

    def cosines(row: dict, key: str, a: torch.Tensor, b: torch.Tensor) -> None:
        for suffix, emb in embedders.items():
            row[key + suffix] = round(float(emb(a, b, recipe)[0]), 4)
    try:
        classifier = load_classifier(default_weights_dir() / "attributes-utkface")
    except (CheckpointError, OSError):
        classifier = None
    directions = None
    if edits:
        try:
            directions = load_directions(model)
        except EditError:
            directions = None
    rows, failures = [], []
    for photo, other in photos:
        try:
            target, notices = prepare_target(open_upload(photo), model, align=True)
        except AlignmentError as e:
            failures.append({"file": photo.name, "error": str(e)})
            continue
        key = (model.name, photo.name, repr(projection))
        if key not in _PIVOTS:  # projection is deterministic: mixes compared on the same photos share it
            c0 = time.process_time()
            _PIVOTS[key] = (project_model(model, target, projection), time.process_time() - c0)
        proj, proj_cpu = _PIVOTS[key]
        c1 = time.process_time()
        c0 = c1 - proj_cpu
        tuned = tune(model.generator, proj.latent, proj.space, target, tuning, discriminator=model.discriminator,
                     likeness=like, recipe=recipe)
        c2 = time.process_time()
        row = {"file": photo.name, "psnr_projection": round(proj.psnr, 3), "psnr_tuned": round(tuned.psnr, 3),
               "cpu_seconds_projection": round(c1 - c0, 2), "cpu_seconds_tuning": round(c2 - c1, 2),
               "padded": any("cropped close to the face" in n for n in notices),
               "locality_drift": round(locality_drift(model.generator, tuned.generator, proj.latent, proj.space), 4)}
        if like is not None:
            cosines(row, "likeness_projection", proj.image, target)
            cosines(row, "likeness_tuned", tuned.image, target)
            if directions and "age" in directions:
                ages = {}
                with torch.no_grad():
                    for amount in (-1.5, 1.5):
                        lat = apply_edits(proj.latent, proj.space, directions, {"age": amount})
                        img = synthesize(tuned.generator, lat, proj.space).clamp(-1, 1)
                        cosines(row, f"likeness_age{amount:+.1f}", img, target)
                        if classifier is not None:  # does the edit still show after tuning? apparent age, both models
                            untuned = synthesize(model.generator, lat, proj.space).clamp(-1, 1)
                            ages[amount] = (float(classifier.predict(img, recipe)["age"][0]),
                                            float(classifier.predict(untuned, recipe)["age"][0]))
                if len(ages) == 2:
                    row["age_edit_years"] = {"tuned": round(ages[1.5][0] - ages[-1.5][0], 2),
                                             "untuned": round(ages[1.5][1] - ages[-1.5][1], 2)}
            if other is not None:
                try:
                    other_target, _ = prepare_target(open_upload(other), model, align=True)
                except AlignmentError:
                    other_target = None
                if other_target is not None:
                    for suffix in embedders:
                        o: dict = {}
                        for k, img in (("photo", target), ("projection", proj.image), ("tuned", tuned.image)):
                            cosines(o, k, img, other_target)
                        row["likeness_other_photo" + suffix] = {k: o[k + suffix] for k in ("photo", "projection", "tuned")}
        rows.append(row)
        log(f"{model.name} {photo.name}: PSNR {row['psnr_projection']:.1f} -> {row['psnr_tuned']:.1f} dB, likeness "
            f"{row.get('likeness_projection')} -> {row.get('likeness_tuned')} ({c2 - c0:.1f} s CPU)")
    col = lambda k: [r.get(k) for r in rows]  # noqa: E731
    likeness = {}
    for suffix in embedders:
        t = thresholds[suffix]
        other = [r["likeness_other_photo" + suffix] for r in rows if "likeness_other_photo" + suffix in r]
        likeness.update({
            "likeness_projection" + suffix: summary(col("likeness_projection" + suffix)),
            "likeness_tuned" + suffix: summary(col("likeness_tuned" + suffix)),
            "share_above_threshold" + suffix: {
                "threshold": t, "projection": share_above(col("likeness_projection" + suffix), t),
                "tuned": share_above(col("likeness_tuned" + suffix), t),
                "tuned_age-1.5": share_above(col("likeness_age-1.5" + suffix), t),
                "tuned_age+1.5": share_above(col("likeness_age+1.5" + suffix), t)},
            "likeness_to_another_photo_of_the_person" + suffix: {
                "n": len(other), "photo_vs_photo": summary([o["photo"] for o in other]),
                "projection": summary([o["projection"] for o in other]), "tuned": summary([o["tuned"] for o in other]),
                "share_above_threshold": {k: share_above([o[k] for o in other], t) for k in ("photo", "projection", "tuned")}},
        })
    return {
        "n": len(rows), "alignment_failures": failures, "padded": sum(r["padded"] for r in rows),
        "psnr_projection_db": summary(col("psnr_projection")), "psnr_tuned_db": summary(col("psnr_tuned")),
        **likeness,
        "age_edit_years_tuned": summary([r["age_edit_years"]["tuned"] for r in rows if "age_edit_years" in r]),
        "age_edit_years_untuned": summary([r["age_edit_years"]["untuned"] for r in rows if "age_edit_years" in r]),
        "locality_drift": summary(col("locality_drift")),
        "cpu_seconds_per_photo": summary([r["cpu_seconds_projection"] + r["cpu_seconds_tuning"] for r in rows]),
        "faces": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--celeba", default=None, help="CelebA root (identity_CelebA.txt, img_align_celeba_89x109/)")
    p.add_argument("--utkface", default=None, help="UTKFace folder")
    p.add_argument("--n", type=int, default=50, help="photos per data set")
    p.add_argument("--steps", type=int, default=ProjectionOptions.steps, help="projection steps")
    p.add_argument("--mix", action="append", default=[], metavar="NAME=k:v,...",
                   help="tuning options to compare (default: one mix, the defaults)")
    p.add_argument("--no-edits", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--judge", default="weights/identity-celeba200-judge",
                   help="independent identity embedding for unbiased likeness figures ('none' to skip)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    like = default_likeness()
    if like is None:
        sys.exit("needs weights/identity-celeba200 (the likeness model)")
    thr = float(like.card["heldout_verification"]["eer_threshold"])
    judge = judge_thr = None
    if a.judge != "none":
        judge = load_likeness(a.judge)
        judge_thr = float(judge.card["heldout_verification"]["eer_threshold"])
    trained_ids = set(map(str, like.card.get("identities", []))) or _embedding_identities(a.celeba)
    sets = {}
    if a.celeba:
        sets["celeba"] = celeba_photos(Path(a.celeba), a.n, trained_ids)
    if a.utkface:
        sets["utkface"] = utkface_photos(Path(a.utkface), a.n)
    mixes = [parse_mix(m) for m in a.mix] or [("default", {})]
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "python " + " ".join(sys.argv),
           "machine": {"cpu": "x86_64", "threads": a.threads, "torch": torch.__version__},
           "same_person_threshold": thr, "likeness_model": like.card.get("description", ""),
           **({"judge_threshold": judge_thr, "judge_model": judge.card.get("description", "")} if judge else {}),
           "results": {}}
    for name in a.model:
        model = load_projection_model(name)
        for mix, kw in mixes:
            tuning = TuningOptions(**kw)
            projection = ProjectionOptions(steps=a.steps)
            res = {"model": model.name, "weights_sha256": model.weights_sha256,
                   "tuning": dataclasses.asdict(tuning.resolved(space_name(model.generator, projection.space))),
                   "projection": dataclasses.asdict(projection)}
            for set_name, photos in sets.items():
                res[set_name] = measure(model, photos, tuning, projection, like, thr, not a.no_edits,
                                        lambda m: print(m, flush=True), judge, judge_thr)
            out["results"][f"{model.name}/{mix}"] = res
            if a.json:
                write_json_atomic(out, a.json)
    keys = ("n", "psnr_projection_db", "psnr_tuned_db", "share_above_threshold", "share_above_threshold_judge",
            "likeness_to_another_photo_of_the_person", "likeness_to_another_photo_of_the_person_judge",
            "locality_drift", "cpu_seconds_per_photo")
    summary_view = {k: {s: {m: v[s][m] for m in keys if m in v[s]}
                        for s in sets} for k, v in out["results"].items()}
    print(json.dumps(summary_view, indent=1))


def _embedding_identities(celeba: str | None) -> set[str]:
    """The identities of img_align_celeba (the embedding's training folder: 200 identities)."""
    if not celeba:
        return set()
    ids = read_identity_file(Path(celeba) / "identity_CelebA.txt")
    return {str(ids[f.name]) for f in (Path(celeba) / "img_align_celeba").iterdir() if f.name in ids}


if __name__ == "__main__":
    main()
