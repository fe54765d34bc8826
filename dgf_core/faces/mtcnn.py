"""Face detection with five landmarks: the MTCNN cascade, run by the project's own code from the weights it
ships (`weights/mtcnn`: safetensors + config.json with source and licence). Nothing is downloaded.

`detect` is a port of facenet-pytorch 2.6.0's `detect_face` (MIT): the same image pyramid, P-Net windows,
non-maximum suppression, R-Net / O-Net refinement, box regression and landmarks, in the same floating-point
operations, so it gives facenet-pytorch's boxes, probabilities and landmarks (tests/test_mtcnn.py checks
stored values; docs/results/face-detectors.json compares the two on real photos).

Coordinates are facenet-pytorch's: pixels of the image given, x right, y down; boxes (x0, y0, x1, y1);
landmarks left eye, right eye, nose, left mouth corner, right mouth corner (left/right as seen in the image).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import batched_nms

from ..models.mtcnn import MTCNN, MTCNNConfig

MTCNN_FORMAT = "dgf-mtcnn/1"
MTCNN_DIR = Path(__file__).resolve().parents[2] / "weights" / "mtcnn"
STAGE_BATCH = 512  # crops per R-Net / O-Net forward (facenet-pytorch's `fixed_batch_process`)


@dataclass
class Faces:
    """The faces found in one image, in the cascade's order (O-Net probability, highest first)."""
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1
    probs: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32

    def __len__(self) -> int:
        return len(self.probs)


@dataclass(frozen=True)
class FaceDetector:
    """The MTCNN networks bound to the cascade: `detector(images)` is `detect(detector.net, images)`. Holds no
    per-call state, so one instance serves every request and thread."""
    net: MTCNN

    def __call__(self, images: Any) -> list[Faces]:
        return detect(self.net, images)


def load_detector(folder: str | os.PathLike = MTCNN_DIR, device: str | torch.device = "cpu") -> FaceDetector:
    """The shipped MTCNN (eval mode, no grads) from `weights/mtcnn`. Raises CheckpointError when the folder is
    incomplete or its weights do not match the sha256 in its config.json."""
    from ..checkpoint import load_net

    net, _, _ = load_net(folder, MTCNN_FORMAT, MTCNNConfig, MTCNN, device)
    return FaceDetector(net)


def _as_batch(images: Any, device: torch.device) -> torch.Tensor:
    """A PIL image, a list of equal-size PIL images, (H, W, 3) or (B, H, W, 3) uint8 -> (B, H, W, 3) tensor."""
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if any(im.size != images[0].size for im in images):
            raise ValueError("MTCNN runs a batch of images of one size only")
        images = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    x = torch.as_tensor(np.array(images, copy=True) if isinstance(images, np.ndarray) else images, device=device)
    if x.ndim == 3:
        x = x[None]
    assert x.ndim == 4 and x.shape[-1] == 3, f"expected (B, H, W, 3) images, got {tuple(x.shape)}"
    return x


