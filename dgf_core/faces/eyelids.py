"""A blink drawn by the eyelids themselves: the upper lid slides down over the eye, in the picture's own pixels.

A model without an `eyes` direction cannot blink through its latent space (the shipped StyleGAN2 has none that
passes the checks of `motion_directions`), and a blink rendered at the photo's resolution could not show a closed lid
anyway: optical flow moves pixels that exist, and a closed eyelid covers pixels that do not. LivePortrait drives the
eyes by a scalar per eye; we do it with a warp, so it works for every model and for both renders:

For each eye (centre c, eye distance D, in a picture where the eyes lie level, as in an aligned crop), in local
coordinates x' = x - c_x, y' = y - c_y (down positive), inside |x'| < W = EYE_HALF_WIDTH * D:
- the upper lid's margin sits at -u(x) and the lower lid's at +l(x) (u = UPPER * D * s(x), l = LOWER * D * s(x),
  s(x) = sqrt(1 - (x'/W)^2): the eye's almond shape);
- closure k in [0, 1] moves the upper margin to e = -u + k (u + l): at k = 1 it meets the lower lid;
- the band from the top of the lid, -R (R = REACH * D), down to e shows the lid skin that lay between -R and -u,
  stretched to cover it (source y' = -R + (y' + R)(R - u) / (e + R)); below e the eye shows as it was.
So nothing moves above -R, beside the eye or below the lower lid, the lid's lashes (the picture just above -u)
become the closing lid's edge, and k = 0 is the identity. The lid is a layer (`eyelid_warp`: source offsets and a
coverage anti-aliased at its edge) drawn over the picture, not a warp of the whole picture: the edge is a real
discontinuity, and a warp would smear the eye into it.

`photo_landmarks(canvas)` / `face_landmarks(frame)`: where the eyes are (MTCNN on the photo, or on a model frame;
the crop recipe's canonical landmarks when no face is found). Measured in docs/motion.md (the CelebA classifier's Narrow_Eyes probability over a blink).
"""
from __future__ import annotations

import numpy as np

EYE_HALF_WIDTH = 0.24  # of the eye distance: half the eye's width (about 30 mm of 63 mm between the pupils)
UPPER = 0.09  # upper lid margin above the pupil's centre
LOWER = 0.09  # lower lid margin below it
REACH = 0.16  # the lid skin that unfolds as the eye closes: from the lashes up to about the lid crease
EDGE_SOFTNESS = 1.0  # px over which the lid's edge fades into the eye below it (anti-aliasing)
LID_BLUR = 0.04  # horizontal Gaussian sigma of the lid layer (of the eye distance): the stretched skin's streaks go
LASH = 0.35  # how much darker the lid's edge is (the lashes)
LASH_WIDTH = 0.015  # of the eye distance: the lash line's half-width
FROM_BELOW = 0.5  # share of the lid's colour taken from the skin below the eye (lit, where the crease may be in shadow)
BELOW = 0.10  # that skin's row: this far below the lower lid's margin


