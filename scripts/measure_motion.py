"""Photo memories measured against issue 24's targets: held-out photos brought to life at their own resolution.

    nice -n 10 python scripts/measure_motion.py --model stylegan2-celeba64 --celeba ../shared/data/celeba \
        --utkface ../shared/data/utkface --n-celeba 4 --n-utkface 4 --min-age 60 --motions alive,look-around,smile,blink,age \
        --json docs/results/motion-stylegan2.json

Photos go the user's way (`uploads.open_upload`, MTCNN alignment, projection, pivotal tuning with the defaults
unless --steps / --tune-steps say otherwise), then each motion is rendered with `memory.memory_frames` (render
"photo", no mark: the mark would sit on the pixels measured). CelebA photos are held-out 178x218 files of
img_align_celeba that have a second photo of the same person; UTKFace photos are held-out chips, at least
--min-old of them aged --min-age or more. Motions the model lacks a direction for are skipped and listed.

Per photo and motion, on the frames the user gets:
- frame0_psnr_db: frame 0 against the photo at the clip's size, over the whole frame (99 when identical);
- sharpness: variance of the Laplacian (grey) inside the face box, mean over frames, over the photo's; with
  --x4 also today's clip (`render model`, upscaled x4) measured the same way in its own frames;
- identity: the judge embedding (weights/identity-celeba200-judge, never used by tuning) between each frame's aligned
  face and the photo's: the minimum cosine and the share of frames above the judge's same-person threshold; for CelebA
  also the photo's and the frames' cosine to *another* photo of the same person;
- yaw: the nose tip's horizontal offset from the eyes' midpoint over the eye distance (MTCNN on every 4th frame),
  its range over the clip, and a rough angle, asin(offset / 0.5) (the nose tip sits about half an eye distance in
  front of the eyes);
- attributes: the attribute classifier's age (years) and p(female) on each frame's aligned face: the largest change
  from frame 0 (the unwanted change of a motion that is not age or gender); for age also the mean and the 90th
  percentile of |change| over the frames (the largest of 96 readings of a classifier that moves a year or two
  between near-identical frames overstates a change that lasts); the `realigned_*` reading reads each fourth frame
  through its own landmarks, and --also-age-classifier DIR reads those same crops with a second classifier
  (`also_realigned_*`: e.g. a separate age judge beside the classifier that learnt the directions);
- background: mean absolute frame-to-frame change (0..255) outside the feathered face ellipse;
- seam: mean gradient magnitude in the feather ring (where the motion fades out) in each frame after the first over
  the photo's, the largest and the mean over frames (1: no edge added; a doubled edge raises it);
- smile / eyes / mouth: the CelebA attribute classifier's (weights/attributes-celeba) Smiling, Narrow_Eyes and
  Mouth_Slightly_Open probabilities: frame 0's and the largest rise over the clip (the `smile` target: a rise of
  >= 0.4 on photos that start below 0.3; `blink`: the eyes close measurably);
- eye_contrast_ratio_min: the luminance spread in boxes around the photo's eyes, its lowest over the clip over
  frame 0's (a blink hides the iris and the white of the eye: 1 means the eyes never closed);
- seconds: align, projection, tuning (once per photo) and rendering (per motion).

--resume keeps the photos already in --json (same model and motions) and measures only the rest, so a long run can
be stopped and continued. --cache DIR (outside the checkout: dataset photos' tuned generators) keeps each photo's
projected latent and tuned generator, so a second run (other motions, --extent-scale) only renders and measures;
the projection and tuning seconds reported are then the first run's. --extent-scale yaw=1.5 multiplies a direction's
motion extent (a trial of a larger movement before it goes into a preset). With --model-yaw, motions that turn the
head also get the yaw range of the model's own frames (render model, 256 px): how much of the model's turn the photo
rendering keeps.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.checkpoint import default_weights_dir, write_json_atomic  # noqa: E402
from dgf_core.data import is_heldout, list_images  # noqa: E402
from dgf_core.faces.alignment import AlignmentError, detect_faces, load_detector, model_recipe  # noqa: E402
from dgf_core.faces.edits import load_classifier  # noqa: E402
from dgf_core.faces.likeness import default_likeness, load_likeness, read_identity_file  # noqa: E402
from dgf_core.faces.memory import MemorySpec, PhotoFrame, memory_frames, motion_directions  # noqa: E402
from dgf_core.faces.projection import ProjectionOptions, aligned_target, load_projection_model, project_model  # noqa: E402
from dgf_core.faces.render import face_weight  # noqa: E402
from dgf_core.faces.tuning import TuningOptions, tune  # noqa: E402
from dgf_core.generation.motion import MotionError, check_motion, needed_directions  # noqa: E402
from dgf_core.serving.uploads import open_upload  # noqa: E402


def celeba_photos(root: Path, n: int) -> list[tuple[Path, Path | None]]:
    ids = read_identity_file(root / "identity_CelebA.txt")
    files = sorted((root / "img_align_celeba").iterdir())
    by_id: dict[int, list[Path]] = {}
    for f in files:
        if f.name in ids:
            by_id.setdefault(ids[f.name], []).append(f)
    cands = [f for f in files if is_heldout(f) and f.name in ids and len(by_id[ids[f.name]]) >= 2]
    picked = cands[:: max(1, len(cands) // n)][:n]
    return [(f, next(o for o in by_id[ids[f.name]] if o != f)) for f in picked]


def utkface_photos(root: Path, n: int, min_age: int, min_old: int) -> list[tuple[Path, None]]:
    files = list_images(root, "heldout")
    old = [f for f in files if int(f.name.split("_")[0]) >= min_age]
    young = [f for f in files if f not in set(old)]
    k = min(n, max(min_old, 0))
    chosen = old[:: max(1, len(old) // max(k, 1))][:k] + young[:: max(1, len(young) // max(n - k, 1))][: n - k]
    return [(f, None) for f in chosen]


def laplacian_var(img: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def grad_mag(img: np.ndarray) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else round(10 * math.log10(255.0**2 / mse), 2)


def aligned_faces(frames: np.ndarray, to_aligned: np.ndarray, size: int) -> torch.Tensor:
    """Canvas frames (T, H, W, 3) -> their aligned crops (T, 3, size, size) in [-1, 1] (the photo's alignment)."""
    import cv2

    crops = [cv2.warpAffine(f, to_aligned, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
             for f in frames]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def eye_contrast(frames: np.ndarray, eyes: np.ndarray) -> np.ndarray | None:
    """(T,) the luminance standard deviation in boxes around both eyes (+-0.2 x +-0.08 of the eye distance around
    each centre, `eyes` (2, 2) in the frames' pixels) over frame 0's: 1 open as in the photo, low when the lids
    cover the iris and the white."""
    import cv2

    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    h, w = frames.shape[1:3]
    boxes = []
    for cx, cy in eyes:
        x0, x1 = int(max(0, cx - 0.2 * d)), int(min(w, cx + 0.2 * d + 1))
        y0, y1 = int(max(0, cy - 0.08 * d)), int(min(h, cy + 0.08 * d + 1))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            boxes.append((x0, x1, y0, y1))
    if not boxes:
        return None
    std = np.array([np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[y0:y1, x0:x1].std() for x0, x1, y0, y1 in boxes])
                    for f in frames])
    return std / max(std[0], 1e-6)


