"""A memory at the photo's own resolution: the generator drives the motion, the photo gives the pixels.

`render_photo(canvas, to_aligned, frames)`: the tuned generator's frames (T, r, r, 3) move from its pivot frame
(frame 0, the photo's reconstruction) through the motion. For each frame:
1. Dense optical flow (OpenCV Farneback) from the frame back to the pivot frame, computed in the aligned crop's
   geometry at FLOW_SIDE px (the 64-px frames upsampled; cheap), so that frame ~ pivot(x + flow(x)).
2. The flow is regularised: a median filter removes the speckles, a Gaussian (FLOW_SMOOTH of the side) the
   wavy texture, neighbouring frames are averaged (the clip loops, so circularly), and it is faded to zero over a
   feathered ellipse around the face (`face_weight`). Outside the ellipse nothing moves; across its feather the
   motion dies out smoothly, so the photo is *deformed*, never cut and pasted: no doubled edge where the mask
   meets a turning cheek (our answer to the seam LivePortrait's stitching module solves).
3. The photo (the canvas: the photo scaled to at most MAX_SIDE on the longer side, even sides) is warped by that
   flow, mapped from the aligned geometry into the photo's pixels by the alignment's similarity transform.
4. What warping cannot explain (teeth, a closed eyelid: the frame minus the warped pivot frame) is added as the
   generator's residual, in brightness only (the model's colours would tint the photo), with a dead zone (RESIDUAL_DEADZONE) so flow errors do not leak in, inside the core of
   the feathered ellipse only.
A frame whose model image is the pivot's (frame 0 of every motion) is the canvas itself, bit for bit. A tight photo
(a UTKFace chip) is shown as it is: the alignment's padding is never in a frame, warps read the photo's own
border pixels.
"""
from __future__ import annotations

import math

from typing import Callable

import numpy as np
from PIL import Image

MAX_SIDE = 1024  # longer side of a photo memory
FLOW_SIDE = 256  # the aligned crop's side where the flow is computed
FLOW_SMOOTH = 0.02  # Gaussian sigma of the flow, a share of FLOW_SIDE
RESIDUAL_DEADZONE = 6.0  # residual below this (0..255) is flow error, not new content
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # the residual is added as brightness (Rec. 601 luma)
# the face ellipse in the aligned crop, in units of the canonical eye distance: centre below the eyes' midpoint,
# semi-axes; inside INNER of the ellipse the flow is whole, it fades out by OUTER
ELLIPSE_CENTRE_DY, ELLIPSE_AX, ELLIPSE_AY = 0.3, 1.25, 1.6
INNER, OUTER = 0.8, 1.35

Progress = Callable[[int, int], None]


class RenderError(ValueError):
    """Bad input for the photo renderer; str(e) is a message for the user."""


def _cv2():
    import cv2  # opencv-python-headless (requirements.txt); imported here so `import dgf_core` stays light

    cv2.setNumThreads(1)  # the 2-core CPU: torch threads are the ones that matter
    return cv2


def photo_canvas(photo: Image.Image, max_side: int = MAX_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The clip's frame: the photo, scaled down (antialiased) when its longer side exceeds `max_side`, with even
    sides for H.264 (an odd last row or column is cropped, nothing else resampled). Returns ((H, W, 3) uint8,
    the (2, 3) photo -> canvas transform)."""
    photo = photo.convert("RGB")
    w, h = photo.size
    s = min(1.0, max_side / max(w, h))
    if s < 1.0:
        nw, nh = max(2, round(w * s) // 2 * 2), max(2, round(h * s) // 2 * 2)
        arr = np.asarray(photo.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=None), np.uint8)
        m = np.array([[nw / w, 0, 0], [0, nh / h, 0]], np.float64)
    else:
        if w < 2 or h < 2:
            raise RenderError(f"the photo is too small ({w}x{h})")
        arr = np.asarray(photo, np.uint8)[: h // 2 * 2, : w // 2 * 2]
        m = np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float64)
    return np.ascontiguousarray(arr), m


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) transforms: first b, then a."""
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]], axis=1)


def center_crop_transform(width: int, height: int, resolution: int) -> np.ndarray:
    """The (2, 3) photo -> crop transform of `data.center_crop_resize` (no alignment: the photo is a crop)."""
    s = resolution / min(width, height)
    nw, nh = max(resolution, round(width * s)), max(resolution, round(height * s))
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return np.array([[nw / width, 0, -left], [0, nh / height, -top]], np.float64)


def face_weight(side: int, canonical: np.ndarray) -> np.ndarray:
    """(side, side) float32 in [0, 1]: 1 inside INNER of the face ellipse, easing to 0 at OUTER (aligned crop)."""
    c = np.asarray(canonical, np.float64) * side
    eye_l, eye_r = c[0], c[1]
    e = float(np.linalg.norm(eye_r - eye_l))
    centre = (eye_l + eye_r) / 2 + np.array([0.0, ELLIPSE_CENTRE_DY * e])
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    r = np.sqrt(((xx - centre[0]) / (ELLIPSE_AX * e)) ** 2 + ((yy - centre[1]) / (ELLIPSE_AY * e)) ** 2)
    x = np.clip((OUTER - r) / (OUTER - INNER), 0.0, 1.0)
    return (x * x * (3 - 2 * x)).astype(np.float32)  # smoothstep: no kink where the feather starts or ends


