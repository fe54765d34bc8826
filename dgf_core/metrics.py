"""Quality metrics for face generators, all computable offline.

- Face-detection rate: the share of images in which MTCNN (facenet-pytorch; its weights ship in the wheel)
  finds a face with probability >= t, for t in 0.9 / 0.99 / 0.999, on generated samples beside the same
  rate on held-out real faces at the same resolution.
- Memorization ratio: median L2 distance (pixels in [0, 1]) from each sample to its nearest training image,
  divided by the same median for held-out real images. Below 1 means samples sit closer to the training
  set than unseen real faces do: the model copies.
- FID: only with a user-supplied Inception file (the standard pytorch-fid / TF weights,
  `pt_inception-2015-12-05-*.pth`, or the same tensors in safetensors); nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

DETECTION_THRESHOLDS = (0.9, 0.99, 0.999)
MIN_DETECTION_SIDE = 64  # MTCNN's smallest face is 20 px at its first scale; smaller images are upsampled to this


# ---- face detection ---------------------------------------------------------------------------------------

def load_mtcnn(device: str | torch.device = "cpu"):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=torch.device(device))


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
        _, probs = detector.detect(batch)
        for j, p in enumerate(probs):
            if p is not None and len(p) and p[0] is not None:
                out[i + j] = float(np.nanmax(np.asarray(p, dtype=np.float64)))
    return out


def detection_rates(probs: np.ndarray, thresholds: Sequence[float] = DETECTION_THRESHOLDS) -> dict[str, float]:
    return {f"p>={t}": float((probs >= t).mean()) for t in thresholds}


# ---- memorization -----------------------------------------------------------------------------------------

def nearest_distances(queries_u8: torch.Tensor, reference_u8: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(Q, C, H, W), (R, C, H, W) uint8 -> (Q,) L2 distance of each query to its nearest reference image,
    with pixels scaled to [0, 1]."""
    assert queries_u8.shape[1:] == reference_u8.shape[1:], f"{tuple(queries_u8.shape)} vs {tuple(reference_u8.shape)}"
    ref = reference_u8.flatten(1).float().div_(255.0)
    ref_sq = ref.pow(2).sum(1)
    out = []
    for i in range(0, len(queries_u8), chunk):
        q = queries_u8[i : i + chunk].flatten(1).float().div_(255.0)
        d2 = q.pow(2).sum(1, keepdim=True) + ref_sq[None, :] - 2.0 * q @ ref.T  # (q, R)
        out.append(d2.min(1).values.clamp_min_(0).sqrt_())
    return torch.cat(out)


def memorization_ratio(samples_u8: torch.Tensor, train_u8: torch.Tensor, heldout_u8: torch.Tensor) -> dict[str, float]:
    d_samples = nearest_distances(samples_u8, train_u8)
    d_heldout = nearest_distances(heldout_u8, train_u8)
    ms, mh = float(d_samples.median()), float(d_heldout.median())
    return {"ratio": ms / mh, "median_sample_to_train": ms, "median_heldout_to_train": mh,
            "n_samples": len(samples_u8), "n_train": len(train_u8), "n_heldout": len(heldout_u8)}


# ---- FID (only with user-given Inception weights) ---------------------------------------------------------

def load_inception_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a .pth read with torch.load(weights_only=True) (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return sd


def fid_inception(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3, 2048-d) with the FID weights read from `path` instead of the web."""
    import pytorch_fid.inception as fi

    sd = load_inception_state(path)
    with mock.patch.object(fi, "load_state_dict_from_url", lambda *a, **k: sd):
        model = fi.InceptionV3([fi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def inception_features(model: torch.nn.Module, images_u8: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    feats = []
    dev = next(model.parameters()).device
    for i in range(0, len(images_u8), batch_size):
        x = images_u8[i : i + batch_size].to(dev).float() / 255.0  # pytorch-fid expects [0, 1]
        feats.append(model(x)[0].flatten(1).double().cpu().numpy())
    return np.concatenate(feats)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017)."""
    from scipy import linalg

    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


# ---- the evaluation -----------------------------------------------------------------------------------------

def evaluate_model(
    model: str | os.PathLike,
    real: Sequence[str | os.PathLike],
    n: int = 1000,
    truncation: float = 1.0,
    device: str = "auto",
    inception_weights: str | os.PathLike | None = None,
    first_seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Samples seeds first_seed..first_seed+n-1 and measures them against the real folders' split."""
    from .data import load_image_set
    from .pipeline import FacePipeline

    pipe = FacePipeline.from_pretrained(model, device=device)
    res = pipe.resolution
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    say(f"sampling {n} images from {pipe.model.name} (psi {truncation})")
    samples = torch.cat([pipe.generate(list(range(s, min(s + 128, first_seed + n))), truncation)
                         for s in range(first_seed, first_seed + n, 128)])
    say(f"decoding real images at {res}x{res}")
    train = load_image_set(real, res, "train").images
    heldout_all = load_image_set(real, res, "heldout").images
    heldout = heldout_all[:n]
    say(f"face detection (MTCNN) on {len(samples)} samples and {len(heldout)} held-out real images")
    det = load_mtcnn(pipe.device)
    p_s, p_r = face_probabilities(samples, det), face_probabilities(heldout, det)
    rates_s, rates_r = detection_rates(p_s), detection_rates(p_r)
    say(f"memorization: nearest neighbours among {len(train)} training images")
    memo = memorization_ratio(samples, train, heldout)
    result: dict[str, Any] = {
        "model": pipe.model.name, "weights_sha256": pipe.model.weights_sha256, "resolution": res,
        "n_samples": n, "seeds": f"{first_seed}-{first_seed + n - 1}", "truncation": truncation,
        "face_detection": {"samples": rates_s, "heldout_real": rates_r,
                           "gap_at_0.999": rates_r["p>=0.999"] - rates_s["p>=0.999"]},
        "memorization": memo,
        "real_data": [str(r) for r in real], "n_heldout_real": len(heldout),
    }
    if inception_weights:
        say("FID with the given Inception weights")
        inc = fid_inception(inception_weights, pipe.device)
        result["fid_vs_train"] = fid_from_features(inception_features(inc, samples), inception_features(inc, train[: max(n, 2048)]))
    return result
