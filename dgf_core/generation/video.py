"""Video memories: latent walks between keyframe seeds, rendered to frames, encoded to MP4 or GIF.

Rendering and encoding are separate steps:
- `ClipSpec` says what to render (keyframe seeds, frames per transition, fps, interpolation, easing, loop,
  truncation, pixel scale) and checks the limits below.
- `render_clip(pipe, spec)` -> uint8 frames (T, H, W, 3): a pure function of the model, the latents and
  the parameters (same inputs, same frames, bit for bit, on the same device and software).
- `write_clip(frames, path, fps, recipe)` encodes with moviepy (H.264 MP4 through imageio-ffmpeg's ffmpeg,
  or GIF), writes a temporary sibling file and renames it into place, and embeds the recipe: the MP4
  `comment` tag (and a synthetic notice as `description`), the GIF comment extension.
- `clip_recipe(pipe, spec)` is what reproduces a clip: `ClipSpec.from_recipe(recipe)` rebuilds the spec,
  and the recipe's weights hash is checked against the model that renders it.

Limits (one request must not hog a server; the app and the CLI share them): at most MAX_KEYFRAMES
keyframes, MAX_FRAMES_PER_TRANSITION frames per transition, MAX_FRAMES frames per clip, fps in
MIN_FPS..MAX_FPS, frames at most MAX_SIDE pixels wide after upscaling and pixel scaling (a side-by-side
clip: each model's panel).

Upscaling (`upscaler`, `factor` 2 or 4 in `render_clip` / `clip_recipe` / `make_clip`): each generated face
goes through a `dgf_core.generation.upscale.Upscaler` before the pixel scale; the recipe then names the upscaler and
its weights hash under "upscale".

Side by side (`render_compare`, `compare_recipe`): two or more models walk the same keyframe seeds with the
same parameters, frame i of each next to the other, scaled to the same height.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from ..images import atomic_path
from ..latent import (
    EASINGS,
    INTERPOLATIONS,
    check_seed,
    check_truncation,
    keyframe_path,
    parse_seeds,
    seeds_to_z,
)
from .pipeline import SYNTHETIC_NOTICE, FacePipeline

if TYPE_CHECKING:
    from .upscale import Upscaler

MAX_KEYFRAMES = 32
MAX_FRAMES_PER_TRANSITION = 240
MAX_FRAMES = 480  # 20 s at 24 fps
MIN_FPS, MAX_FPS = 1, 60
MAX_PIXEL_SCALE = 8
MAX_SIDE = 512  # frame side after pixel scaling
FORMATS = (".mp4", ".gif")
DISPLAY_SCALES = (1, 2, 4, 8)  # the pixel scales the UIs offer
RENDER_BATCH = 32  # frames per generator call (fixed, so a clip's frames do not depend on how it is split)

Progress = Callable[[int, int], None]  # (frames done, frames total)


class VideoError(ValueError):
    """A clip request over a limit or with a bad parameter, or a clip file that cannot be read."""


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or float(value) != int(value)):
        raise VideoError(f"{name} must be a whole number in {lo}..{hi}, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise VideoError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


def parse_keyframes(text: str) -> tuple[int, ...]:
    """'1,7,42' (or ranges, '0-3') -> keyframe seeds; VideoError/SeedError with a message on bad input."""
    seeds = tuple(parse_seeds(text, max_count=MAX_KEYFRAMES))
    if len(seeds) < 2:
        raise VideoError(f"a clip needs at least two keyframe seeds, got {len(seeds)} ({text!r})")
    return seeds


@dataclass(frozen=True)
class ClipSpec:
    """What a clip shows. Frame count T = transitions * frames_per_transition, plus one (the last keyframe)
    when not looping; transitions = len(seeds) if loop else len(seeds) - 1."""

    seeds: tuple[int, ...]  # keyframe seeds, in order
    frames_per_transition: int = 24
    fps: int = 24
    loop: bool = False  # walk back to the first keyframe (the clip can then be played on repeat seamlessly)
    method: str = "slerp"  # "slerp" | "lerp"
    easing: str = "linear"  # see dgf_core.latent.EASINGS
    truncation: float = 1.0
    scale: int = 1  # nearest-neighbour pixel scale of the written frames (64x64 with scale 4 -> 256x256)

    def __post_init__(self) -> None:
        if isinstance(self.seeds, (str, bytes)) or not isinstance(self.seeds, Sequence):
            raise VideoError(f"seeds must be a list of keyframe seeds, got {self.seeds!r}")
        seeds = tuple(check_seed(s) for s in self.seeds)
        if not 2 <= len(seeds) <= MAX_KEYFRAMES:
            raise VideoError(f"a clip needs 2..{MAX_KEYFRAMES} keyframe seeds, got {len(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "frames_per_transition",
                           _int_in("frames per transition", self.frames_per_transition, 1, MAX_FRAMES_PER_TRANSITION))
        object.__setattr__(self, "fps", _int_in("fps", self.fps, MIN_FPS, MAX_FPS))
        object.__setattr__(self, "scale", _int_in("pixel scale", self.scale, 1, MAX_PIXEL_SCALE))
        if not isinstance(self.loop, bool):
            raise VideoError(f"loop must be true or false, got {self.loop!r}")
        if self.method not in INTERPOLATIONS:
            raise VideoError(f"unknown interpolation {self.method!r}; choose from {', '.join(sorted(INTERPOLATIONS))}")
        if self.easing not in EASINGS:
            raise VideoError(f"unknown easing {self.easing!r}; choose from {', '.join(sorted(EASINGS))}")
        try:
            object.__setattr__(self, "truncation", check_truncation(self.truncation))
        except ValueError as e:
            raise VideoError(str(e)) from None
        if self.n_frames > MAX_FRAMES:
            raise VideoError(
                f"the clip would have {self.n_frames} frames ({len(self.seeds)} keyframes x {self.frames_per_transition} "
                f"frames per transition); the limit is {MAX_FRAMES}: use fewer keyframes or frames per transition")

    @property
    def n_frames(self) -> int:
        transitions = len(self.seeds) if self.loop else len(self.seeds) - 1
        return transitions * self.frames_per_transition + (0 if self.loop else 1)

    @property
    def duration(self) -> float:
        """Seconds, as the MP4 plays (a GIF stores delays in 1/100 s, so it can run slightly off)."""
        return self.n_frames / self.fps

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any]) -> "ClipSpec":
        if not isinstance(recipe, dict) or recipe.get("kind") != "video":
            raise VideoError("not a clip recipe (expected a JSON object with \"kind\": \"video\")")
        missing = [f.name for f in fields(cls) if f.name not in recipe]
        if missing:
            raise VideoError(f"clip recipe lacks {', '.join(missing)}")
        values = {f.name: recipe[f.name] for f in fields(cls)}
        if not isinstance(values["seeds"], list):
            raise VideoError(f"recipe seeds must be a list, got {values['seeds']!r}")
        return cls(**values)


def frame_side(resolution: int, scale: int, factor: int = 1) -> int:
    """Side of a written frame: the model's resolution, times the upscale factor, times the pixel scale."""
    return resolution * factor * scale


