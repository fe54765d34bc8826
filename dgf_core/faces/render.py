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
5. Drawn at the photo's resolution, in the pivot's coordinates and carried by the frame's flow: the head's turn
   (`faces.turn`, the face rotated as a solid) and the mouth's corners' lift of a smile (`faces.smile`), both added
   to the flow, and the eyelids of a blink (`faces.eyelids`, a layer).
`iter_photo_frames` yields the same frames one at a time, holding three neighbouring flows, for a clip streamed into
its MP4 (`memory.make_memory`); `render_photo` computes every flow at once and is its reference.
A frame whose model image is the pivot's (frame 0 of every motion) is the canvas itself, bit for bit. A tight photo
(a UTKFace chip) is shown as it is: the alignment's padding is never in a frame, warps read the photo's own
border pixels.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

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
    t = frames.shape[0]
    up = np.stack([_upsampled(f, side) for f in frames])
    g = [_gray(f.astype(np.uint8)) for f in up]
    still = np.array([np.array_equal(frames[i], frames[pivot]) for i in range(t)])
    flows = np.zeros((t, side, side, 2), np.float32)
    for i in range(t):
        if not still[i]:
            flows[i] = _flow(g[i], g[pivot], side)
    return flows, up, still


def _upsampled(frame: np.ndarray, side: int) -> np.ndarray:
    """(r, r, 3) uint8 -> (side, side, 3) float32 in [0, 255], bicubic."""
    cv2 = _cv2()
    return np.clip(cv2.resize(frame, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32), 0, 255)