def frame_landmarks(frames: np.ndarray, detector, every: int = 4) -> list[tuple[int, np.ndarray]]:
    """(frame index, (5, 2) MTCNN landmarks) of every `every`-th frame where a face is found."""
    from PIL import Image

    out = []
    for i in range(0, len(frames), every):
        dets = detect_faces(Image.fromarray(frames[i]), detector)
        if dets:
            out.append((i, dets[0].landmarks.astype(np.float64)))
    return out


def yaw_offsets(frames: np.ndarray, detector, every: int = 4, found=None) -> list[float]:
    """The nose's offset from the eyes' midpoint along x, in eye distances, per `every`-th frame with a face."""
    out = []
    for _, lm in (frame_landmarks(frames, detector, every) if found is None else found):
        mid = (lm[0] + lm[1]) / 2
        out.append(float((lm[2, 0] - mid[0]) / max(np.linalg.norm(lm[1] - lm[0]), 1e-6)))
    return out


def default_age_reader() -> Path:
    """The age / gender reader of the unwanted change: the judge (weights/age-judge-utkface), kept apart from the
    classifier that labelled the samples the directions were learnt from (weights/attributes-utkface), as the identity
    judge is kept apart from tuning; that classifier where the judge is absent."""
    judge = default_weights_dir() / "age-judge-utkface"
    return judge if (judge / "config.json").is_file() else default_weights_dir() / "attributes-utkface"