def check_frame_size(resolution: int, scale: int, factor: int = 1) -> None:
    side = frame_side(resolution, scale, factor)
    if side > MAX_SIDE:
        up = f" upscaled x{factor}" if factor > 1 else ""
        raise VideoError(f"frames would be {side}x{side} ({resolution}px model{up} x{scale}); "
                         f"the limit is {MAX_SIDE}px: use a smaller pixel scale" + (" or upscale factor" if factor > 1 else ""))


def display_scale(resolution: int, target: int = 256, factor: int = 1) -> int:
    """The largest of DISPLAY_SCALES that keeps frames at most `target` px (1 for models that are already big)."""
    return max(s for s in DISPLAY_SCALES if s == 1 or resolution * factor * s <= target)


def clip_latents(spec: ClipSpec, z_dim: int) -> torch.Tensor:
    """Keyframe seeds -> the latent walk, (spec.n_frames, z_dim) float32 on the CPU."""
    path = keyframe_path(seeds_to_z(spec.seeds, z_dim), spec.frames_per_transition, loop=spec.loop,
                         method=spec.method, easing=spec.easing)
    assert path.shape == (spec.n_frames, z_dim), (tuple(path.shape), spec.n_frames)
    return path


def check_upscale(upscaler: Upscaler | None, factor: int | str) -> int:
    """The upscale factor (1 off, 2, 4; 'off' / 'x2' / 'x4' accepted); VideoError if it needs an upscaler and has none."""
    from .upscale import check_factor

    f = check_factor(factor)
    if f > 1 and upscaler is None:
        raise VideoError(f"upscale x{f} needs an upscaler model")
    return f


