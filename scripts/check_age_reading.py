"""How far the age / gender classifier's reading moves when nothing about the face changes.

Two checks on held-out UTKFace photos (the instrument behind measure_motion.py's "age change"):
1. Alignment: each photo's aligned crop (its own MTCNN landmarks, the model's crop recipe, at the model's
   resolution or the classifier's native side when that is larger: `AttributeClassifier.native_side`) against the same
   crop shifted by 2% and 4% of its side, and zoomed by 3%. A face that moves inside a crop held fixed (frame 0's
   alignment, as measure_motion read it until 2026-12-07) is such a shift.
2. The floor of the re-aligned reading (measure_motion's `realigned_*`): each frame aligned by its own landmarks,
   the reading averaged over five crops shifted by 1.5%: the photo against three copies with imperceptible noise
   (Gaussian, sigma 2/255), which move MTCNN's landmarks and the classifier's input a little.

    python scripts/check_age_reading.py --utkface ../shared/data/utkface --n 120 --json docs/results/age-reading-....json
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import measure_motion as mm  # noqa: E402

from dgf_core.checkpoint import write_json_atomic  # noqa: E402
from dgf_core.data import parse_utkface_name  # noqa: E402
from dgf_core.faces.alignment import estimate_similarity, load_canonical  # noqa: E402


def stats(v) -> dict:
    v = np.abs(np.asarray(v, np.float64))
    return {"n": int(len(v)), "mean_abs": round(float(v.mean()), 2), "p90_abs": round(float(np.quantile(v, 0.9)), 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--utkface", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--model", default="stylegan2-celeba64", help="whose crop recipe and resolution the crops take")
    p.add_argument("--classifier", default=None, help="age / gender classifier folder (default: measure_motion's reader, weights/age-judge-utkface)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import cv2

    model = mm.load_projection_model(a.model, "cpu")
    recipe, res = mm.model_recipe(model.card), int(model.config.resolution)
    det = mm.load_detector("cpu")
    canon = load_canonical(recipe)
    clf_path = Path(a.classifier) if a.classifier else mm.default_age_reader()
    clf = mm.load_classifier(clf_path)
    side = mm.reading_side(clf, recipe, res)
    files = mm.list_images(Path(a.utkface), "heldout")
    files = files[:: max(1, len(files) // a.n)][: a.n]
    rng = np.random.default_rng(0)
    moved: dict[str, list[float]] = {}
    floor_age, floor_female, error = [], [], []
    for f in files:
        img = np.asarray(mm.open_upload(f).convert("RGB"))
        found = mm.frame_landmarks(img[None], det, every=1)
        if not found:
            continue
        m = estimate_similarity(found[0][1], canon * side)
        crops, names = [], []
        for name, dx, s in (("none", 0, 1), ("shift 2%", 0.02, 1), ("shift -2%", -0.02, 1), ("shift 4%", 0.04, 1),
                            ("shift -4%", -0.04, 1), ("zoom +3%", 0, 1.03), ("zoom -3%", 0, 0.97)):
            c = side / 2
            t = np.array([[s, 0, c - s * c + dx * side], [0, s, c - s * c]]) @ np.vstack([m, [0, 0, 1]])
            crops.append(cv2.warpAffine(img, t, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
            names.append(name)
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        with torch.no_grad():
            age = clf.predict(x, recipe)["age"].numpy()
        for name, v in zip(names[1:], age[1:]):
            moved.setdefault(name, []).append(float(v - age[0]))
        label = parse_utkface_name(f)
        if label is not None:
            error.append(float(age[0] - label.age))
        frames = np.stack([img] + [np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8) for _ in range(3)])
        found = mm.frame_landmarks(frames, det, every=1)
        if len(found) == len(frames):
            ra = mm.realigned_attributes(frames, found, canon, side, clf, recipe)
            floor_age += list(ra["age"][1:] - ra["age"][0])
            floor_female += list(ra["female"][1:] - ra["female"][0])
    out = {"what": "the age / gender classifier's reading under changes that are not the face's (scripts/check_age_reading.py)",
           "classifier": str(clf_path), "crop": {"recipe": recipe, "side": side},
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "args": vars(a),
           "age_error_years": {**stats(error), "bias": round(float(np.mean(error)), 2) if error else None,
                               "note": "the unshifted crop's reading minus UTKFace's label, on these held-out photos"},
           "fixed_crop_moved_age_years": {k: stats(v) for k, v in moved.items()},
           "realigned_floor": {"age_years": stats(floor_age), "female_prob": stats(floor_female),
                               "note": "each frame aligned by its own landmarks, mean over 5 crops shifted by 1.5%; the "
                                       "photo against 3 copies with Gaussian noise sigma 2/255"}}
    write_json_atomic(out, a.json)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