def _gray(img: np.ndarray) -> np.ndarray:
    return _cv2().cvtColor(img, _cv2().COLOR_RGB2GRAY)


def model_flows(frames: np.ndarray, side: int = FLOW_SIDE, pivot: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames (T, r, r, 3) uint8 -> (flows (T, side, side, 2) float32, the frames upsampled (T, side, side, 3)
    float32, still (T,) bool: frames identical to the pivot frame, whose flow is zero). flow[t](x) points from a
    pixel of frame t to where it was in the pivot frame: frame_t(x) ~ pivot(x + flow(x))."""
    cv2 = _cv2()
    t = frames.shape[0]
    up = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_CUBIC) for f in frames]).astype(np.float32)
    up = np.clip(up, 0, 255)
    g = [_gray(f.astype(np.uint8)) for f in up]
    still = np.array([np.array_equal(frames[i], frames[pivot]) for i in range(t)])
    flows = np.zeros((t, side, side, 2), np.float32)
    for i in range(t):
        if not still[i]:
            flows[i] = cv2.calcOpticalFlowFarneback(g[i], g[pivot], None, pyr_scale=0.5, levels=4, winsize=max(9, side // 12),
                                                    iterations=3, poly_n=7, poly_sigma=1.5,
                                                    flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
    return flows, up, still


def regularize(flows: np.ndarray, still: np.ndarray, weight: np.ndarray, *, smooth: float = FLOW_SMOOTH,
               temporal: bool = True) -> np.ndarray:
    """Median (5 px) then Gaussian (sigma `smooth` x side) per frame, a circular [1, 2, 1] average over
    neighbouring frames, times the face `weight`; frames in `still` stay exactly zero."""
    cv2 = _cv2()
    side = flows.shape[1]
    sigma = max(0.5, smooth * side)
    out = np.empty_like(flows)
    for i, f in enumerate(flows):
        f = np.stack([cv2.medianBlur(np.ascontiguousarray(f[..., k]), 5) for k in range(2)], -1)
        out[i] = cv2.GaussianBlur(f, (0, 0), sigma)
    if temporal and len(out) > 2:
        out = 0.25 * np.roll(out, 1, 0) + 0.5 * out + 0.25 * np.roll(out, -1, 0)
    out *= weight[None, :, :, None]
    out[still] = 0.0
    return out


def _warp(src: np.ndarray, flow: np.ndarray, ax: np.ndarray, ay: np.ndarray, px: np.ndarray, py: np.ndarray,
          inv_lin: np.ndarray) -> np.ndarray:
    """The canvas box (float32) moved by one frame's flow (aligned-crop units at the flow's side, sampled at ax, ay)."""
    cv2 = _cv2()
    f = cv2.remap(flow, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # aligned units
    dx = inv_lin[0, 0] * f[..., 0] + inv_lin[0, 1] * f[..., 1]  # -> canvas pixels
    dy = inv_lin[1, 0] * f[..., 0] + inv_lin[1, 1] * f[..., 1]
    return cv2.remap(src, (px + dx).astype(np.float32), (py + dy).astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)  # bicubic: bilinear softens the photo's detail


def render_photo(canvas: np.ndarray, to_aligned: np.ndarray, frames: np.ndarray, canonical: np.ndarray, *,
                 flow_side: int = FLOW_SIDE, residual: bool = True, lids: np.ndarray | None = None,
                 smile: np.ndarray | None = None, landmarks: np.ndarray | None = None,
                 progress: Progress | None = None) -> np.ndarray:
    """The photo memory's frames (T, H, W, 3) uint8 at the canvas's size.

    canvas: (H, W, 3) uint8 (`photo_canvas`). to_aligned: (2, 3) canvas pixels -> pixels of the r x r aligned crop
    the model frames are in. frames: (T, r, r, 3) uint8, the generator along the motion; frame 0 is the pivot.
    canonical: (5, 2) canonical landmarks of the crop recipe (in [0, 1]), which place the face ellipse.
    lids: (T,) eyelid closure per frame in [0, 1] (a blink, `faces.eyelids`); smile: (T,) the mouth's corners' lift
    (`faces.smile`); both need landmarks: (5, 2) the face's landmarks in the pivot frame's continuous pixel
    coordinates. Both are drawn in the pivot's coordinates and carried by the frame's flow, after its regularisation
    (whose blur would soften the lid's edge) and apart from the residual (the model's own new content)."""
    cv2 = _cv2()
    assert canvas.ndim == 3 and canvas.shape[2] == 3 and canvas.dtype == np.uint8, canvas.shape
    assert frames.ndim == 4 and frames.shape[1] == frames.shape[2] and frames.shape[3] == 3, frames.shape
    h, w = canvas.shape[:2]
    r = frames.shape[1]
    side = max(flow_side, r)
    weight = face_weight(side, canonical)
    flows, up, still = model_flows(frames, side)
    flows = regularize(flows, still, weight)
    moved = flows  # the photo's sampling flow: the model's, plus the drawn smile; `flows` stays for the residual
    gxs, gys = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
    lm = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(5, 2) * (side / r)
    if smile is not None:
        assert smile.shape == (len(frames),) and lm is not None, (getattr(smile, "shape", None), len(frames))
        from .smile import smile_offsets

        moved = flows.copy()
        for i, k in enumerate(smile):
            if k != 0:
                off = smile_offsets(side, side, lm[3:5], float(np.linalg.norm(lm[1] - lm[0])), float(k))
                moved[i] += cv2.remap(off, gxs + flows[i][..., 0], gys + flows[i][..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                still[i] = False
    eyes = None if lm is None else lm[:2] / (side / r)
    if lids is not None:
        assert lids.shape == (len(frames),) and eyes is not None, (getattr(lids, "shape", None), len(frames))
        from .eyelids import eyelid_warp, shade_lid

        lids_at = {}  # per blinking frame: the lid layer's sampling flow, its coverage and its lash line
        for i, k in enumerate(lids):
            if k > 0:
                off, alpha, lash = eyelid_warp(side, side, np.asarray(eyes, np.float64) * (side / r), float(k))
                # the lid layer samples p + f(p) + lid(p + f(p)): the lids close where the eyes are in this frame
                at = (gxs + moved[i][..., 0], gys + moved[i][..., 1])
                lids_at[i] = (moved[i] + cv2.remap(off, *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0),
                              cv2.remap(np.stack([alpha, lash], -1), *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=0))
                still[i] = False
    else:
        lids_at = {}
    # canvas pixel centres -> aligned crop pixels at `side` (continuous coordinates, pixel i covers [i, i + 1))
    m = to_aligned * (side / r)
    a_lin = m[:, :2]
    inv_lin = np.linalg.inv(a_lin)
    # the part of the canvas the face ellipse can touch (its bounding box, mapped back, plus a margin)
    ys, xs = np.nonzero(weight > 0)
    box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]],
                   np.float64)
    inv = np.concatenate([inv_lin, -(inv_lin @ m[:, 2])[:, None]], axis=1)
    cb = box @ inv[:, :2].T + inv[:, 2]
    x0, y0 = max(0, int(np.floor(cb[:, 0].min())) - 2), max(0, int(np.floor(cb[:, 1].min())) - 2)
    x1, y1 = min(w, int(np.ceil(cb[:, 0].max())) + 2), min(h, int(np.ceil(cb[:, 1].max())) + 2)
    out = np.repeat(canvas[None], len(frames), axis=0)
    if x1 <= x0 or y1 <= y0:  # the face lies outside the canvas: nothing moves
        return out
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    ax = (m[0, 0] * gx + m[0, 1] * gy + m[0, 2] - 0.5).astype(np.float32)  # sample positions in pixel-index units
    ay = (m[1, 0] * gx + m[1, 1] * gy + m[1, 2] - 0.5).astype(np.float32)
    core = cv2.remap(weight * weight, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    src = canvas.astype(np.float32)
    px, py = (gx - 0.5).astype(np.float32), (gy - 0.5).astype(np.float32)
    gx_s, gy_s = gxs, gys
    for i in range(len(frames)):
        if not still[i]:
            warped = _warp(src, moved[i], ax, ay, px, py, inv_lin)
            if i in lids_at:  # the closing lids, a layer over the moved photo
                lid_flow, maps = lids_at[i]
                al = cv2.remap(maps, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                a = al[..., :1]
                eye_d = float(np.linalg.norm(np.subtract(*np.asarray(eyes, np.float64).reshape(2, 2)))) * side / r
                lid = shade_lid(_warp(src, lid_flow, ax, ay, px, py, inv_lin), al[..., 1],
                                eye_d / math.sqrt(abs(np.linalg.det(a_lin))))  # the eye distance in canvas pixels
                warped = a * lid + (1.0 - a) * warped
            if residual:
                moved_pivot = cv2.remap(up[0], gx_s + flows[i][..., 0], gy_s + flows[i][..., 1], cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
                res = (up[i] - moved_pivot) @ LUMA  # brightness only: the model's 64-px colours would tint the photo
                res = np.sign(res) * np.maximum(np.abs(res) - RESIDUAL_DEADZONE, 0.0)
                res = cv2.remap(res, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                warped = warped + core * res[..., None]
            out[i, y0:y1, x0:x1] = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
        if progress is not None:
            progress(i + 1, len(frames))
    return out
