"""A training set of faces aligned by their five landmarks: `python -m dgf_core data align`.

Every image of the source folders is run through the same face alignment a user's photo gets
(`alignment.detect_faces`, then `alignment.align_to` onto a recipe's canonical landmarks), and the aligned crop is
stored as a JPEG under the source file's own name, so the fixed held-out rule of `data.is_heldout` (by file name)
holds unchanged in the aligned set. Where the crop reaches past the photo, the photo is extended by blurred
mirroring, as for user photos; the share of the crop that lies beyond the photo is recorded per image, and images
with more than `max_outside` of it are left out (the generator should not learn smeared corners).

The set is a folder that `data.load_image_set` reads like any other: DIR/images/*.jpg, plus DIR/manifest.jsonl
(one JSON record per source file: name, source path, status, outside share, source pixels across the crop, and the
UTKFace age/gender/race from the file name where there is one) and DIR/summary.json. The manifest makes the
command resumable: a second call skips every file it already records (aligned or refused), so an interrupted run
continues where it stopped. Each image is written to a temporary name and renamed before its record is appended.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data import ALIGNED_FORMAT, ALIGNED_SUMMARY, is_heldout, list_images, parse_utkface_name, read_aligned_summary

MANIFEST = "manifest.jsonl"
SUMMARY = ALIGNED_SUMMARY
IMAGES = "images"
JPEG_QUALITY = 95
DEFAULT_MAX_OUTSIDE = 0.15  # leave out faces whose crop lies beyond the photo by more than this share
CHUNK = 64  # files per worker task


@dataclass(frozen=True)
class AlignJob:
    recipe: str
    resolution: int
    max_outside: float = DEFAULT_MAX_OUTSIDE
    min_face_px: int = 40


_DETECTOR = None  # one per worker process


def _detector():
    global _DETECTOR
    if _DETECTOR is None:
        import torch

        from .alignment import load_detector

        torch.set_num_threads(1)
        _DETECTOR = load_detector()
    return _DETECTOR


def align_file(path: Path, job: AlignJob, canonical: np.ndarray, detector=None) -> tuple[dict[str, Any], np.ndarray | None]:
    """One source file -> (its manifest record, the (R, R, 3) uint8 crop or None when it was left out)."""
    from .alignment import AlignmentError, align_to, check_face_inside, choose_face, detect_faces

    rec: dict[str, Any] = {"name": path.name, "source": str(path)}
    label = parse_utkface_name(path)
    if label is not None:
        rec.update(age=label.age, gender=label.gender, race=label.race)
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        return {**rec, "status": "unreadable", "reason": str(e)[:200]}, None
    try:
        face, _ = choose_face(detect_faces(image, detector or _detector()), job.min_face_px)
        check_face_inside(face, *image.size)
    except AlignmentError as e:
        return {**rec, "status": "no-face", "reason": str(e)}, None
    crop, m, outside = align_to(image, face.landmarks, job.resolution, canonical, face_side=face.side)
    rec.update(outside=round(outside, 4), source_px=round(job.resolution / float(np.sqrt(abs(np.linalg.det(m[:, :2])))), 1),
               prob=round(face.prob, 4))
    if outside > job.max_outside:
        return {**rec, "status": "padded", "reason": f"{outside:.0%} of the crop lies beyond the photo"}, None
    return {**rec, "status": "ok"}, crop.permute(1, 2, 0).numpy()


def _align_chunk(args: tuple[list[str], AlignJob, list[list[float]]]) -> list[tuple[dict[str, Any], bytes | None]]:
    paths, job, canonical = args
    out = []
    for p in paths:
        rec, crop = align_file(Path(p), job, np.asarray(canonical, np.float64))
        out.append((rec, None if crop is None else crop.tobytes()))
    return out


def read_manifest(out: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The records of an aligned set by file name (a torn last line from a kill is ignored)."""
    path = Path(out) / MANIFEST
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[rec["name"]] = rec
    return records


