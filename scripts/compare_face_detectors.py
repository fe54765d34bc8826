"""Compare face detectors for alignment on the same photos: detection rate, landmark error against today's detector
(facenet-pytorch's MTCNN), speed; and check that the face-rate metric is unchanged. Writes a JSON report.

    python scripts/compare_face_detectors.py --celeba ../shared/data/celeba/img_align_celeba \\
        --utkface ../shared/data/utkface --n 100 --scenes 30 [--opencv-path DIR] --out docs/results/face-detectors.json

Photos: the first n held-out files (dgf_core.data.is_heldout, sorted by name) of CelebA's img_align_celeba and of
UTKFace (200x200 chips: the face fills the frame), and `--scenes` compositions: other held-out CelebA photos, scaled
so the face is 40-200 px, pasted into 640x480 backgrounds (a blurred, enlarged photo), one or two per scene.

Every detector sees each photo the way alignment shows it one (`alignment.detect_faces`: shrunk to 1024 px, a 25%
grey border, faces with probability >= 0.9, the largest taken). Landmark error: the mean distance of the five
landmarks to facenet-pytorch's on the same photo, over facenet-pytorch's inter-ocular distance. Speed: seconds per
photo on one CPU thread (median), detection only.

Detectors: facenet-pytorch 2.6.0's MTCNN (needs `pip install --no-deps facenet-pytorch==2.6.0`), dgf_core.faces.mtcnn
(the port, weights/mtcnn), and OpenCV's Haar cascade when `--opencv-path` holds opencv-python-headless 4.x
(`pip install --no-deps --target DIR opencv-python-headless==4.12.0.88`; boxes only, no landmarks). YuNet
(cv2.FaceDetectorYN) is listed with why it could not be run: no wheel ships its ONNX model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dgf_core.data import is_heldout  # noqa: E402
from dgf_core.faces.alignment import (  # noqa: E402
    AlignmentError,
    Detection,
    align_face,
    detect_faces,
    load_canonical,
)
from dgf_core.faces.mtcnn import Faces, load_detector  # noqa: E402

YUNET_NOTE = ("not run: cv2.FaceDetectorYN needs face_detection_yunet_*.onnx, and no wheel on PyPI ships it. Checked "
              "(pip download, wheel contents): opencv-python-headless 4.12.0.88 (17 Haar cascades in cv2/data, no "
              "ONNX; requires numpy<2.3, which conflicts with numpy 2.4), opencv-python-headless 5.0.0.93 and "
              "opencv-contrib-python-headless 5.0.0.93 (cv2/data holds no model at all), and the YuNet wrappers "
              "detekface 0.1.0, alchemyface 1.2.0, unicorner-face-detector 0.1.0 and moca-face-matcher 0.2.2, all of "
              "which download the ONNX file from GitHub or Hugging Face at run time.")

CHOSEN = ("dgf_core.faces.mtcnn: the same detections and landmarks as today's detector (facenet-pytorch) on every photo and "
          "the same face-rate probabilities, at the same speed, installed by requirements.txt alone (weights/mtcnn). "
          "OpenCV's Haar cascade finds fewer faces and has no landmarks; YuNet cannot be installed without a download.")


def facenet_detector() -> Callable[[Any], list[Faces]]:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, select_largest=False, device=torch.device("cpu"))

    def run(image):
        boxes, probs, points = mtcnn.detect(image, landmarks=True)
        if boxes is None:
            return [Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))]
        return [Faces(np.asarray(boxes, np.float32), np.asarray(probs, np.float32), np.asarray(points, np.float32))]

    run.batch = lambda arr: [np.asarray([0.0] if p[0] is None else p, np.float64) for p in mtcnn.detect(arr)[1]]
    return run


def haar_detector(cv2) -> Callable[[Any], list[Faces]]:
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))

    def run(image):
        gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in found], np.float32).reshape(-1, 4)
        return [Faces(boxes, np.ones(len(boxes), np.float32), np.full((len(boxes), 5, 2), np.nan, np.float32))]

    return run


def held_out(folder: Path, n: int, skip: int = 0) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and is_heldout(p))
    return files[skip : skip + n]


def make_scenes(photos: list[Path], n: int, seed: int = 0) -> list[Image.Image]:
    """n 640x480 scenes: one or two CelebA photos (face 40-200 px wide) pasted into a blurred, enlarged photo."""
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(n):
        with Image.open(photos[(3 * i) % len(photos)]) as bg:
            canvas = bg.convert("RGB").resize((640, 480), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(12))
        for k in range(1 + (i % 3 == 0)):  # every third scene has two faces
            with Image.open(photos[(3 * i + 1 + k) % len(photos)]) as im:
                face_px = rng.uniform(40, 200) if k == 0 else rng.uniform(30, 60)
                f = face_px / 80.0  # img_align_celeba: the face is about 80 px wide in a 178 x 218 photo
                im = im.convert("RGB").resize((round(178 * f), round(218 * f)), Image.Resampling.LANCZOS)
            x = int(rng.integers(0, max(1, 640 - im.size[0])))
            y = int(rng.integers(0, max(1, 480 - im.size[1])))
            canvas.paste(im, (x, y))
        scenes.append(canvas)
    return scenes


def largest(dets: list[Detection]) -> Detection | None:
    return dets[0] if dets else None


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def summary(values: list[float], digits: int = 4) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), digits), "median": round(float(np.median(v)), digits),
            "p95": round(float(np.percentile(v, 95)), digits), "max": round(float(v.max()), digits), "n": len(v)}


def evaluate(sets: dict[str, list[Image.Image]], detectors: dict[str, Callable], reference: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for set_name, images in sets.items():
        found: dict[str, list[Detection | None]] = {name: [] for name in detectors}
        times: dict[str, list[float]] = {name: [] for name in detectors}
        names = list(detectors)
        for i, im in enumerate(images):  # detectors take turns on each photo, so a busy machine slows all alike
            for name in names[i % len(names):] + names[: i % len(names)]:
                t0 = time.perf_counter()
                found[name].append(largest(detect_faces(im, detectors[name])))
                times[name].append(time.perf_counter() - t0)
        res = {}
        for name in detectors:
            lm_err, box_iou, max_px = [], [], 0.0
            for d, r in zip(found[name], found[reference]):
                if d is None or r is None:
                    continue
                box_iou.append(iou(d.box, r.box))
                if np.isfinite(d.landmarks).all():
                    iod = float(np.linalg.norm(r.landmarks[1] - r.landmarks[0]))
                    lm_err.append(float(np.linalg.norm(d.landmarks - r.landmarks, axis=1).mean()) / iod)
                    max_px = max(max_px, float(np.abs(d.landmarks - r.landmarks).max()), float(np.abs(d.box - r.box).max()))
            n_found = sum(d is not None for d in found[name])
            res[name] = {
                "detection_rate": round(n_found / len(images), 4), "n_detected": n_found, "n_photos": len(images),
                "landmark_error_over_interocular": summary(lm_err) if lm_err else "no landmarks",
                "max_abs_difference_px": round(max_px, 6) if lm_err else None,
                "box_iou_with_reference": summary(box_iou, 3),
                "seconds_per_photo": {"median": round(float(np.median(times[name])), 4),
                                      "mean": round(float(np.mean(times[name])), 4)},
            }
        out[set_name] = res
    return out


def alignment_outcomes(sets: dict[str, list[Image.Image]], detector, old_max_outside: float = 0.25) -> dict[str, Any]:
    """align_face at 64 px on every photo: aligned (with how much was filled in beyond the photo) or refused; and
    how many the former rule (refuse when over 25% of the crop is outside the photo) would have refused."""
    canonical = load_canonical()
    out = {}
    for set_name, images in sets.items():
        aligned, refused, old_refused, outside = 0, {}, 0, []
        for im in images:
            try:
                face = align_face(im, 64, detector=detector, canonical=canonical)[0]
            except AlignmentError as e:
                msg = str(e).split(";")[0].split(" (")[0]
                refused[msg] = refused.get(msg, 0) + 1
                continue
            aligned += 1
            outside.append(face.outside)
            old_refused += face.outside > old_max_outside
        out[set_name] = {"aligned": aligned, "refused": refused, "share_of_crop_filled_in": summary(outside, 3),
                         "would_have_been_refused_before": old_refused}
    return out


def face_rate_check(detectors: dict[str, Callable], n: int = 256) -> dict[str, Any]:
    """metrics.face_probabilities with the port vs facenet-pytorch on n DCGAN samples (64 px, the metric's input)."""
    from dgf_core.faces.mtcnn import face_probabilities
    from dgf_core.generation.pipeline import FacePipeline

    pipe = FacePipeline.from_pretrained("dcgan-celeba64", device="cpu")
    imgs = pipe.generate(list(range(n)))
    ours = face_probabilities(imgs, detectors["dgf_core.faces.mtcnn"])
    ref = np.zeros(n)
    batch = imgs.permute(0, 2, 3, 1).contiguous().numpy()
    for i in range(0, n, 128):
        ref[i : i + 128] = [float(np.nanmax(p)) for p in detectors["facenet-pytorch"].batch(batch[i : i + 128])]
    return {"n_samples": n, "model": "dcgan-celeba64 seeds 0..%d" % (n - 1), "identical": bool(np.array_equal(ours, ref)),
            "max_abs_difference": float(np.abs(ours - ref).max()), "rate_p>=0.9": float((ours >= 0.9).mean())}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--celeba", type=Path, required=True)
    p.add_argument("--utkface", type=Path, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--scenes", type=int, default=30)
    p.add_argument("--opencv-path", default=None, help="a --target folder holding opencv-python-headless 4.x")
    p.add_argument("--out", type=Path, default=Path("docs/results/face-detectors.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"photos: {a.n} CelebA + {a.n} UTKFace held-out, {a.scenes} scenes; writing {a.out}")

    def load(paths):
        ims = []
        for q in paths:
            with Image.open(q) as im:
                ims.append(im.convert("RGB"))
        return ims

    sets = {"celeba_heldout": load(held_out(a.celeba, a.n)), "utkface_heldout": load(held_out(a.utkface, a.n)),
            "scenes_640x480": make_scenes(held_out(a.celeba, 3 * a.scenes + 2, skip=a.n), a.scenes)}
    detectors: dict[str, Callable] = {"facenet-pytorch": facenet_detector(), "dgf_core.faces.mtcnn": load_detector()}
    versions = {"torch": torch.__version__, "numpy": np.__version__, "facenet-pytorch": "2.6.0"}
    if a.opencv_path:
        sys.path.insert(0, a.opencv_path)
        import cv2

        cv2.setNumThreads(1)
        detectors["opencv-haar"] = haar_detector(cv2)
        versions["opencv-python-headless"] = cv2.__version__
    per_set = evaluate(sets, detectors, reference="facenet-pytorch")
    report = {
        "what": "face detectors for alignment (Memory from a photo), on the same photos",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads_used": 1,
                    "python": platform.python_version(), "load_average_at_start": os.getloadavg()[0], **versions},
        "command": "python scripts/compare_face_detectors.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "protocol": __doc__.split("\n\n")[2].replace("\n", " "),
        "results": per_set,
        "yunet": YUNET_NOTE,
        "chosen": CHOSEN,
        "face_rate_metric": face_rate_check(detectors),
        "alignment_with_dgf_core_mtcnn": alignment_outcomes(sets, detectors["dgf_core.faces.mtcnn"]),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=1))


if __name__ == "__main__":
    main()
