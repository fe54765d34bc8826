"""Check the five-landmark head pose estimator (dgf_core/faces/pose.py) on faces whose pose is known, and write
docs/results/pose-check.json.

    nice -n 10 python scripts/check_pose.py --photos ../shared/data/celeba/img_align_celeba --n 200

1. Another face's shape: the five points of the Multi-PIE 68-point mean face (its eye centres, nose tip and mouth
   corners, whose proportions differ from the CelebA-based mean face the estimator fits), rotated by known yaw /
   pitch and projected: the error of the read-back angles.
2. Real photos (held-out files, data.is_heldout) against themselves: MTCNN's landmarks on each photo, on its mirror
   image (yaw and roll must flip sign, pitch stay) and on the photo turned 20 degrees in its plane (roll must change
   by 20 degrees, yaw and pitch stay).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/check_pose.py from anywhere
from dgf_core.checkpoint import write_json_atomic  # noqa: E402
from dgf_core.data import list_images  # noqa: E402
from dgf_core.faces.alignment import detect_faces, load_detector  # noqa: E402
from dgf_core.faces.pose import estimate_pose, project  # noqa: E402

# Multi-PIE 68-point mean face (hysts/pytorch_mpiigaze_demo face_model_68.py, metres; x right, y down, z away from
# the camera): eye centres = the mean of each eye's six points, the nose tip (30), the mouth corners (48, 54)
MULTIPIE_5 = np.array([[-0.032535, -0.033298, 0.035532], [0.032535, -0.033298, 0.035532], [0.0, 0.0, 0.0],
                       [-0.02847, 0.033316, 0.03668], [0.02847, 0.033316, 0.03668]])
ROLL_DEG = 20.0


def synthetic_check(rng: np.random.Generator) -> dict:
    face = MULTIPIE_5 / np.linalg.norm(MULTIPIE_5[1] - MULTIPIE_5[0]) * [1, 1, -1]  # z towards the camera
    angles = np.stack([rng.uniform(-30, 30, 500), rng.uniform(-20, 20, 500), np.zeros(500)], 1)
    err = estimate_pose(project(angles, face, scale=40.0)) - angles
    small = np.abs(angles[:, 0]) <= 15
    return {"n": 500, "range_deg": {"yaw": 30, "pitch": 20},
            "yaw_abs_error_mean": round(float(np.abs(err[:, 0]).mean()), 2), "yaw_abs_error_max": round(float(np.abs(err[:, 0]).max()), 2),
            "pitch_abs_error_mean": round(float(np.abs(err[:, 1]).mean()), 2), "pitch_abs_error_max": round(float(np.abs(err[:, 1]).max()), 2),
            "yaw_gain": round(float(np.polyfit(angles[:, 0], estimate_pose(project(angles, face, scale=40.0))[:, 0], 1)[0]), 3),
            "pitch_bias_mean": round(float(err[:, 1].mean()), 2), "yaw_abs_error_mean_within_15": round(float(np.abs(err[small, 0]).mean()), 2)}


def photo_pose(img: Image.Image, detector) -> np.ndarray:
    dets = detect_faces(img, detector)
    return estimate_pose(dets[0].landmarks) if dets else np.full(3, np.nan)


def photo_check(paths: list[Path], detector) -> dict:
    rows = []
    for p in paths:
        with Image.open(p) as im:
            img = im.convert("RGB")
        w, h = img.size
        turned = img.rotate(-ROLL_DEG, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))  # clockwise
        rows.append(np.concatenate([photo_pose(img, detector), photo_pose(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), detector),
                                    photo_pose(turned, detector)]))
    r = np.array(rows)
    r = r[np.isfinite(r).all(1)]
    base, mir, rot = r[:, :3], r[:, 3:6], r[:, 6:]
    mad = lambda x: round(float(np.abs(x).mean()), 2)  # noqa: E731
    return {"n_photos": len(paths), "n_found_in_all_three": len(r),
            "yaw_sd_deg": round(float(base[:, 0].std()), 2), "pitch_sd_deg": round(float(base[:, 1].std()), 2),
            "yaw_mean_deg": round(float(base[:, 0].mean()), 2), "pitch_mean_deg": round(float(base[:, 1].mean()), 2),
            "mirror": {"yaw_plus_mirror_yaw_abs_mean": mad(base[:, 0] + mir[:, 0]), "pitch_difference_abs_mean": mad(base[:, 1] - mir[:, 1]),
                       "yaw_correlation_with_minus_mirror": round(float(np.corrcoef(base[:, 0], -mir[:, 0])[0, 1]), 3)},
            f"turned_{ROLL_DEG:g}_deg_in_plane": {"roll_change_mean": round(float((rot[:, 2] - base[:, 2]).mean()), 2),
                                                  "yaw_difference_abs_mean": mad(rot[:, 0] - base[:, 0]),
                                                  "pitch_difference_abs_mean": mad(rot[:, 1] - base[:, 1])}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--photos", required=True, help="a folder of face photos (held-out files are used)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", default="docs/results/pose-check.json")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = list_images(a.photos, "heldout")[: a.n]
    out = {"synthetic_multipie_face": synthetic_check(np.random.default_rng(0)),
           "photos": {"folder": a.photos, **photo_check(paths, load_detector())}, "command": "python " + " ".join(sys.argv)}
    write_json_atomic(out, a.out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
