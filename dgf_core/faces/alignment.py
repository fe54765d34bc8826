"""Face alignment for real photos: MTCNN (`dgf_core.faces.mtcnn`, weights shipped in `weights/mtcnn`) finds the face
and its five landmarks, then a similarity transform (rotation, uniform scale, translation; least squares,
Umeyama 1991) maps them onto the canonical landmark positions of the training crops, at any output size (the
generator's, the upscaler's).

Landmark order is MTCNN's: left eye, right eye, nose tip, left mouth corner, right mouth corner (left/right
as seen in the image). Coordinates are continuous pixel coordinates (x right, y down; pixel i covers
[i, i + 1)); canonical landmarks are the same divided by the crop side, so they hold at every resolution.

Canonical landmarks are *measured*, not guessed: `measure_canonical_landmarks` runs MTCNN on training crops
made with the model's own preprocessing and takes the per-coordinate median. They are stored by crop
recipe in `dgf_core/canonical_landmarks.json` (the DCGAN and the StyleGAN2 share the CelebA centre crop).

Photos as people have them: a face that fills the photo (a passport-style or UTKFace-style crop) is aligned
all the same: where the training framing reaches past the photo, the photo is extended by mirroring its
edges, blurred more the farther it reaches, and `AlignedFace.notices` says so. Every problem a user can cause
raises `AlignmentError`, whose message can be shown as it is: no face, a face too small, or part of the
face itself (an eye, the nose, a mouth corner, or a clear share of the face box) outside the photo, naming
the part. Several faces are not an error: the largest is taken and the notices say so.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
CANONICAL_FILE = Path(__file__).resolve().parent / "canonical_landmarks.json"
DEFAULT_RECIPE = "celeba-center-crop"  # data.center_crop_resize on CelebA's img_align_celeba (178x218)
MIN_FACE_PX = 40  # a face box narrower than this (in the photo) is refused as too small to project
MIN_FACE_PROB = 0.90  # MTCNN probability below which a detection is ignored
DETECT_MAX_SIDE = 1024  # photos are shrunk to this for detection only; the warp reads the full photo
DETECT_PAD = 0.25  # grey border added around the photo for detection (a face filling the frame), times its side
MAX_BOX_OUTSIDE = 0.30  # refuse when the face box reaches past an edge of the photo by more than this share of its side
PAD_NOTICE = 0.10  # tell the user when more than this share of the aligned crop was filled in beyond the photo
# the area filled in beyond the photo: (Gaussian blur sigma, distance past the edge where it is at full strength), both
# in face box sides; then fully the photo's median colour at PAD_FADE sides past the edge
PAD_BLUR = ((0.05, 0.05), (0.15, 0.35))
PAD_FADE = 0.9


class AlignmentError(ValueError):
    """A photo that cannot be aligned; str(e) is a message for the user."""


# ---- geometry ------------------------------------------------------------------------------------------

def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991, no reflection) with dst ~ M @ [src; 1].

    src, dst: (K, 2) points, K >= 2. Returns M: (2, 3) float64 = [s R | t].
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    assert src.shape == dst.shape and src.ndim == 2 and src.shape[1] == 2 and len(src) >= 2, (src.shape, dst.shape)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    cov = xd.T @ xs / len(src)  # (2, 2)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float((d * np.diag(sign)).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, t[:, None]], axis=1)


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2, 3) transform, (K, 2) points -> (K, 2)."""
    points = np.asarray(points, np.float64)
    return points @ m[:, :2].T + m[:, 2]


def invert_transform(m: np.ndarray) -> np.ndarray:
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, -(a_inv @ m[:, 2])[:, None]], axis=1)