def read_summary(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The summary of an aligned set in `folder`, or None when it is not one (`data.read_aligned_summary`)."""
    return read_aligned_summary(folder)


def _drop_torn_record(path: Path) -> None:
    """Cut a last record that a kill left without its newline, so the next record starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _check_options(out: Path, job: AlignJob) -> None:
    """An aligned set holds one recipe at one resolution: refuse to mix."""
    from .alignment import load_canonical

    load_canonical(job.recipe)  # a clear error for an unknown recipe
    if not 16 <= job.resolution <= 1024:
        raise ValueError(f"--resolution must be in 16..1024, got {job.resolution}")
    if not 0.0 <= job.max_outside <= 1.0:
        raise ValueError(f"--max-outside must be in [0, 1], got {job.max_outside}")
    summary = out / SUMMARY
    if summary.is_file():
        old = json.loads(summary.read_text())
        if (old.get("recipe"), old.get("resolution")) != (job.recipe, job.resolution):
            raise ValueError(f"{out} holds faces aligned with recipe {old.get('recipe')!r} at {old.get('resolution')} px; "
                             f"use another --out for {job.recipe!r} at {job.resolution} px")


def align_sources(sources: Sequence[str | os.PathLike], out: str | os.PathLike, job: AlignJob, *, workers: int = 1,
                  limit: int | None = None, progress: Callable[[int, int, dict[str, int]], None] | None = None) -> dict[str, Any]:
    """Align every image under `sources` into `out` (resumable). Returns the summary (also written to out/summary.json)."""
    from ..checkpoint import write_json_atomic
    from .alignment import load_canonical

    out = Path(out)
    _check_options(out, job)
    files = list_images(sources)
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise ValueError(f"file names repeat across the sources ({', '.join(dup)} ...): the aligned set keeps file names")
    if limit is not None:
        files = files[:limit]
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    for stale in (out / IMAGES).glob("*.tmp.jpg"):  # an image being written when a previous call was killed
        stale.unlink()
    _drop_torn_record(out / MANIFEST)
    done = read_manifest(out)
    todo = [p for p in files if p.name not in done]
    canonical = load_canonical(job.recipe).tolist()
    counts = _count(done.values())
    t0 = time.time()
    with (out / MANIFEST).open("a") as manifest:
        for rec, crop in _run(todo, job, canonical, workers):
            if crop is not None:
                dest = out / IMAGES / rec["name"]
                tmp = dest.with_name(dest.name + ".tmp.jpg")
                arr = np.frombuffer(crop, np.uint8).reshape(job.resolution, job.resolution, 3)
                Image.fromarray(arr).save(tmp, format="JPEG", quality=JPEG_QUALITY)
                os.replace(tmp, dest)
            manifest.write(json.dumps(rec) + "\n")
            manifest.flush()
            done[rec["name"]] = rec
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            if progress:
                progress(len(done), len(files), counts)
    summary = summarize(done.values(), job)
    summary["seconds_this_call"] = round(time.time() - t0, 1)
    write_json_atomic(summary, out / SUMMARY)
    return summary


def _run(todo: list[Path], job: AlignJob, canonical: list, workers: int) -> Iterator[tuple[dict[str, Any], bytes | None]]:
    chunks = [([str(p) for p in todo[i:i + CHUNK]], job, canonical) for i in range(0, len(todo), CHUNK)]
    if workers <= 1:
        for c in chunks:
            yield from _align_chunk(c)
        return
    with ProcessPoolExecutor(workers) as ex:
        for result in ex.map(_align_chunk, chunks):
            yield from result


def _count(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def summarize(records, job: AlignJob) -> dict[str, Any]:
    """What the set holds: counts by status and source, how much padding the aligned faces needed, and how many
    source pixels lie across a crop (below the resolution, the crop was upsampled), held-out and training counts."""
    records = list(records)
    by_source: dict[str, dict[str, Any]] = {}
    for r in records:
        src = str(Path(r["source"]).parent)
        by_source.setdefault(src, []).append(r)
    per_source = {}
    for src, recs in sorted(by_source.items()):
        aligned = [r for r in recs if "outside" in r]
        outside = np.array([r["outside"] for r in aligned]) if aligned else np.zeros(0)
        kept = [r for r in recs if r["status"] == "ok"]
        per_source[src] = {
            "files": len(recs), "kept": len(kept), **{k: v for k, v in sorted(_count(recs).items()) if k != "ok"},
            "share_with_any_padding": round(float((outside > 0.001).mean()), 4) if len(outside) else None,
            "share_padding_over_5pct": round(float((outside > 0.05).mean()), 4) if len(outside) else None,
            "mean_padding": round(float(outside.mean()), 4) if len(outside) else None,
            "median_source_px": round(float(np.median([r["source_px"] for r in aligned])), 1) if aligned else None,
            "heldout_kept": sum(is_heldout(r["name"]) for r in kept),
        }
    kept = [r for r in records if r["status"] == "ok"]
    ages = [r["age"] for r in kept if "age" in r]
    return {"format": ALIGNED_FORMAT, "recipe": job.recipe, "resolution": job.resolution,
            "max_outside": job.max_outside, "files": len(records), "kept": len(kept),
            "heldout_kept": sum(is_heldout(r["name"]) for r in kept), "by_status": _count(records),
            "labelled_ages": len(ages), "share_aged_50_plus": round(float(np.mean(np.array(ages) >= 50)), 4) if ages else None,
            "sources": per_source}