def render_frames(pipe: FacePipeline, latents: torch.Tensor, truncation: float = 1.0, *, scale: int = 1,
                  progress: Progress | None = None, upscaler: Upscaler | None = None, factor: int | str = 1) -> np.ndarray:
    """latents (T, z_dim) -> uint8 frames (T, S, S, 3), S = R * factor * scale, in batches of RENDER_BATCH.
    With `factor` 2 or 4, each face is upscaled by `upscaler` (frame by frame: no flicker from batching)
    before the nearest-neighbour pixel scale."""
    assert latents.ndim == 2 and latents.shape[1] == pipe.z_dim, f"expected (T, {pipe.z_dim}), got {tuple(latents.shape)}"
    factor = check_upscale(upscaler, factor)
    check_frame_size(pipe.resolution, scale, factor)
    t, side = latents.shape[0], frame_side(pipe.resolution, scale, factor)
    frames = np.empty((t, side, side, 3), dtype=np.uint8)
    for i in range(0, t, RENDER_BATCH):
        imgs = pipe.images_from_z(latents[i : i + RENDER_BATCH], truncation)  # (N, 3, R, R) uint8
        if factor > 1:
            imgs = upscaler.upscale(imgs, factor)  # (N, 3, fR, fR) uint8
        if scale > 1:
            imgs = imgs.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
        frames[i : i + imgs.shape[0]] = imgs.permute(0, 2, 3, 1).numpy()
        if progress is not None:
            progress(min(i + RENDER_BATCH, t), t)
    return frames


def render_clip(pipe: FacePipeline, spec: ClipSpec, progress: Progress | None = None, *,
                upscaler: Upscaler | None = None, factor: int | str = 1) -> np.ndarray:
    """The clip's frames: uint8 (spec.n_frames, H, W, 3)."""
    factor = check_upscale(upscaler, factor)
    check_frame_size(pipe.resolution, spec.scale, factor)
    return render_frames(pipe, clip_latents(spec, pipe.z_dim), spec.truncation, scale=spec.scale, progress=progress,
                         upscaler=upscaler, factor=factor)


def upscale_recipe(upscaler: Upscaler | None, factor: int | str) -> dict[str, Any]:
    """{"upscale": {upscaler name, weights hash, factor}} when upscaling, else {} (recipes stay as before)."""
    factor = check_upscale(upscaler, factor)
    return {"upscale": upscaler.recipe(factor=factor)} if factor > 1 else {}


def clip_recipe(pipe: FacePipeline, spec: ClipSpec, *, upscaler: Upscaler | None = None, factor: int | str = 1) -> dict[str, Any]:
    """Everything that reproduces the clip: model name and weights hash, keyframes and every parameter (and the
    upscaler with its weights hash, when upscaled)."""
    factor = check_upscale(upscaler, factor)
    side = frame_side(pipe.resolution, spec.scale, factor)
    return pipe.recipe(kind="video", notice=SYNTHETIC_NOTICE, **spec.params(), n_frames=spec.n_frames,
                       duration_s=round(spec.duration, 4), width=side, height=side, **upscale_recipe(upscaler, factor))


def check_recipe_model(pipe: FacePipeline, recipe: dict[str, Any]) -> None:
    """A recipe reproduces its clip only with the weights it was made with."""
    want = recipe.get("weights_sha256")
    if want and want != pipe.model.weights_sha256:
        raise VideoError(f"the recipe was made with weights {want[:12]}..., but model {pipe.model.name!r} has "
                         f"{pipe.model.weights_sha256[:12]}...: these weights would render a different clip")