def warp_image(image: np.ndarray | torch.Tensor, m: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """Resample `image` so that a source point p lands at M p in a size x size output.

    image: (H, W, 3) uint8 array or (3, H, W) tensor. Bilinear sampling at output pixel centres; outside
    the photo the border pixels are repeated. Returns ((3, size, size) float tensor in [0, 255], the share
    of output pixels whose source lies outside the photo).
    """
    if isinstance(image, np.ndarray):
        assert image.ndim == 3 and image.shape[2] == 3, f"expected (H, W, 3), got {image.shape}"
        img = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    else:
        img = image
    img = img.float()
    _, h, w = img.shape
    sx, sy = _source_coords(m, size)
    outside = float(((sx < 0) | (sx > w) | (sy < 0) | (sy > h)).mean())
    # grid_sample with align_corners=False: -1 and 1 are the outer edges of the border pixels
    grid = torch.from_numpy(np.stack([sx / w * 2 - 1, sy / h * 2 - 1], -1)).float()[None]
    out = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    return out.clamp_(0, 255), outside


def _source_coords(m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo coordinates (x, y) of the size x size output pixel centres of a warp by M, each (size, size)."""
    inv = invert_transform(m)
    c = np.arange(size, dtype=np.float64) + 0.5
    gx, gy = np.meshgrid(c, c)
    return inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2], inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]


def outside_share(m: np.ndarray, size: int, width: int, height: int) -> float:
    """Share of the output pixels of a size x size warp by M whose source lies beyond a width x height photo."""
    sx, sy = _source_coords(m, size)
    return float(((sx < 0) | (sx > width) | (sy < 0) | (sy > height)).mean())


def _prefilter(image: Image.Image, landmarks: np.ndarray, m: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Shrink the photo (antialiased) when the warp would downscale by more than 2x, so bilinear sampling
    does not alias; returns the photo and its landmarks in the photo's new pixel coordinates."""
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # output pixels per photo pixel
    if scale >= 0.5:
        return image, landmarks
    f = 2.0 * scale
    w, h = image.size
    nw, nh = max(1, round(w * f)), max(1, round(h * f))
    small = image.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=None)
    return small, landmarks * np.array([nw / w, nh / h])


# ---- canonical landmarks --------------------------------------------------------------------------------

def load_canonical(recipe: str = DEFAULT_RECIPE, path: str | os.PathLike = CANONICAL_FILE) -> np.ndarray:
    """(5, 2) canonical landmarks in [0, 1] crop coordinates for a crop recipe."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no canonical landmarks file {path}; measure them with measure_canonical_landmarks")
    table = json.loads(path.read_text())
    if recipe not in table.get("recipes", {}):
        raise ValueError(f"no canonical landmarks for crop recipe {recipe!r} in {path}; known: {sorted(table.get('recipes', {}))}")
    pts = np.asarray(table["recipes"][recipe]["landmarks"], np.float64)
    assert pts.shape == (5, 2), pts.shape
    return pts


def model_recipe(card: dict[str, Any] | None) -> str:
    """The crop recipe a model was trained on: its card's `crop_recipe`, else the CelebA centre crop."""
    return str((card or {}).get("crop_recipe", DEFAULT_RECIPE))


# ---- detection ------------------------------------------------------------------------------------------

@dataclass
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in photo pixels
    prob: float
    landmarks: np.ndarray  # (5, 2) photo pixels, LANDMARK_NAMES order

    @property
    def side(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def load_detector(device: str | torch.device = "cpu"):
    """MTCNN (dgf_core.faces.mtcnn) from the weights shipped in `weights/mtcnn` (nothing is downloaded). A callable:
    detector(image) -> [mtcnn.Faces]."""
    from .mtcnn import load_detector as load_mtcnn_detector

    return load_mtcnn_detector(device=device)


def detect_faces(image: Image.Image, detector=None, min_prob: float = MIN_FACE_PROB,
                 max_side: int = DETECT_MAX_SIDE, pad: float = DETECT_PAD) -> list[Detection]:
    """All faces MTCNN finds with probability >= min_prob, largest first, in the photo's pixel coordinates.

    The photo is shrunk to `max_side` and padded by `pad` times its side with grey on every side first:
    MTCNN misplaces the landmarks of a face that fills the frame (measured on UTKFace chips: eyes off by
    10% of the side without padding)."""
    detector = detector or load_detector()
    image = image.convert("RGB")
    w, h = image.size
    f = min(1.0, max_side / max(w, h))
    small = image if f == 1.0 else image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
    off = round(pad * max(small.size))
    if off:
        canvas = Image.new("RGB", (small.size[0] + 2 * off, small.size[1] + 2 * off), (128, 128, 128))
        canvas.paste(small, (off, off))
        small_padded = canvas
    else:
        small_padded = small
    (faces,) = detector(small_padded)
    sx, sy = w / small.size[0], h / small.size[1]
    dets = []
    for b, p, lm in zip(faces.boxes, faces.probs, faces.landmarks):
        if not np.isfinite(p) or p < min_prob:
            continue
        b = (np.asarray(b, np.float64) - off) * [sx, sy, sx, sy]
        dets.append(Detection(b, float(p), (np.asarray(lm, np.float64) - off) * [sx, sy]))
    return sorted(dets, key=lambda d: -d.area)


def choose_face(dets: Sequence[Detection], min_face_px: int = MIN_FACE_PX) -> tuple[Detection, list[str]]:
    """The largest face and user notices; AlignmentError when there is none or it is too small."""
    if not dets:
        raise AlignmentError("no face found in this photo; use a photo with one clearly visible face, seen from the front")
    face, notices = dets[0], []
    if len(dets) > 1:
        notices.append(f"{len(dets)} faces found; using the largest one")
    if face.side < min_face_px:
        raise AlignmentError(f"the face is too small ({math.floor(face.side)} px across; at least {min_face_px} px needed); "
                             "use a closer or larger photo")
    return face, notices


LANDMARK_WORDS = ("the eye on the left", "the eye on the right", "the nose", "the left corner of the mouth",
                  "the right corner of the mouth")
BOX_SIDE_WORDS = ("the left side of the face", "the top of the head", "the right side of the face", "the chin")


def missing_parts(face: Detection, width: int, height: int, max_box_outside: float = MAX_BOX_OUTSIDE) -> list[str]:
    """The parts of the face outside a width x height photo (left/right as seen in the photo): landmarks
    outside it, and box edges reaching past it by more than `max_box_outside` times the box side."""
    parts = [name for name, (x, y) in zip(LANDMARK_WORDS, face.landmarks) if not (0 <= x <= width and 0 <= y <= height)]
    side = max(face.side, 1e-6)
    x0, y0, x1, y1 = face.box
    overhang = (-x0, -y0, x1 - width, y1 - height)  # left, top, right, bottom, in photo pixels
    parts += [name for name, o in zip(BOX_SIDE_WORDS, overhang) if o > max_box_outside * side]
    return parts


def check_face_inside(face: Detection, width: int, height: int) -> None:
    """AlignmentError naming the parts of the face that the photo cuts off, if any."""
    parts = missing_parts(face, width, height)
    if parts:
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        raise AlignmentError(f"part of the face is outside the photo ({listed}); use a photo that shows the whole face")


@dataclass
class AlignedFace:
    image: torch.Tensor  # (3, size, size) uint8
    size: int
    transform: np.ndarray  # (2, 3): photo pixels -> aligned pixels
    detection: Detection
    notices: list[str] = field(default_factory=list)
    outside: float = 0.0  # share of the crop that lies beyond the photo (filled in by blurred mirroring)

    def to_pil(self) -> Image.Image:
        return Image.fromarray(self.image.permute(1, 2, 0).numpy())

    def to_float(self) -> torch.Tensor:
        """(1, 3, size, size) in [-1, 1], the generator's range."""
        return self.image[None].float().div(127.5).sub(1.0)


def source_extent(m: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the photo region that a size x size warp by M reads (its output corners mapped back)."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    src = apply_transform(invert_transform(m), corners)
    return float(src[:, 0].min()), float(src[:, 1].min()), float(src[:, 0].max()), float(src[:, 1].max())


def extend_photo(image: Image.Image, region: tuple[int, int, int, int], side: float) -> Image.Image:
    """The photo cut to `region` (x0, y0, x1, y1 in photo pixels, may reach past the photo), extended much as
    the FFHQ alignment script extends its crops (NVlabs/ffhq-dataset): beyond the photo, its edges mirrored
    (reflect), then blurred more the farther from the edge (PAD_BLUR: a light blur within a few pixels, a heavy
    one farther out) and faded into the photo's median colour (fully at PAD_FADE), all in units of `side`, the
    face box side in pixels; so mirrored features read as a soft continuation of the background. Pixels inside
    the photo are unchanged. Returns a (y1 - y0) x (x1 - x0) image."""
    from PIL import ImageFilter

    w, h = image.size
    x0, y0, x1, y1 = region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)  # the part inside the photo
    inner = np.asarray(image.crop((cx0, cy0, cx1, cy1)).convert("RGB"))
    pads = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1), (0, 0))
    mirrored = np.pad(inner, pads, mode="reflect" if min(inner.shape[:2]) > 1 else "edge")  # (y1-y0, x1-x0, 3)
    if not any(p for pair in pads[:2] for p in pair):
        return Image.fromarray(mirrored)
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    dx = np.maximum(np.maximum(-xx, xx - w), 0.0)  # distance beyond the photo's edge, in pixels
    dy = np.maximum(np.maximum(-yy, yy - h), 0.0)
    dist = np.sqrt(dx**2 + dy**2)[..., None] / max(side, 1e-6)  # in face box sides
    out = mirrored.astype(np.float32)
    for sigma, reach in PAD_BLUR:  # a light blur right past the edge, a heavy one farther out
        blurred = np.asarray(Image.fromarray(mirrored).filter(ImageFilter.GaussianBlur(sigma * side)), np.float32)
        out += (blurred - out) * np.clip(dist / reach, 0.0, 1.0)
    out += (np.median(inner.reshape(-1, 3), 0).astype(np.float32) - out) * np.clip(dist / PAD_FADE, 0.0, 1.0)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def align_to(image: Image.Image, landmarks: np.ndarray, size: int, canonical: np.ndarray,
             face_side: float | None = None) -> tuple[torch.Tensor, np.ndarray, float]:
    """Warp a photo so its (5, 2) landmarks land on canonical * size. Where the crop reaches past the photo,
    the photo is extended by blurred mirroring (`extend_photo`; blur scaled by `face_side`, the face box side
    in photo pixels, default the landmarks' span). Returns ((3, size, size) uint8, the (2, 3) photo -> output
    transform, the share of the output that lies beyond the photo)."""
    landmarks = np.asarray(landmarks, np.float64)
    m = estimate_similarity(landmarks, np.asarray(canonical, np.float64) * size)
    src, lm = _prefilter(image.convert("RGB"), landmarks, m)
    m_src = estimate_similarity(lm, np.asarray(canonical, np.float64) * size)
    sw, sh = src.size
    x0, y0, x1, y1 = source_extent(m_src, size)
    if x0 < 0 or y0 < 0 or x1 > sw or y1 > sh:  # extend the photo, then warp from the extended part
        side = (face_side if face_side else float(np.ptp(landmarks, 0).max()) * 1.6) * sw / image.size[0]
        region = (int(np.floor(x0)) - 2, int(np.floor(y0)) - 2, int(np.ceil(x1)) + 2, int(np.ceil(y1)) + 2)
        src = extend_photo(src, region, side)
        m_src = m_src.copy()
        m_src[:, 2] += m_src[:, :2] @ np.array(region[:2], np.float64)  # the region's origin becomes (0, 0)
    out, _ = warp_image(np.asarray(src, dtype=np.uint8), m_src, size)
    outside = outside_share(m, size, *image.size)
    return out.round().to(torch.uint8), m, outside