SHIFTS = ((0.0, 0.0), (0.015, 0.0), (-0.015, 0.0), (0.0, 0.015), (0.0, -0.015))  # of the crop's side


def reading_side(classifier, recipe: str, res: int) -> int:
    """The side of the crops a classifier reads: the model's resolution, or the classifier's native side where that is
    larger (a crop cut from the photo-resolution frame at the reader's own pixels, not an enlarged one)."""
    return max(res, classifier.native_side(recipe))


def age_change(reading: dict, prefix: str) -> dict:
    """A re-aligned reading's unwanted change from frame 0: |age change| mean, 90th percentile and max (years) and the
    largest |p(female) change|, under keys starting with `prefix`."""
    dage = np.abs(reading["age"] - reading["age"][0])
    dfem = np.abs(reading["female"] - reading["female"][0])
    return {f"{prefix}age_change_years_mean": round(float(dage.mean()), 2),
            f"{prefix}age_change_years_p90": round(float(np.quantile(dage, 0.9)), 2),
            f"{prefix}age_change_years_max": round(float(dage.max()), 2),
            f"{prefix}female_prob_change_max": round(float(dfem.max()), 3)}


def realigned_attributes(frames: np.ndarray, found, canonical: np.ndarray, size: int, classifier, recipe: str):
    """The age / gender classifier's reading of each frame in `found` aligned by its own landmarks (as the classifier
    is used: a face moved inside a fixed crop is misaligned, and a 2% shift of the crop alone moves its age reading by
    2.7 years on average; docs/motion.md), averaged over SHIFTS (the reading's jitter). -> {"age": (K,), "female": (K,)}."""
    import cv2

    from dgf_core.faces.alignment import estimate_similarity

    crops = []
    for i, lm in found:
        m = estimate_similarity(lm, canonical * size)
        for dx, dy in SHIFTS:
            t = m.copy()
            t[:, 2] += (dx * size, dy * size)
            crops.append(cv2.warpAffine(frames[i], t, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    with torch.no_grad():
        p = classifier.predict(x, recipe)
    k = len(SHIFTS)
    return {key: p[key].numpy().reshape(-1, k).mean(1) for key in ("age", "female")}


def project_and_tune(a, model, target, like, recipe, path: Path, sec: dict):
    """The photo's projection and tuned generator: from --cache when it holds them (with the first run's
    seconds), else computed (and kept there when --cache is given)."""
    import copy
    from types import SimpleNamespace

    from safetensors.torch import load_file, save_file

    key = f"{model.name}-{model.weights_sha256[:12]}-s{a.steps}-t{a.tune_steps}-{path.name}"
    cached = Path(a.cache) / f"{key}.safetensors" if a.cache else None
    if cached is not None and cached.is_file():
        t = load_file(str(cached))
        meta = json.loads(cached.with_suffix(".json").read_text())
        gen = copy.deepcopy(model.generator)
        gen.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("gen.")})
        gen.eval().requires_grad_(False)
        sec.update(meta["seconds"])
        return (SimpleNamespace(latent=t["latent"], space=meta["space"]),
                SimpleNamespace(generator=gen, psnr=meta["psnr"]))
    t0 = time.perf_counter()
    proj = project_model(model, target, ProjectionOptions(**({"steps": a.steps} if a.steps else {})))
    sec["project"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tuned = tune(model.generator, proj.latent, proj.space, target, TuningOptions(steps=a.tune_steps),
                 discriminator=model.discriminator, likeness=like, recipe=recipe)
    sec["tune"] = time.perf_counter() - t0
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"latent": proj.latent.contiguous()}
        tensors.update({f"gen.{k}": v.detach().contiguous() for k, v in tuned.generator.state_dict().items()})
        save_file(tensors, str(cached.with_suffix(".tmp")))
        write_json_atomic({"space": proj.space, "psnr": tuned.psnr, "seconds": {k: sec[k] for k in ("project", "tune")}},
                          cached.with_suffix(".json"))
        cached.with_suffix(".tmp").replace(cached)
    return proj, tuned


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="stylegan2-celeba64")
    p.add_argument("--celeba", default=None)
    p.add_argument("--utkface", default=None)
    p.add_argument("--n-celeba", type=int, default=4)
    p.add_argument("--n-utkface", type=int, default=4)
    p.add_argument("--min-age", type=int, default=60)
    p.add_argument("--min-old", type=int, default=2, help="UTKFace photos aged --min-age or more")
    p.add_argument("--motions", default="alive,look-around,smile,blink,nod,talk,age,gender,drift")
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--steps", type=int, default=None, help="projection steps (default: the projection's)")
    p.add_argument("--tune-steps", type=int, default=None, help="tuning steps (default: the latent space's)")
    p.add_argument("--x4", action="store_true", help="also measure today's x4-upscaled model clip's sharpness")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", required=True)
    p.add_argument("--resume", action="store_true", help="keep the photos already measured in --json")
    p.add_argument("--cache", default=None, help="folder for each photo's latent and tuned generator (reused)")
    p.add_argument("--extent-scale", action="append", default=[], metavar="NAME=X",
                   help="multiply a direction's motion extent (repeatable)")
    p.add_argument("--model-yaw", action="store_true", help="also the yaw range of the model's own frames")
    p.add_argument("--residual-deadzone", type=float, default=None,
                   help="a trial: the photo rendering's residual dead zone (0..255; 255 turns the residual off)")
    p.add_argument("--turn", default=None, metavar="DEGREES[:SHARE]",
                   help="a trial: the drawn turn's degrees at the yaw curve's full extent and the model's share of it "
                        "(faces/turn.py's DEGREES and MODEL_SHARE; 0:1 is the turn before the drawn one)")
    p.add_argument("--age-classifier", default=None,
                   help="the age / gender classifier folder that reads the unwanted change (default "
                        "weights/age-judge-utkface, or weights/attributes-utkface where the judge is absent)")
    p.add_argument("--also-age-classifier", default=None,
                   help="a second age / gender classifier folder: reads the same re-aligned crops (keys also_realigned_*)")
    p.add_argument("--smile-lift", type=float, default=None,
                   help="a trial: how far the drawn smile lifts the mouth's corners (faces/smile.py's LIFT, of the eye distance)")
    a = p.parse_args(argv)
    if a.smile_lift is not None:
        from dgf_core.faces import smile

        smile.LIFT = a.smile_lift
    if a.turn is not None:
        from dgf_core.faces import turn

        deg, _, share = a.turn.partition(":")
        turn.DEGREES = float(deg)
        turn.MODEL_SHARE = float(share) if share else turn.MODEL_SHARE
    if a.residual_deadzone is not None:
        from dgf_core.faces import render

        render.RESIDUAL_DEADZONE = a.residual_deadzone
    scales = {}
    for item in a.extent_scale:
        name, _, x = item.partition("=")
        try:
            scales[name.strip()] = float(x)
        except ValueError:
            raise SystemExit(f"--extent-scale wants NAME=NUMBER, got {item!r}") from None
    torch.set_num_threads(a.threads)
    model = load_projection_model(a.model, "cpu")
    recipe = model_recipe(model.card)
    res = int(model.config.resolution)
    detector = load_detector("cpu")
    like = default_likeness()
    judge = load_likeness(default_weights_dir() / "identity-celeba200-judge")
    judge_thr = float(judge.card["heldout_verification"]["eer_threshold"])
    classifier = load_classifier(Path(a.age_classifier) if a.age_classifier else default_age_reader())
    also = load_classifier(a.also_age_classifier) if a.also_age_classifier else None
    celeba_attrs = load_classifier(default_weights_dir() / "attributes-celeba")
    upscaler = None
    if a.x4:
        from dgf_core.generation.upscale import Upscaler

        upscaler = Upscaler.from_pretrained("upscaler-x4")
    photos = ([("celeba", f, o) for f, o in celeba_photos(Path(a.celeba), a.n_celeba)] if a.celeba else []) + \
             ([("utkface", f, o) for f, o in utkface_photos(Path(a.utkface), a.n_utkface, a.min_age, a.min_old)]
              if a.utkface else [])
    motions = [m.strip() for m in a.motions.split(",") if m.strip()]
    rows, skipped, failures = [], {}, []
    if a.resume and Path(a.json).exists():
        before = json.loads(Path(a.json).read_text())
        if before.get("model") != model.name or before["args"].get("motions") != a.motions:
            raise SystemExit(f"--resume: {a.json} measured {before.get('model')} with motions "
                             f"{before['args'].get('motions')}, not {model.name} with {a.motions}")
        rows, skipped, failures = before["photos"], before["skipped_motions"], before["failures"]
        done = {r["photo"] for r in rows} | {f["photo"] for f in failures}
        photos = [ph for ph in photos if ph[1].name not in done]
        print(f"resuming: {len(done)} photos already measured, {len(photos)} to go", flush=True)
    for source, path, other in photos:
        print(f"{path.name} ...", flush=True)
        photo = open_upload(path)
        t0 = time.perf_counter()
        try:
            target, _, to_crop = aligned_target(photo, model, detector=detector)
        except AlignmentError as e:
            failures.append({"photo": path.name, "error": str(e)})
            continue
        sec = {"align": time.perf_counter() - t0}
        proj, tuned = project_and_tune(a, model, target, like, recipe, path, sec)
        frame = PhotoFrame.from_photo(photo, to_crop, recipe)
        canvas = frame.canvas
        h, w = canvas.shape[:2]
        # the face box (MTCNN's, in canvas pixels) and the feather ring / outside of the face ellipse in the canvas
        import cv2

        det = detect_faces(photo, detector)[0]
        sx, sy = w / photo.size[0], h / photo.size[1]
        bx0, by0 = max(0, int(det.box[0] * sx)), max(0, int(det.box[1] * sy))
        bx1, by1 = min(w, int(det.box[2] * sx)), min(h, int(det.box[3] * sy))
        wt = face_weight(256, frame.canonical)
        inv = cv2.invertAffineTransform((frame.to_aligned * (256 / res)).astype(np.float64))
        wcan = cv2.warpAffine(wt, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        outside, ring = wcan <= 0, (wcan > 0.02) & (wcan < 0.98)
        photo_lap = laplacian_var(canvas[by0:by1, bx0:bx1])
        photo_ring = float(grad_mag(canvas)[ring].mean()) if ring.any() else float("nan")
        align_m = frame.to_aligned
        photo_face = aligned_faces(canvas[None], align_m, res)
        photo_emb = judge.embed(photo_face, recipe)
        other_emb = None
        if other is not None:
            try:
                o_target, _, _ = aligned_target(open_upload(other), model, detector=detector)
                other_emb = judge.embed(o_target, recipe)
            except AlignmentError:  # no face found in the other photo: no cross-photo check for this one
                other_emb = None
        p0 = classifier.predict(photo_face, recipe)
        row = {"photo": path.name, "source": source, "size": [photo.size[0], photo.size[1]], "clip_size": [w, h],
               "psnr_tuned_db": round(tuned.psnr, 2), "seconds": {k: round(v, 1) for k, v in sec.items()},
               "photo_laplacian_var": round(photo_lap, 1), "motions": {}}
        if other_emb is not None:
            row["judge_photo_to_other_photo"] = round(float((photo_emb * other_emb).sum()), 4)
        if upscaler is not None:
            spec = MemorySpec(frames=a.frames, fps=a.fps, mark=False, render="model", upscale=4)
            mf = memory_frames(model, proj.latent, proj.space, spec, generator=tuned.generator, upscaler=upscaler)
            s = mf.shape[1] / res
            box = np.array([[bx0, by0, 1], [bx1, by1, 1]], np.float64) @ (align_m * s).T
            x0, y0 = np.clip(box.min(0).astype(int), 0, mf.shape[1])
            x1, y1 = np.clip(box.max(0).astype(int), 0, mf.shape[1])
            row["x4_model_clip_sharpness_ratio"] = round(float(np.mean([laplacian_var(f[y0:y1, x0:x1]) for f in mf]))
                                                         / max(photo_lap, 1e-9), 3)
        for motion in motions:
            spec = MemorySpec(frames=a.frames, fps=a.fps, mark=False, motion=motion, render="photo")
            dirs, extents = motion_directions(model, spec, None)
            extents = {k: v * scales.get(k, 1.0) for k, v in (extents or {}).items()} if scales else extents
            try:
                check_motion(motion, dirs)
            except MotionError as e:
                skipped[motion] = str(e)
                continue
            t0 = time.perf_counter()
            frames = memory_frames(model, proj.latent, proj.space, spec, directions=dirs, extents=extents,
                                   generator=tuned.generator, photo=frame)
            render_s = time.perf_counter() - t0
            faces = aligned_faces(frames, align_m, res)
            with torch.no_grad():
                cos = (judge.embed(faces, recipe) @ photo_emb[0]).numpy()
                attrs = classifier.predict(faces, recipe)
                expr = celeba_attrs.predict(faces, recipe)
            m = {"render_seconds": round(render_s, 2), "frame0_psnr_db": psnr(frames[0], canvas),
                 "sharpness_ratio": round(float(np.mean([laplacian_var(f[by0:by1, bx0:bx1]) for f in frames]))
                                          / max(photo_lap, 1e-9), 3),
                 "judge_min_cosine": round(float(cos.min()), 4),
                 "judge_share_above_threshold": round(float((cos >= judge_thr).mean()), 3),
                 "age_change_years_max": round(float((attrs["age"] - attrs["age"][0]).abs().max()), 2),
                 "age_change_years_mean": round(float((attrs["age"] - attrs["age"][0]).abs().mean()), 2),
                 "age_change_years_p90": round(float((attrs["age"] - attrs["age"][0]).abs().quantile(0.9)), 2),
                 "female_prob_change_max": round(float((attrs["female"] - attrs["female"][0]).abs().max()), 3),
                 "background_change_mean": round(float(np.abs(np.diff(frames.astype(np.int16), axis=0))[:, outside].mean()), 4)
                 if outside.any() else None,
                 "seam_gradient_ratio_max": round(max(float(grad_mag(f)[ring].mean()) / photo_ring for f in frames[1:]), 3)
                 if ring.any() else None,
                 "seam_gradient_ratio_mean": round(float(np.mean([grad_mag(f)[ring].mean() / photo_ring for f in frames[1:]])), 3)
                 if ring.any() else None}
            for label, key in (("Smiling", "smile"), ("Narrow_Eyes", "eyes_narrow"), ("Mouth_Slightly_Open", "mouth_open")):
                m[f"{key}_prob_frame0"] = round(float(expr[label][0]), 3)
                m[f"{key}_prob_rise_max"] = round(float((expr[label] - expr[label][0]).max()), 3)
            if other_emb is not None:
                to_other = (judge.embed(faces, recipe) @ other_emb[0]).numpy()
                m["judge_frames_to_other_photo_min"] = round(float(to_other.min()), 4)
                m["judge_frames_to_other_photo_mean"] = round(float(to_other.mean()), 4)
            contrast = eye_contrast(frames, det.landmarks[:2] * np.array([sx, sy]))
            if contrast is not None:  # a blink hides the iris and the white: the eyes' contrast falls
                m["eye_contrast_ratio_min"] = round(float(contrast.min()), 3)
            found = frame_landmarks(frames, detector)
            if found and found[0][0] == 0:  # the age / gender change on each frame's own alignment
                ra = realigned_attributes(frames, found, frame.canonical, reading_side(classifier, recipe, res),
                                          classifier, recipe)
                m.update({**age_change(ra, "realigned_"), "realigned_frames": len(found),
                          "realigned_age_frame0_years": round(float(ra["age"][0]), 1)})
                if also is not None:  # the same frames and crops read by a second age / gender classifier
                    rb = realigned_attributes(frames, found, frame.canonical, reading_side(also, recipe, res), also, recipe)
                    m.update({**age_change(rb, "also_realigned_"), "also_age_frame0_years": round(float(rb["age"][0]), 1)})
            offs = yaw_offsets(frames, detector, found=found)
            if offs:
                deg = [math.degrees(math.asin(max(-1.0, min(1.0, o / 0.5)))) for o in offs]
                m["yaw_offset_range"] = round(max(offs) - min(offs), 3)
                m["yaw_degrees_range"] = [round(min(deg) - deg[0], 1), round(max(deg) - deg[0], 1)]
            if a.model_yaw and "yaw" in needed_directions(motion):
                mspec = MemorySpec(frames=a.frames, fps=a.fps, mark=False, motion=motion, render="model")
                mframes = memory_frames(model, proj.latent, proj.space, mspec, directions=dirs, extents=extents,
                                        generator=tuned.generator)
                big = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_CUBIC) for f in mframes])
                moffs = yaw_offsets(big, detector)
                if moffs:
                    mdeg = [math.degrees(math.asin(max(-1.0, min(1.0, o / 0.5)))) for o in moffs]
                    m["model_yaw_degrees_range"] = [round(min(mdeg) - mdeg[0], 1), round(max(mdeg) - mdeg[0], 1)]
            row["motions"][motion] = m
            print(f"  {motion}: {json.dumps(m)}", flush=True)
        rows.append(row)
        del tuned, photo, canvas, frame
        write_results(a, model, judge_thr, motions, rows, skipped, failures)  # after every photo: a long run keeps its part
    print(json.dumps(write_results(a, model, judge_thr, motions, rows, skipped, failures), indent=2))
    return 0