def _flow(gray: np.ndarray, gray_pivot: np.ndarray, side: int) -> np.ndarray:
    cv2 = _cv2()
    return cv2.calcOpticalFlowFarneback(gray, gray_pivot, None, pyr_scale=0.5, levels=4, winsize=max(9, side // 12),
                                        iterations=3, poly_n=7, poly_sigma=1.5, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def _smoothed(flow: np.ndarray, sigma: float) -> np.ndarray:
    """One frame's flow (side, side, 2): median (5 px), then Gaussian."""
    cv2 = _cv2()
    f = np.stack([cv2.medianBlur(np.ascontiguousarray(flow[..., k]), 5) for k in range(2)], -1)
    return cv2.GaussianBlur(f, (0, 0), sigma)


def regularize(flows: np.ndarray, still: np.ndarray, weight: np.ndarray, *, smooth: float = FLOW_SMOOTH,
               temporal: bool = True) -> np.ndarray:
    """Median (5 px) then Gaussian (sigma `smooth` x side) per frame, a circular [1, 2, 1] average over
    neighbouring frames, times the face `weight`; frames in `still` stay exactly zero."""
    side = flows.shape[1]
    sigma = max(0.5, smooth * side)
    out = np.empty_like(flows)
    for i, f in enumerate(flows):
        out[i] = _smoothed(f, sigma)
    if temporal and len(out) > 2:
        out = 0.25 * np.roll(out, 1, 0) + 0.5 * out + 0.25 * np.roll(out, -1, 0)
    out *= weight[None, :, :, None]
    out[still] = 0.0
    return out


class _Warp:
    """Where a photo memory's frames move on the canvas, and the warp of the canvas by one frame's flow."""

    def __init__(self, canvas: np.ndarray, to_aligned: np.ndarray, r: int, side: int, weight: np.ndarray):
        cv2 = _cv2()
        h, w = canvas.shape[:2]
        # canvas pixel centres -> aligned crop pixels at `side` (continuous coordinates, pixel i covers [i, i + 1))
        m = to_aligned * (side / r)
        self.inv_lin = np.linalg.inv(m[:, :2])
        self.scale = math.sqrt(abs(np.linalg.det(m[:, :2])))  # aligned px (at side) per canvas px
        # the part of the canvas the face ellipse can touch (its bounding box, mapped back, plus a margin)
        ys, xs = np.nonzero(weight > 0)
        box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]],
                       np.float64)
        inv = np.concatenate([self.inv_lin, -(self.inv_lin @ m[:, 2])[:, None]], axis=1)
        cb = box @ inv[:, :2].T + inv[:, 2]
        x0, y0 = max(0, int(np.floor(cb[:, 0].min())) - 2), max(0, int(np.floor(cb[:, 1].min())) - 2)
        x1, y1 = min(w, int(np.ceil(cb[:, 0].max())) + 2), min(h, int(np.ceil(cb[:, 1].max())) + 2)
        self.box = (slice(y0, y1), slice(x0, x1)) if x1 > x0 and y1 > y0 else None  # None: the face is off the canvas
        if self.box is None:
            return
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
        self.ax = (m[0, 0] * gx + m[0, 1] * gy + m[0, 2] - 0.5).astype(np.float32)  # sample positions in pixel-index units
        self.ay = (m[1, 0] * gx + m[1, 1] * gy + m[1, 2] - 0.5).astype(np.float32)
        self.core = cv2.remap(weight * weight, self.ax, self.ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)[..., None]
        self.src = canvas.astype(np.float32)
        self.px, self.py = (gx - 0.5).astype(np.float32), (gy - 0.5).astype(np.float32)
        self.gx_s, self.gy_s = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))

    def _moved(self, flow: np.ndarray) -> np.ndarray:
        """The canvas box (float32) sampled through a flow (side, side, 2; aligned-crop units)."""
        cv2 = _cv2()
        f = cv2.remap(flow, self.ax, self.ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # aligned units
        inv_lin = self.inv_lin
        dx = inv_lin[0, 0] * f[..., 0] + inv_lin[0, 1] * f[..., 1]  # -> canvas pixels
        dy = inv_lin[1, 0] * f[..., 0] + inv_lin[1, 1] * f[..., 1]
        return cv2.remap(self.src, (self.px + dx).astype(np.float32), (self.py + dy).astype(np.float32), cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)  # bicubic: bilinear softens the photo's detail

    def patch(self, flow: np.ndarray, up: np.ndarray, up_pivot: np.ndarray, residual: bool,
              drawn: "Drawn | None" = None, i: int = 0) -> np.ndarray:
        """The canvas inside `box` (uint8) warped by a regularised flow (side, side, 2); `up`, `up_pivot`: the frame
        and the pivot upsampled to side (the residual). `drawn`: what frame i draws besides (a smile, a blink)."""
        cv2 = _cv2()
        sample, lid = (flow, None) if drawn is None else drawn.at(i, flow, self.gx_s, self.gy_s)
        warped = self._moved(sample)
        if lid is not None:  # the closing lids, a layer over the moved photo
            from .eyelids import lid_layer

            lid_flow, below_flow, maps = lid
            m = cv2.remap(maps, self.ax, self.ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            layer = lid_layer(self._moved(lid_flow), self._moved(below_flow), m, drawn.eye_distance / self.scale)
            warped = m[..., :1] * layer + (1.0 - m[..., :1]) * warped
        if residual:
            moved_pivot = cv2.remap(up_pivot, self.gx_s + flow[..., 0], self.gy_s + flow[..., 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            res = (up - moved_pivot) @ LUMA  # brightness only: the model's 64-px colours would tint the photo
            res = np.sign(res) * np.maximum(np.abs(res) - RESIDUAL_DEADZONE, 0.0)
            res = cv2.remap(res, self.ax, self.ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            warped = warped + self.core * res[..., None]
        return np.clip(np.rint(warped), 0, 255).astype(np.uint8)


class Drawn:
    """What a photo memory draws besides the model's motion, per frame, in the pivot's aligned coordinates at the
    flow's side: the head's turn (`faces.turn`) and the smile's corners (`faces.smile`), offsets added to the flow,
    and the eyelids (`faces.eyelids`: a layer). `landmarks`: (5, 2) in the model frames' continuous pixels (r px);
    lids, smile: (T,) or None; turn: (T,) degrees or None; weight: (side, side) the face ellipse the turn fades with."""

    def __init__(self, landmarks: np.ndarray, r: int, side: int, lids: np.ndarray | None, smile: np.ndarray | None,
                 turn: np.ndarray | None = None, weight: np.ndarray | None = None):
        self.lm = np.asarray(landmarks, np.float64).reshape(5, 2) * (side / r)
        self.side = side
        self.eye_distance = float(np.linalg.norm(self.lm[1] - self.lm[0]))  # at side
        self.lids, self.smile, self.turn = lids, smile, turn
        self._solid = None
        if turn is not None:
            from .turn import Turn

            self._solid = Turn(side, side, self.lm, weight)

    def active(self, i: int) -> bool:
        return bool((self.lids is not None and self.lids[i] > 0) or (self.smile is not None and self.smile[i] != 0)
                    or (self.turn is not None and self.turn[i] != 0))

    def at(self, i: int, flow: np.ndarray, gx: np.ndarray, gy: np.ndarray):
        """(the flow the photo is sampled through, None or (the lid skin's flow, the skin below's flow, the lid's
        maps: `eyelids.eyelid_warp`))."""
        cv2 = _cv2()
        here = (gx + flow[..., 0], gy + flow[..., 1])  # p + f(p): where the pivot's features are in this frame
        sample, off = flow, None
        if self.turn is not None and self.turn[i] != 0:
            off = self._solid.offsets(float(self.turn[i]))
        if self.smile is not None and self.smile[i] != 0:
            from .smile import smile_offsets

            s = smile_offsets(self.side, self.side, self.lm[3:5], self.eye_distance, float(self.smile[i]))
            off = s if off is None else off + s
        if off is not None:
            sample = flow + cv2.remap(off, *here, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if self.lids is None or self.lids[i] <= 0:
            return sample, None
        from .eyelids import eyelid_warp

        off, maps = eyelid_warp(self.side, self.side, self.lm[:2], float(self.lids[i]))
        here = (gx + sample[..., 0], gy + sample[..., 1])
        at = lambda a: cv2.remap(a, *here, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # noqa: E731
        return sample, (sample + at(off[..., :2]), sample + at(off[..., 2:]), at(maps))


def _check_photo_input(canvas: np.ndarray, frames: np.ndarray) -> None:
    assert canvas.ndim == 3 and canvas.shape[2] == 3 and canvas.dtype == np.uint8, canvas.shape
    assert frames.ndim == 4 and frames.shape[1] == frames.shape[2] and frames.shape[3] == 3, frames.shape


def _drawn(frames: np.ndarray, side: int, lids: np.ndarray | None, smile: np.ndarray | None,
           landmarks: np.ndarray | None, turn: np.ndarray | None = None, weight: np.ndarray | None = None) -> Drawn | None:
    for name, c in (("lids", lids), ("smile", smile), ("turn", turn)):
        if c is not None and (c.shape != (len(frames),) or landmarks is None):
            raise ValueError(f"{name} needs one value per frame ({len(frames)}) and the face's landmarks")
    if lids is None and smile is None and turn is None:
        return None
    return Drawn(landmarks, frames.shape[1], side, lids, smile, turn, weight)


def render_photo(canvas: np.ndarray, to_aligned: np.ndarray, frames: np.ndarray, canonical: np.ndarray, *,
                 flow_side: int = FLOW_SIDE, residual: bool = True, lids: np.ndarray | None = None,
                 smile: np.ndarray | None = None, landmarks: np.ndarray | None = None,
                 turn: np.ndarray | None = None, progress: Progress | None = None) -> np.ndarray:
    """The photo memory's frames (T, H, W, 3) uint8 at the canvas's size, every flow computed at once (the reference
    for `iter_photo_frames`).

    canvas: (H, W, 3) uint8 (`photo_canvas`). to_aligned: (2, 3) canvas pixels -> pixels of the r x r aligned crop
    the model frames are in. frames: (T, r, r, 3) uint8, the generator along the motion; frame 0 is the pivot.
    canonical: (5, 2) canonical landmarks of the crop recipe (in [0, 1]), which place the face ellipse.
    lids: (T,) eyelid closure per frame in [0, 1] (a blink, `faces.eyelids`); smile: (T,) the mouth's corners' lift
    (`faces.smile`); turn: (T,) the head's drawn turn in degrees (`faces.turn`); each needs landmarks: (5, 2) the
    face's landmarks in the model frames' continuous pixels. They are drawn after the flow's regularisation (whose
    blur would soften the lid's edge) and apart from the residual."""
    _check_photo_input(canvas, frames)
    r = frames.shape[1]
    side = max(flow_side, r)
    weight = face_weight(side, canonical)
    flows, up, still = model_flows(frames, side)
    flows = regularize(flows, still, weight)
    drawn = _drawn(frames, side, lids, smile, landmarks, turn, weight)
    warp = _Warp(canvas, to_aligned, r, side, weight)
    out = np.repeat(canvas[None], len(frames), axis=0)
    if warp.box is None:
        return out
    for i in range(len(frames)):
        if not still[i] or (drawn is not None and drawn.active(i)):
            out[i][warp.box] = warp.patch(flows[i], up[i], up[0], residual, drawn, i)
        if progress is not None:
            progress(i + 1, len(frames))
    return out


def iter_photo_frames(canvas: np.ndarray, to_aligned: np.ndarray, frames: np.ndarray, canonical: np.ndarray, *,
                      flow_side: int = FLOW_SIDE, residual: bool = True, lids: np.ndarray | None = None,
                      smile: np.ndarray | None = None, landmarks: np.ndarray | None = None,
                      turn: np.ndarray | None = None, progress: Progress | None = None) -> Iterator[np.ndarray]:
    """`render_photo`'s frames one at a time, each (H, W, 3) uint8, the same pixels: the flows of at most three
    neighbouring frames are held (the [1, 2, 1] average needs frame i - 1 and i + 1; the loop's wrap-around meets
    the pivot, whose flow is zero), so memory does not grow with the clip's length."""
    _check_photo_input(canvas, frames)
    t, r = frames.shape[0], frames.shape[1]
    side = max(flow_side, r)
    weight = face_weight(side, canonical)[:, :, None]
    drawn = _drawn(frames, side, lids, smile, landmarks, turn, weight[..., 0])
    sigma = max(0.5, FLOW_SMOOTH * side)
    warp = _Warp(canvas, to_aligned, r, side, weight[..., 0])
    up_pivot = _upsampled(frames[0], side)
    gray_pivot = _gray(up_pivot.astype(np.uint8))
    zero = np.zeros((side, side, 2), np.float32)
    held: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}  # frame -> (smoothed flow, upsampled); None: still

    def smoothed(j: int) -> tuple[np.ndarray, np.ndarray] | None:
        if j not in held:
            if np.array_equal(frames[j], frames[0]):
                held[j] = None
            else:
                up = _upsampled(frames[j], side)
                held[j] = (_smoothed(_flow(_gray(up.astype(np.uint8)), gray_pivot, side), sigma), up)
        return held[j]

    for i in range(t):
        for j in [j for j in held if j < i - 1]:  # what no later frame needs
            del held[j]
        here = smoothed(i) if warp.box is not None else None
        frame = canvas.copy()
        if here is not None:
            flow = here[0]
            if t > 2:
                prev, nxt = smoothed((i - 1) % t), smoothed((i + 1) % t)
                flow = 0.25 * (zero if prev is None else prev[0]) + 0.5 * flow + 0.25 * (zero if nxt is None else nxt[0])
            else:
                flow = flow.copy()
            flow *= weight
            frame[warp.box] = warp.patch(flow, here[1], up_pivot, residual, drawn, i)
        elif warp.box is not None and drawn is not None and drawn.active(i):  # the model is still; the lids are not
            frame[warp.box] = warp.patch(zero, up_pivot, up_pivot, residual, drawn, i)
        if progress is not None:
            progress(i + 1, t)
        yield frame
