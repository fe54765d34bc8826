"""Super-resolution quality: PSNR and SSIM against bicubic, and the temporal stability of upscaled clips.

Conventions (those of the SR literature, so numbers compare with papers):
- PSNR and SSIM are computed on the luma channel Y (ITU-R BT.601, 16..235 range, as MATLAB's `rgb2ycbcr`)
  of uint8 images, with `border = factor` pixels cropped on each side; RGB PSNR is reported beside it.
- SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, averaged per image.
- Temporal change of a clip: mean absolute difference between consecutive frames, in grey levels (0..255).
  An upscaler does not flicker when its clip changes about as much from frame to frame as the bicubic clip.
- Sharpness: variance of the Laplacian (3x3, 4-neighbour) of Y, per image, border cropped; the sharpness ratio is
  the mean over upscaled faces / the mean over the real HR faces (1: as sharp as real faces; a PSNR model is below).
- Detail (`detail_report`): for each detail value of an upscaler with a GAN end, Y-PSNR, the sharpness ratio and,
  optionally, the classifier two-sample test (`training.two_sample.c2st`) of upscaled vs real HR faces (0.5: the
  classifier cannot tell them apart), on the pixels ("c2st") and on their high-pass residuals ("c2st_highpass",
  `images.high_pass`: the image minus its Gaussian blur, sigma 1.5 px, x4): the pixels test is already at chance
  for a blurred PSNR upscale of a few hundred faces, the residual one is not, so it can show a GAN end's detail.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import torch

from ..images import _crop, high_pass, laplacian_variance, psnr, sharpness_ratio, ssim  # noqa: F401 (laplacian_variance: re-exported)


def temporal_change(frames_u8: torch.Tensor) -> float:
    """(T, 3, H, W) uint8 clip -> mean |frame[t+1] - frame[t]| in grey levels."""
    assert frames_u8.ndim == 4 and frames_u8.shape[0] >= 2, f"need a clip (T>=2, 3, H, W), got {tuple(frames_u8.shape)}"
    return float((frames_u8[1:].float() - frames_u8[:-1].float()).abs().mean())


def compare_to_bicubic(
    upscale: Callable[[torch.Tensor], torch.Tensor], lr_u8: torch.Tensor, hr_u8: torch.Tensor, factor: int,
    batch_size: int = 32,
) -> dict[str, float]:
    """Mean PSNR (Y and RGB) and SSIM (Y) of `upscale(lr_u8)` and of bicubic against `hr_u8`.

    lr_u8: (N, 3, h, w) uint8; hr_u8: (N, 3, f*h, f*w) uint8; `upscale` maps a uint8 batch to uint8 at f x.
    """
    from ..generation.upscale import bicubic_upscale

    assert hr_u8.shape[-1] == lr_u8.shape[-1] * factor, f"{tuple(lr_u8.shape)} x{factor} != {tuple(hr_u8.shape)}"
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("psnr_y", "psnr_rgb", "ssim_y", "bicubic_psnr_y", "bicubic_psnr_rgb", "bicubic_ssim_y")}
    for i in range(0, len(lr_u8), batch_size):
        lr, hr = lr_u8[i : i + batch_size], hr_u8[i : i + batch_size]
        for prefix, out in (("", upscale(lr)), ("bicubic_", bicubic_upscale(lr, factor))):
            rows[prefix + "psnr_y"].append(psnr(out, hr, border=factor))
            rows[prefix + "psnr_rgb"].append(psnr(out, hr, channel="rgb", border=factor))
            rows[prefix + "ssim_y"].append(ssim(out, hr, border=factor))
    res = {k: float(torch.cat(v).mean()) for k, v in rows.items()}
    res["psnr_y_gain_db"] = res["psnr_y"] - res["bicubic_psnr_y"]
    res["n"] = int(len(lr_u8))
    assert all(math.isfinite(v) for v in res.values())
    return res


def clip_stability(upscaler, clip_lr_u8: torch.Tensor, factor: int = 4, clip_hr_u8: torch.Tensor | None = None) -> dict[str, Any]:
    """Temporal stability of `upscaler` on one low-resolution clip (T, 3, h, w) uint8.

    Reports the mean frame-to-frame change of the upscaled clip, of the bicubic clip and (when given) of the
    high-resolution reference clip; their ratio; and whether the upscaler is deterministic frame by frame
    (the clip twice, and frame 0 alone vs inside the batch, give identical pixels).
    """
    from ..generation.upscale import bicubic_upscale

    out = upscaler.upscale(clip_lr_u8, factor)
    again = upscaler.upscale(clip_lr_u8, factor)
    k = min(5, clip_lr_u8.shape[0] - 1)  # a frame inside the batch (short clips: the last)
    alone = upscaler.upscale(clip_lr_u8[k : k + 1], factor)
    ours, bic = temporal_change(out), temporal_change(bicubic_upscale(clip_lr_u8, factor))
    res = {"frames": int(clip_lr_u8.shape[0]), "change_upscaled": ours, "change_bicubic": bic, "ratio_to_bicubic": ours / bic,
           "repeat_identical": bool(torch.equal(out, again)), "frame_alone_identical": bool(torch.equal(out[k : k + 1], alone))}
    if clip_hr_u8 is not None:
        res["change_hr_reference"] = temporal_change(clip_hr_u8)
    return res


def evaluate_upscalers(
    models: Sequence[str], folders: Sequence[str], *, faces_per_folder: int = 300, clip_faces: int = 4,
    seed: int = 0, walk_model: str | None = None, clip_frames: int = 96, details: Sequence[float] = (),
    c2st: bool = False, log=print,
) -> dict[str, Any]:
    """PSNR/SSIM (x4 and x2) vs bicubic on held-out faces of each folder, for clean and degraded inputs, and
    the temporal stability of `clip_frames`-frame 64 -> 256 clips (a smooth camera move over held-out faces).

    HR: held-out faces (data.is_heldout) at 176x176 (see sr_data), spread evenly over each folder;
    LR clean: antialiased bicubic /4 (44x44), rounded to uint8; LR degraded: sr_data.degrade with the default
    randomized blur and noise from `seed`. x2 is measured against the HR downscaled to 88x88.
    With `walk_model` (a generator), the stability is also measured on its latent walk (`latent_walk_clip`).
    With `details` (e.g. 0, 0.5, 1), each model's `detail_report` on the clean x4 inputs ("detail" in each entry;
    with `c2st`, the two-sample test of upscaled vs real faces too).
    """
    from ..data import list_images, to_float, to_uint8
    from ..generation.upscale import Upscaler
    from ..training.sr_data import (
        Degradation,
        bicubic_down,
        degrade,
        load_hr_faces,
        quantize,
        shift_zoom_clip,
    )

    ups = [Upscaler.from_pretrained(m) for m in models]
    res: dict[str, Any] = {"conventions": "PSNR on Y (BT.601) and RGB, SSIM on Y, border = factor px; mean over faces",
                           "models": {u.name: str(m) for u, m in zip(ups, models)}, "folders": {}}
    clip_sources = []
    for folder in folders:
        n_held = len(list_images(folder, "heldout"))
        hr_u8, paths = load_hr_faces(folder, "heldout", every=max(1, n_held // faces_per_folder), limit=faces_per_folder)
        hr = to_float(hr_u8)
        lr_clean = to_uint8(quantize(bicubic_down(hr, 4)))
        lr_deg = to_uint8(degrade(hr, 4, torch.Generator().manual_seed(seed), Degradation()))
        hr2 = to_uint8(quantize(bicubic_down(hr, 2)))
        entry: dict[str, Any] = {"faces": len(paths), "hr_size": list(hr_u8.shape[-2:])}
        for u in ups:
            entry[u.name] = {
                "x4_clean": compare_to_bicubic(lambda x: u.upscale(x, 4), lr_clean, hr_u8, 4),
                "x4_degraded": compare_to_bicubic(lambda x: u.upscale(x, 4), lr_deg, hr_u8, 4),
                "x2_clean": compare_to_bicubic(lambda x: u.upscale(x, 2), lr_clean, hr2, 2),
            }
            log(f"{folder} {u.name}: x4 clean {entry[u.name]['x4_clean']['psnr_y']:.2f} dB "
                f"(bicubic {entry[u.name]['x4_clean']['bicubic_psnr_y']:.2f})")
            if details:
                entry[u.name]["detail"] = detail_report(u, lr_clean, hr_u8, details, c2st=c2st, c2st_seed=seed)
                log(f"{folder} {u.name}: detail {json.dumps(entry[u.name]['detail'])}")
        res["folders"][folder] = entry
        clip_sources.extend(hr_u8[:: max(1, len(hr_u8) // clip_faces)][:clip_faces])
    res["temporal"] = {}
    for u in ups:
        rows = []
        for face in clip_sources[: 2 * clip_faces]:
            clip_hr = shift_zoom_clip(face, clip_frames, 256)
            clip_lr = to_uint8(quantize(bicubic_down(to_float(clip_hr), 4)))
            rows.append(clip_stability(u, clip_lr, 4, clip_hr))
        res["temporal"][u.name] = _mean_rows(rows)
    if walk_model:
        walk = latent_walk_clip(walk_model, frames_per_transition=max(1, clip_frames // 4))
        res["temporal_latent_walk"] = {"generator": str(walk_model), "frames": int(walk.shape[0]),
                                       "size": list(walk.shape[-2:]), **{u.name: clip_stability(u, walk, 4) for u in ups}}
    return res


def detail_report(upscaler, lr_u8: torch.Tensor, hr_u8: torch.Tensor, details: Sequence[float] = (0.0, 0.5, 1.0), *,
                  factor: int = 4, c2st: bool = False, c2st_seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Per detail value: Y-PSNR (border = factor) and sharpness ratio of `upscaler.upscale(lr_u8, factor, detail)`
    against `hr_u8`, and with `c2st` the two-sample test of upscaled vs real HR faces (accuracy, stderr, p-value) on
    disjoint faces: the upscaled even-numbered faces against the real odd-numbered ones (with the same faces on both
    sides, a face's real twin in the training folds teaches the classifier the wrong label for its upscaled copy in
    the test fold, and the accuracy falls below chance). Values above 0 are skipped (reported as such) for an
    upscaler without detail weights.

    lr_u8: (N, 3, h, w) uint8; hr_u8: (N, 3, f*h, f*w) uint8, the same faces."""
    from ..generation.upscale import check_detail
    from ..training.two_sample import c2st as two_sample

    assert hr_u8.shape[-1] == lr_u8.shape[-1] * factor, f"{tuple(lr_u8.shape)} x{factor} != {tuple(hr_u8.shape)}"
    res: dict[str, Any] = {}
    for detail in details:
        d = check_detail(detail)
        if d > 0 and not upscaler.has_detail:
            res[str(d)] = {"skipped": "no detail weights"}
            continue
        out = torch.cat([upscaler.upscale(lr_u8[i : i + batch_size], factor, d) for i in range(0, len(lr_u8), batch_size)])
        row: dict[str, Any] = {"psnr_y": float(psnr(out, hr_u8, border=factor).mean()),
                               "sharpness_ratio": sharpness_ratio(out, hr_u8, factor), "n": int(len(lr_u8))}
        if c2st:
            a, b = _crop(out[0::2], factor), _crop(hr_u8[1::2], factor)
            for key, (x, y) in (("c2st", (a, b)), ("c2st_highpass", (high_pass(a), high_pass(b)))):
                t = two_sample(x, y, seed=c2st_seed)
                row[key] = {k: t[k] for k in ("accuracy", "stderr", "p_value", "n_per_class")}
        res[str(d)] = row
    return res


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: (all(r[k] for r in rows) if isinstance(rows[0][k], bool) else sum(r[k] for r in rows) / len(rows)) for k in rows[0]}


def latent_walk_clip(generator: str, seeds: Sequence[int] = (0, 1, 2, 3), frames_per_transition: int = 24) -> torch.Tensor:
    """A looping slerp walk through `seeds` (4 x 24 = 96 frames) of a generator model -> (T, 3, R, R) uint8."""
    from ..generation.pipeline import FacePipeline
    from ..latent import keyframe_path, seeds_to_z

    pipe = FacePipeline.from_pretrained(generator, device="cpu")
    path = keyframe_path(seeds_to_z(list(seeds), pipe.z_dim), frames_per_transition, loop=True, easing="ease-in-out")
    return torch.cat([pipe.images_from_z(path[i : i + 32]) for i in range(0, len(path), 32)])