def align_face(image: Image.Image, size: int | Sequence[int], *, recipe: str = DEFAULT_RECIPE, detector=None,
               min_face_px: int = MIN_FACE_PX, canonical: np.ndarray | None = None) -> list[AlignedFace]:
    """Detect the largest face in a photo and align it at each size (e.g. the generator's 64 and the
    upscaler's 256). Raises AlignmentError with a user-facing message."""
    sizes = [size] if isinstance(size, int) else list(size)
    if not sizes or any(not isinstance(s, int) or s < 8 for s in sizes):
        raise ValueError(f"sizes must be integers >= 8, got {size!r}")
    canonical = load_canonical(recipe) if canonical is None else np.asarray(canonical, np.float64)
    image = image.convert("RGB")
    face, notices = choose_face(detect_faces(image, detector), min_face_px)
    check_face_inside(face, *image.size)
    warped = [align_to(image, face.landmarks, s, canonical, face_side=face.side) for s in sizes]
    outside = warped[int(np.argmax(sizes))][2]  # the same geometry at every size; the largest measures it best
    if outside > PAD_NOTICE:
        notices.append(f"the photo is cropped close to the face: {outside:.0%} of the aligned crop lies beyond it and "
                       "was filled in by mirroring the photo's edges, blurred")
    return [AlignedFace(img, s, m, face, list(notices), outside) for s, (img, m, _) in zip(sizes, warped)]