def eyelid_warp(height: int, width: int, eyes: np.ndarray, closure: float) -> tuple[np.ndarray, np.ndarray]:
    """The closing lids of both eyes as a layer over the picture:
    - offsets (height, width, 4) float32: source offsets (dx, dy) in pixels of the lid's skin (channels 0-1) and of
      the skin below the eye whose colour the lid shares (channels 2-3);
    - maps (height, width, 3) float32: the layer's coverage in [0, 1] (anti-aliased over EDGE_SOFTNESS px at the
      lid's edge), the lash line's darkening along that edge, and the share of the colour from below (FROM_BELOW,
      fading to 0 towards the lid's top, where the layer meets the unmoved picture).
    `closure`: 0 open (coverage 0 everywhere), 1 closed. eyes: (2, 2) the eyes' centres (x, y) in continuous pixel
    coordinates of this picture (pixel i covers [i, i + 1), as the alignment's landmarks). `lid_layer` draws it."""
    off = np.zeros((height, width, 4), np.float32)
    maps = np.zeros((height, width, 3), np.float32)
    k = float(np.clip(closure, 0.0, 1.0))
    eyes = np.asarray(eyes, np.float64).reshape(2, 2) - 0.5  # -> pixel indices (cv2.remap's: pixel i's centre at i)
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    if k <= 0.0 or not np.all(np.isfinite(eyes)) or d < 2.0:
        return off, maps
    half_w, reach = EYE_HALF_WIDTH * d, REACH * d
    for cx, cy in eyes:
        x0, x1 = max(0, int(np.floor(cx - half_w))), min(width, int(np.ceil(cx + half_w)) + 1)
        y0, y1 = max(0, int(np.floor(cy - reach))), min(height, int(np.ceil(cy + LOWER * d + EDGE_SOFTNESS)) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        xs = np.arange(x0, x1, dtype=np.float64) - cx
        ys = np.arange(y0, y1, dtype=np.float64) - cy
        shape = np.sqrt(np.clip(1.0 - (xs / half_w) ** 2, 0.0, 1.0))[None, :]
        upper, lower = UPPER * d * shape, LOWER * d * shape
        edge = -upper + k * (upper + lower)
        y = ys[:, None]
        cover = np.clip((edge - y) / EDGE_SOFTNESS + 0.5, 0.0, 1.0) * (y >= -reach) * (shape > 0)
        inside = cover > 0
        # the lid skin between -reach and -upper, stretched down to the edge (continued a little past it, where the
        # coverage fades out); zero offset at -reach, so nothing above the lid moves
        src = -reach + (y + reach) * (reach - upper) / np.maximum(edge + reach, 1e-6)
        off[y0:y1, x0:x1, 1] += np.where(inside, src - y, 0.0).astype(np.float32)
        off[y0:y1, x0:x1, 3] += np.where(inside, lower + BELOW * d - y, 0.0).astype(np.float32)
        below = FROM_BELOW * np.clip((y + reach) / np.maximum(reach - upper, 1e-6), 0.0, 1.0)
        line = np.exp(-(((y - edge) / (LASH_WIDTH * d)) ** 2)) * np.minimum(1.0, 3.0 * shape)
        here = maps[y0:y1, x0:x1]
        here[..., 0] = np.maximum(here[..., 0], cover)
        here[..., 1] = np.maximum(here[..., 1], np.where(inside, LASH * k * line, 0.0))
        here[..., 2] = np.where(inside, below, here[..., 2])
    return off, maps


def lid_layer(lid_skin: np.ndarray, below_skin: np.ndarray, maps: np.ndarray, eye_distance: float) -> np.ndarray:
    """The lid layer (H, W, 3) float32 as it is drawn, from the picture sampled through both of `eyelid_warp`'s
    offsets: the stretched lid skin mixed with the skin below the eye (maps[..., 2]), blurred across (the stretched
    skin's vertical streaks go) and darkened at its edge by the lashes (maps[..., 1]). `eye_distance`: in this
    picture's pixels. Composite it with maps[..., 0]."""
    import cv2

    beta = maps[..., 2:3]
    skin = (1.0 - beta) * lid_skin + beta * below_skin
    sigma = max(0.5, LID_BLUR * eye_distance)
    soft = cv2.GaussianBlur(skin, (0, 0), sigmaX=sigma, sigmaY=0.3)
    return soft * (1.0 - maps[..., 1:2])


def close_eyes(image: np.ndarray, eyes: np.ndarray, closure: float) -> np.ndarray:
    """(H, W, 3) uint8 -> the same picture with both eyes closed by `closure` (the lid layer drawn bicubic over it;
    a copy at 0)."""
    import cv2

    h, w = image.shape[:2]
    off, maps = eyelid_warp(h, w, eyes, closure)
    if not maps[..., 0].any():
        return image.copy()
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = image.astype(np.float32)
    lid, below = (cv2.remap(img, gx + off[..., c], gy + off[..., c + 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
                  for c in (0, 2))
    layer = lid_layer(lid, below, maps, float(np.linalg.norm(np.subtract(*np.asarray(eyes, np.float64).reshape(2, 2)))))
    a = maps[..., :1]
    return np.clip(np.rint(a * layer + (1.0 - a) * img), 0, 255).astype(np.uint8)


def photo_landmarks(canvas: np.ndarray, detector=None) -> np.ndarray | None:
    """(5, 2) the face's landmarks (MTCNN order: eyes, nose, mouth corners) in a photo's (canvas's) continuous pixel
    coordinates, found at the photo's resolution (more exact than on a 64-px model frame); None where no face is."""
    from PIL import Image

    from .alignment import detect_faces

    faces = detect_faces(Image.fromarray(np.ascontiguousarray(canvas)), detector)
    if not faces:
        return None
    return np.asarray(faces[0].landmarks, np.float64).reshape(5, 2)


def face_landmarks(frame: np.ndarray, canonical: np.ndarray | None = None, detector=None) -> np.ndarray:
    """(5, 2) the landmarks of a (R, R, 3) uint8 face in its continuous pixel coordinates: MTCNN's; where it finds
    no face, the crop recipe's canonical ones (`canonical`: (5, 2) in [0, 1]), or a typical crop's without them."""
    import torch

    from .pose import landmarks_of

    r = frame.shape[0]
    lm, prob = landmarks_of(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None], detector)
    if prob[0] > 0 and np.isfinite(lm[0]).all():
        return lm[0].astype(np.float64)
    if canonical is not None:
        return np.asarray(canonical, np.float64).reshape(5, 2) * r
    return np.array([[0.35, 0.42], [0.65, 0.42], [0.5, 0.58], [0.38, 0.72], [0.62, 0.72]]) * r