def write_results(a, model, judge_thr: float, motions: list[str], rows: list, skipped: dict, failures: list) -> dict:
    from dgf_core.faces import smile, turn

    summary = {}
    for motion in motions:
        ms = [r["motions"][motion] for r in rows if motion in r["motions"]]
        if ms:
            summary[motion] = {k: round(statistics.mean(x[k] for x in ms), 4) for k in ms[0]
                               if isinstance(ms[0][k], (int, float)) and all(isinstance(x.get(k), (int, float)) for x in ms)}
            summary[motion]["n"] = len(ms)
            summary[motion]["frame0_psnr_db_min"] = min(x["frame0_psnr_db"] for x in ms)
            summary[motion]["judge_share_above_threshold_min"] = min(x["judge_share_above_threshold"] for x in ms)
            yaw = [x["yaw_degrees_range"] for x in ms if "yaw_degrees_range" in x]
            if yaw:  # the share of clips that turn the head at least 10 degrees each way
                summary[motion]["yaw_10_degrees_both_ways_share"] = round(
                    sum(lo <= -10 and hi >= 10 for lo, hi in yaw) / len(yaw), 3)
                # half the swing from one side to the other: frame 0's own reading (a few degrees of landmark noise)
                # does not move it
                summary[motion]["yaw_half_swing_10_degrees_share"] = round(
                    sum((hi - lo) / 2 >= 10 for lo, hi in yaw) / len(yaw), 3)
                summary[motion]["yaw_half_swing_degrees_min"] = round(min((hi - lo) / 2 for lo, hi in yaw), 1)
            other = [x["judge_frames_to_other_photo_mean"] for x in ms if "judge_frames_to_other_photo_mean" in x]
            if other:  # against another photo of the same person: the frames' mean and the photo's own
                summary[motion]["judge_frames_to_other_photo_mean"] = round(statistics.mean(other), 4)
                summary[motion]["judge_photo_to_other_photo_mean"] = round(statistics.mean(
                    r["judge_photo_to_other_photo"] for r in rows
                    if motion in r["motions"] and "judge_frames_to_other_photo_mean" in r["motions"][motion]), 4)
            by_age = {}  # the age change grows with the age read on frame 0 (the reader regresses log(1 + age))
            for name, lo, hi in (("under 30", 0, 30), ("30-59", 30, 60), ("60 or more", 60, 1000)):
                group = [x["realigned_age_change_years_p90"] for x in ms if lo <= x.get("realigned_age_frame0_years", -1) < hi]
                if group:
                    by_age[name] = {"n": len(group), "realigned_age_change_years_p90_mean": round(statistics.mean(group), 2)}
            if by_age:
                summary[motion]["realigned_age_change_by_frame0_age"] = by_age
            low = [x for x in ms if x.get("smile_prob_frame0", 1.0) < 0.3]
            if low:  # the smile target: photos that start below 0.3
                summary[motion]["smile_rise_on_low_start_mean"] = round(
                    statistics.mean(x["smile_prob_rise_max"] for x in low), 3)
                summary[motion]["smile_rise_on_low_start_n"] = len(low)
    out = {"what": "photo memories (render photo) on held-out photos: scripts/measure_motion.py", "model": model.name,
           "weights_sha256": model.weights_sha256, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "args": vars(a), "judge_threshold": judge_thr, "targets": {
               "frame0_psnr_db": ">= 38", "sharpness_ratio": ">= 0.8", "judge": "every frame above the threshold",
               "yaw_degrees_range (look-around)": "at least -10 and +10", "background_change_mean": "< 0.5",
               "age_change_years_max (not age)": "<= 3", "female_prob_change_max (not gender)": "<= 0.1",
               "smile_rise_on_low_start_mean (smile)": ">= 0.4"},
           "turn": {"degrees": turn.DEGREES, "model_share": turn.MODEL_SHARE}, "smile_lift": smile.LIFT,
           "summary": summary, "skipped_motions": skipped, "failures": failures, "photos": rows,
           "threads": torch.get_num_threads()}
    write_json_atomic(out, a.json)
    return summary


if __name__ == "__main__":
    sys.exit(main())