def check_recipe_upscaler(upscaler: Upscaler, recipe: dict[str, Any]) -> None:
    """An upscaled clip's recipe reproduces it only with the upscaler weights it was made with."""
    want = (recipe.get("upscale") or {}).get("weights_sha256")
    have = upscaler.model.weights_sha256 if upscaler.model else None
    if want != have:
        raise VideoError(f"the recipe was upscaled with weights {str(want)[:12]}..., but upscaler {upscaler.name!r} has "
                         f"{str(have)[:12]}...: these weights would render a different clip")


# ---- side by side (the Compare tab) -----------------------------------------------------------------------

def to_height(images_u8: torch.Tensor, height: int) -> torch.Tensor:
    """(N, 3, h, w) uint8 -> (N, 3, height, w * height / h) uint8: nearest-neighbour for whole multiples (crisp
    pixels, as the pixel scale), antialiased bicubic otherwise."""
    assert images_u8.ndim == 4 and images_u8.dtype == torch.uint8, f"expected uint8 (N, 3, h, w), got {tuple(images_u8.shape)}"
    h, w = images_u8.shape[-2:]
    if h == height:
        return images_u8
    width = max(1, round(w * height / h))
    if height % h == 0 and width % w == 0:
        return images_u8.repeat_interleave(height // h, dim=2).repeat_interleave(width // w, dim=3)
    x = torch.nn.functional.interpolate(images_u8.float(), size=(height, width), mode="bicubic", antialias=True,
                                        align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def side_by_side(panels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-model images (each (N, 3, h_i, w_i) uint8, same N) -> (N, 3, H, sum w) uint8, H = the largest h_i."""
    if len(panels) < 2 or len({p.shape[0] for p in panels}) != 1:
        raise ValueError(f"side by side needs two or more panels of the same length, got {[tuple(p.shape) for p in panels]}")
    height = max(p.shape[2] for p in panels)
    return torch.cat([to_height(p, height) for p in panels], dim=3)


def compare_height(pipes: Sequence[FacePipeline], spec: ClipSpec, factor: int = 1) -> int:
    """The common frame height of a side-by-side clip: the tallest model's frames."""
    return max(frame_side(p.resolution, spec.scale, factor) for p in pipes)


def render_compare(pipes: Sequence[FacePipeline], spec: ClipSpec, progress: Progress | None = None, *,
                   upscaler: Upscaler | None = None, factor: int | str = 1) -> np.ndarray:
    """Every model walks the same keyframe seeds with the same path parameters; frame i of each model side by
    side (scaled to the same height) -> uint8 (spec.n_frames, H, W, 3). Each model's latents come from the same
    seeds (drawn at that model's z_dim), so a row of the clip is "the same walk" in each model."""
    factor = check_upscale(upscaler, factor)
    if len(pipes) < 2:
        raise VideoError(f"a comparison needs two or more models, got {len(pipes)}")
    height = compare_height(pipes, spec, factor)
    if height > MAX_SIDE:
        check_frame_size(max(p.resolution for p in pipes), spec.scale, factor)
    total = spec.n_frames * len(pipes)
    panels = []
    for k, pipe in enumerate(pipes):
        step = (lambda done, t, k=k: progress(k * spec.n_frames + done, total)) if progress else None
        frames = render_clip(pipe, spec, step, upscaler=upscaler, factor=factor)
        panels.append(torch.from_numpy(frames).permute(0, 3, 1, 2))
    return side_by_side(panels).permute(0, 2, 3, 1).contiguous().numpy()


def compare_recipe(pipes: Sequence[FacePipeline], spec: ClipSpec, *, upscaler: Upscaler | None = None,
                   factor: int | str = 1) -> dict[str, Any]:
    """What reproduces a side-by-side clip: every model with its weights hash (left to right) and the shared walk."""
    factor = check_upscale(upscaler, factor)
    height = compare_height(pipes, spec, factor)
    width = height * len(pipes)  # square faces, each scaled to the common height
    return {"synthetic": True, "tool": "Deeply Good Fakes (dgf_core)", "kind": "compare-video", "notice": SYNTHETIC_NOTICE,
            "models": [{"model": p.model.name, "weights_sha256": p.model.weights_sha256} for p in pipes],
            **spec.params(), "n_frames": spec.n_frames, "duration_s": round(spec.duration, 4), "width": width,
            "height": height, **upscale_recipe(upscaler, factor)}


# ---- encoding --------------------------------------------------------------------------------------------

def _check_frames(frames: np.ndarray) -> None:
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[3] == 3):
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {getattr(frames, 'dtype', type(frames))} "
                         f"{getattr(frames, 'shape', '')}")
    if frames.shape[0] < 1:
        raise ValueError("a clip needs at least one frame")


def _moviepy_clip(frames: np.ndarray, fps: int):
    """A moviepy clip that yields exactly frames[0..T-1] at t = i / fps.

    (ImageSequenceClip sums 1/fps T times; the float sum can fall just short of T / fps and moviepy then
    drops the last frame. Half a frame of slack in the duration and rounding t * fps avoid that.)"""
    from moviepy import VideoClip

    n = frames.shape[0]
    return VideoClip(frame_function=lambda t: frames[min(int(t * fps + 0.5), n - 1)], duration=(n + 0.5) / fps)


def _mp4_options(recipe_json: str) -> dict[str, Any]:
    return dict(codec="libx264", preset="veryfast",
                ffmpeg_params=["-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                               "-metadata", f"comment={recipe_json}", "-metadata", f"description={SYNTHETIC_NOTICE}"])


def _write_mp4(frames: np.ndarray, path: Path, fps: int, recipe_json: str) -> None:
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise VideoError(f"H.264 (yuv420p) needs even frame sizes, got {w}x{h}")
    _moviepy_clip(frames, fps).write_videofile(str(path), fps=fps, audio=False, logger=None, **_mp4_options(recipe_json))


def write_mp4_stream(frames: Iterable[np.ndarray], paths: Sequence[str | os.PathLike], fps: int,
                     recipe: dict[str, Any]) -> list[Path]:
    """Encode frames, each (H, W, 3) uint8, into every MP4 of `paths` as they come (the encoder moviepy's
    write_videofile uses, with `write_clip`'s options and recipe): one frame is held at a time, however long the
    clip. Written atomically; on an error no file is left."""
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

    fps = _int_in("fps", fps, MIN_FPS, MAX_FPS)
    paths = [Path(p) for p in paths]
    if not paths or any(p.suffix.lower() != ".mp4" for p in paths):
        raise VideoError(f"write_mp4_stream writes .mp4 files only, got {[str(p) for p in paths]}")
    options = _mp4_options(json.dumps(recipe, separators=(",", ":")))
    targets = [atomic_path(p) for p in paths]
    writers: list = []
    try:
        for frame in frames:
            _check_frames(frame[None])
            if not writers:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise VideoError(f"H.264 (yuv420p) needs even frame sizes, got {w}x{h}")
                size = (w, h)
                writers = [FFMPEG_VideoWriter(str(tmp), size, fps, **options) for _, tmp in targets]
            elif frame.shape[1::-1] != size:
                raise ValueError(f"every frame must be {size[0]}x{size[1]}, got {frame.shape[1]}x{frame.shape[0]}")
            for wr in writers:
                wr.write_frame(frame)
        if not writers:
            raise ValueError("a clip needs at least one frame")
        for wr in writers:
            wr.close()
        for path, tmp in targets:
            os.replace(tmp, path)
    finally:
        for wr in writers:
            wr.close()  # a second close does nothing
        for _, tmp in targets:
            tmp.unlink(missing_ok=True)
    return paths


def _gif_with_comment(data: bytes, comment: str) -> bytes:
    """Insert a GIF89a comment extension after the header, screen descriptor and global colour table."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise VideoError("not a GIF file")
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    text = comment.encode("utf-8")
    blocks = b"".join(bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255))
    return b"GIF89a" + data[6:pos] + b"\x21\xfe" + blocks + b"\x00" + data[pos:]


def _write_gif(frames: np.ndarray, path: Path, fps: int, recipe_json: str) -> None:
    _moviepy_clip(frames, fps).write_gif(str(path), fps=fps, loop=0, logger=None)
    path.write_bytes(_gif_with_comment(path.read_bytes(), recipe_json))


def write_clip(frames: np.ndarray, path: str | os.PathLike, fps: int, recipe: dict[str, Any]) -> Path:
    """Encode uint8 frames (T, H, W, 3) to `path` (.mp4: H.264; .gif), recipe embedded; written atomically."""
    _check_frames(frames)
    fps = _int_in("fps", fps, MIN_FPS, MAX_FPS)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise VideoError(f"unsupported clip format {path.suffix!r} for {path}; use {' or '.join(FORMATS)}")
    recipe_json = json.dumps(recipe, separators=(",", ":"))
    path, tmp = atomic_path(path)
    try:
        (_write_mp4 if suffix == ".mp4" else _write_gif)(frames, tmp, fps, recipe_json)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_outputs(outs: Sequence[str | os.PathLike]) -> None:
    if not outs:
        raise VideoError("no output file given")
    for out in outs:
        if Path(out).suffix.lower() not in FORMATS:
            raise VideoError(f"unsupported clip format {Path(out).suffix!r} for {out}; use {' or '.join(FORMATS)}")


def make_clip(pipe: FacePipeline, spec: ClipSpec, outs: Sequence[str | os.PathLike],
              progress: Progress | None = None, *, upscaler: Upscaler | None = None, factor: int | str = 1) -> dict[str, Any]:
    """seeds -> clip, the one core call of the app's Interpolate tab, the Streamlit page and `video`: check, render
    once (upscaled by `upscaler` when factor is 2 or 4), write every path in `outs` (.mp4 / .gif); return the recipe.
    `progress(done, total)` counts rendered frames."""
    check_outputs(outs)
    check_frame_size(pipe.resolution, spec.scale, check_upscale(upscaler, factor))
    recipe = clip_recipe(pipe, spec, upscaler=upscaler, factor=factor)
    frames = render_clip(pipe, spec, progress, upscaler=upscaler, factor=factor)
    for out in outs:
        write_clip(frames, out, spec.fps, recipe)
    return recipe


def make_compare_clip(pipes: Sequence[FacePipeline], spec: ClipSpec, outs: Sequence[str | os.PathLike],
                      progress: Progress | None = None, *, upscaler: Upscaler | None = None,
                      factor: int | str = 1) -> dict[str, Any]:
    """Two models -> side-by-side clip of the same keyframes, the one core call of the app's Compare tab and the
    Streamlit page: check, render once, write every path in `outs`; return the recipe naming both models."""
    check_outputs(outs)
    for p in pipes:
        check_frame_size(p.resolution, spec.scale, check_upscale(upscaler, factor))
    recipe = compare_recipe(pipes, spec, upscaler=upscaler, factor=factor)
    frames = render_compare(pipes, spec, progress, upscaler=upscaler, factor=factor)
    for out in outs:
        write_clip(frames, out, spec.fps, recipe)
    return recipe


# ---- reading clips back (provenance checks, tests) -------------------------------------------------------

def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _unescape_ffmetadata(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def read_clip_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe embedded in an MP4 (comment tag) or GIF (comment extension) written by `write_clip`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such clip: {path}")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        with Image.open(path) as im:
            raw = im.info.get("comment", b"")
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    elif suffix == ".mp4":
        out = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode:
            raise VideoError(f"{path} is not a readable MP4: {out.stderr.strip()[-300:]}")
        text = ""
        for line in out.stdout.splitlines():
            if line.startswith("comment="):
                text = _unescape_ffmetadata(line[len("comment="):])
    else:
        raise VideoError(f"unsupported clip format {path.suffix!r}; use {' or '.join(FORMATS)}")
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError:
        recipe = None
    if not isinstance(recipe, dict):
        raise VideoError(f"{path} carries no Deeply Good Fakes recipe")
    return recipe


def read_clip(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode a clip: (uint8 frames (T, H, W, 3), fps as the file states it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such clip: {path}")
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            frames, delays = [], []
            for f in ImageSequence.Iterator(im):
                frames.append(np.asarray(f.convert("RGB")))
                delays.append(f.info.get("duration", 0))
        mean_delay = sum(delays) / len(delays)
        return np.stack(frames), (1000.0 / mean_delay if mean_delay else 0.0)
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames), float(meta["fps"])