def _resample(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(img, size=size, mode="area")


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _windows(reg: torch.Tensor, probs: torch.Tensor, scale: float, thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net output cells above `thresh` -> ((n, 9) [x0, y0, x1, y1, prob, 4 offsets] in image pixels, (n,) image index)."""
    stride, cell = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= thresh
    idx = mask.nonzero()  # (n, 3): image, y, x
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    xy = idx[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * xy + 1) / scale).floor()
    q2 = ((stride * xy + cell - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), idx[:, 0]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (n, >=4) made square around their centre, side = the longer side (in place)."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side.repeat(2, 1).permute(1, 0)
    return boxes


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Apply (n, 4) offsets (shares of the box side, facenet's +1 pixel convention) to boxes (in place)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = torch.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                                boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h]).permute(1, 0)
    return boxes


def _crops(imgs: torch.Tensor, boxes: torch.Tensor, image_inds: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop each box (clipped to its image; 1-based like the MATLAB original) and resize it to side x side.
    imgs: (B, 3, H, W). Returns ((n, 3, side, side) normalized crops, (n,) indices of the boxes cropped)."""
    h, w = imgs.shape[2:4]
    b = boxes.trunc().int().cpu().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    keep = [k for k in range(len(b)) if ey[k] > y[k] - 1 and ex[k] > x[k] - 1]
    out = [_resample(imgs[image_inds[k], :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]].unsqueeze(0), (side, side)) for k in keep]
    crops = torch.cat(out) if out else imgs.new_zeros((0, 3, side, side))
    return _normalize(crops), torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def _batched(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    outs = [net(x[i : i + STAGE_BATCH]) for i in range(0, len(x), STAGE_BATCH)]
    return tuple(torch.cat(v, dim=0) for v in zip(*outs))


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS with overlap = intersection / smaller area (the original's "Min"), +1 pixel areas."""
    x1, y1, x2, y2 = (boxes[:, i].copy() for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i, rest = order[-1], order[:-1]
        pick.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = iw * ih / np.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(pick, dtype=np.int64)


def _batched_nms_min(boxes: torch.Tensor, scores: torch.Tensor, image_inds: torch.Tensor, threshold: float) -> torch.Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    shifted = boxes + (image_inds.to(boxes) * (boxes.max() + 1))[:, None]  # images never overlap
    keep = _nms_min(shifted.cpu().numpy(), scores.cpu().numpy(), threshold)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


@torch.no_grad()
def detect(net: MTCNN, images: Any) -> list[Faces]:
    """All faces in each image: P-Net on a pyramid, then R-Net and O-Net on the surviving windows.

    images: a PIL image, a list of equal-size PIL images, or (H, W, 3) / (B, H, W, 3) uint8 (array or tensor).
    Returns one `Faces` per image.
    """
    cfg = net.cfg
    dev = next(net.parameters()).device
    dtype = next(net.parameters()).dtype
    imgs = _as_batch(images, dev).permute(0, 3, 1, 2).type(dtype)  # (B, 3, H, W) in [0, 255]
    n_images = len(imgs)
    h, w = imgs.shape[2:4]

    # pyramid: the first scale maps min_face_size to P-Net's 12 px window
    m = 12.0 / cfg.min_face_size
    minl, scale, scales = min(h, w) * m, m, []
    while minl >= 12:
        scales.append(scale)
        scale, minl = scale * cfg.factor, minl * cfg.factor

    # stage 1: P-Net windows, NMS within each scale and image, then across scales
    boxes, image_inds, picks, offset = [], [], [], 0
    for s in scales:
        reg, probs = net.pnet(_normalize(_resample(imgs, (int(h * s + 1), int(w * s + 1)))))
        b, ii = _windows(reg, probs[:, 1], s, cfg.thresholds[0])
        boxes.append(b)
        image_inds.append(ii)
        picks.append(batched_nms(b[:, :4], b[:, 4], ii, 0.5) + offset)
        offset += b.shape[0]
    if scales:
        boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
        pick = torch.cat(picks)
        boxes, image_inds = boxes[pick], image_inds[pick]
    else:  # an image smaller than min_face_size: nothing to search
        boxes, image_inds = imgs.new_zeros((0, 9)), torch.zeros(0, dtype=torch.long, device=dev)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                         boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh, boxes[:, 4]]).permute(1, 0)
    boxes = _square(boxes)

    # stage 2: R-Net on 24x24 crops
    if len(boxes) > 0:
        crops, kept = _crops(imgs, boxes, image_inds, 24)
        boxes, image_inds = boxes[kept], image_inds[kept]
        reg, probs = _batched(net.rnet, crops) if len(crops) else (crops.new_zeros((0, 4)), crops.new_zeros((0, 2)))
        score = probs[:, 1]
        ok = score > cfg.thresholds[1]
        boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
        image_inds, reg = image_inds[ok], reg[ok]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, reg = boxes[pick], image_inds[pick], reg[pick]
        boxes = _square(_regress(boxes, reg))

    # stage 3: O-Net on 48x48 crops: probabilities, boxes, landmarks; NMS by overlap with the smaller box
    points = torch.zeros(0, 5, 2, device=dev)
    if len(boxes) > 0:
        crops, kept = _crops(imgs, boxes, image_inds, 48)
        boxes, image_inds = boxes[kept], image_inds[kept]
        if len(crops):
            reg, lm, probs = _batched(net.onet, crops)
        else:
            reg, lm, probs = crops.new_zeros((0, 4)), crops.new_zeros((0, 10)), crops.new_zeros((0, 2))
        score = probs[:, 1]
        ok = score > cfg.thresholds[2]
        lm = lm[ok].permute(1, 0)  # (10, n)
        boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
        image_inds, reg = image_inds[ok], reg[ok]
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        px = bw.repeat(5, 1) * lm[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        py = bh.repeat(5, 1) * lm[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((px, py)).permute(2, 1, 0)  # (n, 5, 2)
        boxes = _regress(boxes, reg)
        pick = _batched_nms_min(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes, points, image_inds = boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()
    out = []
    for i in range(n_images):
        sel = np.where(image_inds == i)[0]
        out.append(Faces(boxes[sel, :4].reshape(-1, 4).copy(), boxes[sel, 4].copy(), points[sel].reshape(-1, 5, 2).copy()))
    return out


DETECTION_THRESHOLDS = (0.9, 0.99, 0.999)
MIN_DETECTION_SIDE = 64  # MTCNN's smallest face is 20 px at its first scale; smaller images are upsampled to this


# ---- the face rate (a quality metric: the share of images with a face MTCNN is sure of) ---------------------------------------------------------------------------------------

def load_mtcnn(device: str | torch.device = "cpu"):
    """MTCNN (dgf_core.faces.mtcnn, weights shipped in weights/mtcnn): facenet-pytorch's probabilities, bit for bit."""
    return load_detector(device=torch.device(device))


@torch.no_grad()
def face_probabilities(images_u8: torch.Tensor, detector=None, batch_size: int = 128) -> np.ndarray:
    """(N, 3, H, W) uint8 -> (N,) highest MTCNN face probability per image (0 where none is found)."""
    detector = detector or load_mtcnn()
    out = np.zeros(len(images_u8), dtype=np.float64)
    for i in range(0, len(images_u8), batch_size):
        batch = images_u8[i : i + batch_size]
        if min(batch.shape[-2:]) < MIN_DETECTION_SIDE:  # tiny test models: MTCNN finds no scale to run at
            batch = F.interpolate(batch.float(), size=(MIN_DETECTION_SIDE, MIN_DETECTION_SIDE), mode="bilinear",
                                  align_corners=False).round().clamp(0, 255).to(torch.uint8)
        batch = batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # (B, H, W, 3)
        for j, faces in enumerate(detector(batch)):
            if len(faces):
                out[i + j] = float(np.nanmax(faces.probs.astype(np.float64)))
    return out


def detection_rates(probs: np.ndarray, thresholds: Sequence[float] = DETECTION_THRESHOLDS) -> dict[str, float]:
    return {f"p>={t}": float((probs >= t).mean()) for t in thresholds}
