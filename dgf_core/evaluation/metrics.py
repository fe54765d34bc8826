"""Quality metrics for face generators, all computable offline.

- Face-detection rate: the share of images in which MTCNN (`faces.mtcnn`, weights in weights/mtcnn)
  finds a face with probability >= t, for t in 0.9 / 0.99 / 0.999, on generated samples beside the same
  rate on held-out real faces at the same resolution.
- Memorization ratio: median L2 distance (pixels in [0, 1]) from each sample to its nearest training image,
  divided by the same median for held-out real images. Below 1 means samples sit closer to the training
  set than unseen real faces do: the model copies.
- Classifier two-sample test (C2ST, `training.two_sample.c2st`): a small CNN learns, by 5-fold cross-validation, to
  tell samples from held-out real faces; its accuracy on images it did not train on is 0.5 when they are
  indistinguishable and 1.0 when always told apart. The floor beside it is the same test of held-out against
  training-split real faces (what a perfect generator would score, about 0.5).
- Coverage: whom the samples show, by the shipped attribute classifier (`weights/attributes-utkface`, see
  `edits.py`; UTKFace-trained, so its labels are apparent age and binary gender as UTKFace codes them): the
  share of women and the age distribution (mean, median, shares in AGE_BINS) of the samples beside the same
  figures for the training faces (a random subset of the training split), and the gap in the female share
  (target: within FEMALE_GAP_TARGET). Skipped, with the reason, when the classifier is not there.
- FID: only with a user-supplied Inception file (the standard pytorch-fid / TF weights,
  `pt_inception-2015-12-05-*.pth`, or the same tensors in safetensors); nothing is downloaded.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from ..faces.edits import AGE_BINS, ATTRIBUTE_CLASSIFIER, age_bin_labels, attribute_profile  # noqa: F401 (re-exported)
from ..faces.mtcnn import (
    detection_rates,
    face_probabilities,
    load_mtcnn,
)
from ..training.two_sample import C2ST_MIN_PER_CLASS

FEMALE_GAP_TARGET = 0.10  # |female share of samples - of training faces| a model should stay within
COVERAGE_TRAIN_LIMIT = 5000  # training faces labelled for the comparison (a random subset; the share's SE ~0.007)


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


# ---- coverage: whom the samples show ----------------------------------------------------------------------

def attribute_coverage(samples_u8: torch.Tensor, training_u8: torch.Tensor, classifier, recipe: str) -> dict[str, Any]:
    """Attribute profiles of samples and training faces (same crop recipe) and the gap in the female share."""
    s, t = attribute_profile(samples_u8, classifier, recipe), attribute_profile(training_u8, classifier, recipe)
    gap = s["female_share"] - t["female_share"]
    young, old = age_groups(s), age_groups(t)
    return {"samples": s, "training": t, "female_share_gap": round(gap, 4),
            "female_share_gap_target": FEMALE_GAP_TARGET, "within_target": abs(gap) <= FEMALE_GAP_TARGET,
            "age_mean_gap_years": round(s["age_mean"] - t["age_mean"], 2),
            **{f"{k}_gap": round(young[k] - old[k], 4) for k in young}}


def age_groups(profile: dict[str, Any]) -> dict[str, float]:
    """The shares of faces under 20 and aged 50 or more in an `attribute_profile` (from its age bins)."""
    shares = profile["age_shares"]
    return {"under_20_share": shares["0-19"], "aged_50_plus_share": sum(v for k, v in shares.items()
                                                                        if int(k.split("-")[0].rstrip("+")) >= 50)}


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

def two_sample_tests(samples: torch.Tensor | Sequence[torch.Tensor], heldout: torch.Tensor, train: torch.Tensor,
                     device: str | torch.device = "cpu", say: Callable[[str], None] = print) -> dict[str, Any]:
    """C2ST of samples against held-out real faces, and of held-out against training-split real faces as the floor
    (all (N, 3, R, R) uint8). `samples` may be a list of sample sets: the test is then repeated on each (seeds 0, 1,
    ...) and the repeats pooled (`pool_repeats`), for a smaller standard error than one test can give with the few
    held-out faces there are. Skipped, with the reason, when a set has fewer than C2ST_MIN_PER_CLASS images."""
    from ..training.two_sample import c2st, pool_repeats

    sets = [samples] if isinstance(samples, torch.Tensor) else list(samples)
    n_samples = min(len(s) for s in sets)
    if min(n_samples, len(heldout), len(train)) < C2ST_MIN_PER_CLASS:
        return {"skipped": f"too few images ({n_samples} samples, {len(heldout)} held-out, "
                           f"{len(train)} training); needs {C2ST_MIN_PER_CLASS} per set"}
    out: dict[str, Any] = {"note": "held-out accuracy of a small CNN telling the two sets apart: 0.5 = indistinguishable"}
    for key, a_sets, b, what in (("samples_vs_heldout", sets, heldout, "samples vs held-out real"),
                                 ("real_vs_real", [heldout], train, "held-out vs training real (the floor)")):
        results = []
        for seed, a in enumerate(a_sets):
            say(f"C2ST {what}: {min(len(a), len(b))} per class, 5 folds"
                + (f", repeat {seed + 1} of {len(a_sets)}" if len(a_sets) > 1 else ""))
            results.append(c2st(a, b, seed=seed, device=device))
            say(f"  accuracy {results[-1]['accuracy']:.3f} +/- {results[-1]['stderr']:.3f} ({results[-1]['seconds']:.0f} s)")
        out[key] = pool_repeats(results)
        if len(results) > 1:
            say(f"  pooled over {len(results)} repeats: {out[key]['accuracy']:.3f} +/- {out[key]['stderr']:.3f}")
    return out


def sample_coverage(samples: torch.Tensor, train: torch.Tensor, classifier: str | os.PathLike, recipe: str,
                    device: str | torch.device = "cpu", say: Callable[[str], None] = print) -> dict[str, Any]:
    """`attribute_coverage` of samples against up to COVERAGE_TRAIN_LIMIT training faces (a seeded random subset),
    both in the crop geometry `recipe`. `classifier`: a folder, or a name in the weights folder; when it is not
    there, the result is {"skipped": reason}."""
    from ..checkpoint import CheckpointError, resolve_model_path
    from ..faces.edits import load_classifier

    try:
        path = resolve_model_path(classifier)
        clf = load_classifier(path, device)
    except CheckpointError as e:
        say(f"coverage skipped: {e}")
        return {"skipped": f"no attribute classifier: {e}"}
    t0 = time.perf_counter()
    sub = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:COVERAGE_TRAIN_LIMIT].sort().values
    say(f"coverage: attributes ({path.name}) of {len(samples)} samples and {len(sub)} training faces")
    cov = attribute_coverage(samples, train[sub], clf, recipe)
    s, t = cov["samples"], cov["training"]
    say(f"  female share {s['female_share']:.3f} vs {t['female_share']:.3f} in training (gap {cov['female_share_gap']:+.3f}); "
        f"mean age {s['age_mean']:.1f} vs {t['age_mean']:.1f}")
    return {**cov, "classifier": path.name, "classifier_sha256": clf.sha256, "recipe": recipe,
            "classifier_heldout": clf.card.get("heldout", {}), "seconds": round(time.perf_counter() - t0, 1)}


def downsample(images_u8: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """(N, 3, R, R) uint8 -> (N, 3, size, size) uint8 by area averaging (the same for samples and real faces)."""
    return torch.cat([F.interpolate(images_u8[i:i + chunk].float(), size=(size, size), mode="area").round_().clamp_(0, 255)
                      .to(torch.uint8) for i in range(0, len(images_u8), chunk)])


def evaluate_model(
    model: str | os.PathLike,
    real: Sequence[str | os.PathLike],
    n: int = 1000,
    truncation: float = 1.0,
    device: str = "auto",
    inception_weights: str | os.PathLike | None = None,
    first_seed: int = 0,
    progress: bool = True,
    c2st: bool = True,
    c2st_repeats: int = 1,
    coverage: bool = True,
    attribute_classifier: str | os.PathLike = ATTRIBUTE_CLASSIFIER,
    c2st_also_at: Sequence[int] = (),
) -> dict[str, Any]:
    """Samples seeds first_seed..first_seed+n-1 and measures them against the real folders' split.
    `c2st` / `coverage`: run the two-sample tests / the attribute coverage (else reported as skipped).
    `c2st_repeats`: repeat the samples-vs-held-out test on that many sample sets (seeds first_seed + r * n onwards for
    repeat r; the other metrics use the first set) and pool them.
    `attribute_classifier`: a folder, or a name in the weights folder; coverage is skipped when it is missing.
    `c2st_also_at`: lower resolutions at which the two-sample test runs again, samples and real faces alike
    downsampled (area) to it: a larger model must not lose what a smaller one has."""
    from ..data import load_image_set
    from ..faces.alignment import model_recipe
    from ..generation.pipeline import FacePipeline

    if isinstance(c2st_repeats, bool) or not isinstance(c2st_repeats, int) or c2st_repeats < 1:
        raise ValueError(f"c2st_repeats must be a positive integer, got {c2st_repeats!r}")
    pipe = FacePipeline.from_pretrained(model, device=device)
    res = pipe.resolution
    if any(not isinstance(r, int) or not 8 <= r < res for r in c2st_also_at):
        raise ValueError(f"c2st_also_at: resolutions from 8 up to below the model's {res}, got {list(c2st_also_at)}")
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)

    def sample(first: int) -> torch.Tensor:
        return torch.cat([pipe.generate(list(range(s, min(s + 128, first + n))), truncation)
                          for s in range(first, first + n, 128)])

    say(f"sampling {n} images from {pipe.model.name} (psi {truncation})")
    samples = sample(first_seed)
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
    if c2st:
        if c2st_repeats > 1:
            say(f"sampling {(c2st_repeats - 1) * n} more images for {c2st_repeats - 1} more two-sample tests")
        sets = [samples] + [sample(first_seed + r * n) for r in range(1, c2st_repeats)]
        result["c2st"] = two_sample_tests(sets, heldout, train, pipe.device, say)
        if "skipped" not in result["c2st"]:
            result["c2st"]["sample_seeds"] = f"{first_seed}-{first_seed + c2st_repeats * n - 1}"
        for r in c2st_also_at:
            say(f"two-sample tests again at {r}x{r} (both sides downsampled)")
            result.setdefault("c2st_at", {})[str(r)] = two_sample_tests(
                [downsample(x, r) for x in sets], downsample(heldout, r), downsample(train, r), pipe.device, say)
    else:
        result["c2st"] = {"skipped": "not requested"}
    result["coverage"] = (sample_coverage(samples, train, attribute_classifier, model_recipe(pipe.model.card), pipe.device, say)
                          if coverage else {"skipped": "not requested"})
    if inception_weights:
        say("FID with the given Inception weights")
        inc = fid_inception(inception_weights, pipe.device)
        result["fid_vs_train"] = fid_from_features(inception_features(inc, samples), inception_features(inc, train[: max(n, 2048)]))
    return result