# ---- measuring the canonical landmarks of a training crop ------------------------------------------------

def measure_canonical_landmarks(paths: Sequence[str | os.PathLike], crop_side: int | None = None, detector=None) -> dict[str, Any]:
    """Median normalized landmarks over training crops made with `data.center_crop_resize`.

    Each image is centre-cropped at its own full shorter side (or resized to `crop_side` first), which has
    the same normalized geometry as the model's low-resolution crop but gives MTCNN more pixels; detection
    is `detect_faces`, the one user photos get. Returns {"landmarks": (5, 2) list, "mad": per-coordinate
    median absolute deviation, "n_detected", "n_images"}.
    """
    from ..data import center_crop_resize

    detector = detector or load_detector()
    norm: list[np.ndarray] = []
    for p in paths:
        with Image.open(p) as im:
            side = crop_side or min(im.size)
            crop = center_crop_resize(im, side)
        dets = detect_faces(crop, detector)
        if dets:
            norm.append(dets[0].landmarks / side)
    if not norm:
        raise ValueError("MTCNN found no face in any of the images")
    arr = np.stack(norm)  # (n, 5, 2)
    med = np.median(arr, 0)
    return {"landmarks": med.round(5).tolist(), "mad": np.median(np.abs(arr - med), 0).round(5).tolist(),
            "n_detected": len(arr), "n_images": len(paths), "landmark_order": list(LANDMARK_NAMES)}


def save_canonical(recipe: str, entry: dict[str, Any], path: str | os.PathLike = CANONICAL_FILE) -> None:
    """Add or replace one recipe's entry in the canonical landmarks JSON."""
    from ..checkpoint import write_json_atomic

    path = Path(path)
    table = json.loads(path.read_text()) if path.is_file() else {"format": "dgf-canonical-landmarks/1", "recipes": {}}
    table["recipes"][recipe] = entry
    write_json_atomic(table, path)
