"""The memory clip: a short, seamlessly looping clip around a projected face.

`memory_latents(latent, space, spec)`: frame i of T (phase p = 2 pi i / T) is
    latent + r * (cos p * u + sin p * v) + edit_amount * (1 - cos p) / 2 * edit_direction
with u, v two random orthonormal directions drawn from `spec.seed`, scaled so that r = `spec.radius` is a
share of the typical distance between two random latents (0.08: the face breathes, it does not turn into
someone else), and the edit (e.g. age +1.5) reached at the middle of the clip and undone by its end. Frame T
would equal frame 0, so the clip loops without a seam.
`render_memory` makes uint8 frames (optionally upscaled by an `upscale.Upscaler`, optionally with a visible
"synthetic" mark); `write_memory` encodes them with `video.write_clip`, whose recipe carries the latent,
the model's weights hash and every parameter: never the photo.

Motions (`spec.motion`, `generation.motion`: 'alive', 'smile,blink', ...) move the face along the model's edit
directions with natural timing; with a motion, or when rendering at the photo's resolution, the walk starts at
the face (frame 0 is the pivot: offsets r * ((cos p - 1) u + sin p v)) and runs only as far as the motion's
`drift` says (today's walk is the `drift` motion, and the default when no motion is named).
A blink (the `eyes` curve) is drawn by the eyelids (`faces.eyelids`) at the photo's resolution, and in the model's
frames when the model has no `eyes` direction (`lids_draw_eyes`): so `blink` runs on every model. At the photo's
resolution a smile also lifts the photo's mouth corners (`drawn_smile`), and a turn is drawn in part: the model
moves by `turn.MODEL_SHARE` of the `yaw` curve, the photo's face is turned as a solid by the rest (`drawn_turn`).
`spec.render`: "model" (the generator's frames, as before) or "photo" (`faces.render`: the photo itself, at its
own resolution up to 1024 px, moved by the generator's motion; only `memory_from_photo` has the photo for it).
A voice (`memory_from_photo(..., voice=generation.audio.Recording)`): the person's own recording, used for this
request only. The clip lasts as long as the recording (the motion loops under it), the mouth follows its loudness
(the `mouth_open` direction driven by `audio.mouth_curve`, unless `mouth_follows_voice` is off) and every MP4 gets
the sound as AAC; a GIF has none. The recipe says a recording was used and its length, nothing that identifies it.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data import to_uint8
from ..latent import SPACES, synthesize
from .edits import apply_edits, check_edits
from .projection import latent_space

MAX_MEMORY_FRAMES = 240
MAX_CLIP_BYTES = 3 * 2**30  # the frames of one clip held in memory (a GIF of a 60-s voice memory of a large photo:
# refused); a photo memory written to MP4 only is streamed, holding its small model frames only
MAX_RADIUS = 0.3
MARK_TEXT = "SYNTHETIC"
RENDERS = ("photo", "model")
PHOTO_NOTE = ("rendered at the photo's resolution: the frames are the photo's own pixels moved by the generator's "
              "motion, so this clip cannot be regenerated from its recipe without the photo")

Progress = Callable[[int, int], None]


class MemoryClipError(ValueError):
    """Bad memory-clip parameters; str(e) is a message for the user."""


@dataclass
class MemorySpec:
    frames: int = 48  # one loop; 2 s at 24 fps
    fps: int = 24
    radius: float = 0.08  # walk size, a share of the typical distance between two random latents (<= MAX_RADIUS)
    seed: int = 0  # names the walk's directions
    edit: dict[str, float] = field(default_factory=dict)  # e.g. {"age": 1.5}: reached mid-clip, undone by the end
    upscale: int = 1  # 1 (off), 2 or 4 with an upscaler
    mark: bool = True  # a visible "SYNTHETIC" mark in a corner
    motion: str = ""  # generation.motion presets, 'NAME[,NAME...]'; '' is today's walk ('drift')
    render: str = "model"  # "model": the generator's frames; "photo": the photo moved by them (memory_from_photo)
    voice_seconds: float = 0.0  # the length of the person's recording when the clip carries one (frames follow it)

    def max_frames(self) -> int:
        """A silent loop has at most MAX_MEMORY_FRAMES; a voice memory as many as its recording needs (<= 60 s)."""
        from ..generation.audio import MAX_SECONDS

        return max(MAX_MEMORY_FRAMES, math.ceil(MAX_SECONDS * self.fps) + 1) if self.voice_seconds else MAX_MEMORY_FRAMES

    def validate(self) -> None:
        from ..generation.motion import MotionError, parse_motion

        try:
            parse_motion(self.motion)
        except MotionError as e:
            raise MemoryClipError(str(e)) from None
        if self.render not in RENDERS:
            raise MemoryClipError(f"render must be one of {', '.join(RENDERS)}, got {self.render!r}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or not 1 <= self.fps <= 60:
            raise MemoryClipError(f"fps must be an integer in 1..60, got {self.fps!r}")
        if not (isinstance(self.voice_seconds, (int, float)) and self.voice_seconds >= 0):
            raise MemoryClipError(f"voice_seconds must be >= 0, got {self.voice_seconds!r}")
        top = self.max_frames()
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 2 <= self.frames <= top:
            raise MemoryClipError(f"frames must be an integer in 2..{top}, got {self.frames!r}")
        if not (isinstance(self.radius, (int, float)) and 0 <= self.radius <= MAX_RADIUS):
            raise MemoryClipError(f"radius must be in [0, {MAX_RADIUS}], got {self.radius!r}")
        if self.upscale not in (1, 2, 4):
            raise MemoryClipError(f"upscale must be 1, 2 or 4, got {self.upscale!r}")


def check_mouth(directions: dict[str, torch.Tensor] | None) -> None:
    """MemoryClipError unless the model can open and close the mouth (its `mouth_open` direction)."""
    if not directions or "mouth_open" not in directions:
        raise MemoryClipError("this model has no mouth_open direction, so the mouth cannot follow the voice; turn "
                              "'mouth follows the voice' off, or use a model whose directions.json has it")


def lids_draw_eyes(spec: MemorySpec, directions: dict[str, torch.Tensor] | None) -> bool:
    """Whether the `eyes` curve (a blink) is drawn by the eyelids (`faces.eyelids`) rather than moved along the
    model's `eyes` direction: always at the photo's resolution (flow cannot draw a closed lid over an open eye), and
    in the model's own frames when the model has no such direction."""
    return spec.render == "photo" or "eyes" not in (directions or {})


def lid_curve(spec: MemorySpec, directions: dict[str, torch.Tensor] | None) -> np.ndarray | None:
    """(T,) eyelid closure per frame in [0, 1] when the spec's motion blinks and the eyelids draw it; else None."""
    from ..generation.motion import motion_curves

    if not spec.motion or not lids_draw_eyes(spec, directions):
        return None
    c = motion_curves(spec.motion, spec.frames, spec.fps, available=directions or {}).get("eyes")
    return None if c is None or not np.any(c > 0) else np.clip(np.asarray(c, np.float64), 0.0, 1.0)


def _photo_curve(spec: MemorySpec, name: str) -> np.ndarray | None:
    """(T,) the spec's motion curve `name` when the clip is drawn at the photo's resolution and the curve moves;
    else None."""
    from ..generation.motion import motion_curves

    if not spec.motion or spec.render != "photo":
        return None
    c = motion_curves(spec.motion, spec.frames, spec.fps).get(name)
    return None if c is None or not np.any(c != 0) else np.asarray(c, np.float64)


def drawn_smile(spec: MemorySpec) -> np.ndarray | None:
    """(T,) how far the photo's mouth corners lift per frame (`faces.smile`), at the photo's resolution only: the
    spec's `smile` curve, which also moves the model's smile direction; None without one."""
    return _photo_curve(spec, "smile")


def drawn_turn(spec: MemorySpec) -> np.ndarray | None:
    """(T,) the head's drawn turn in degrees per frame (`faces.turn`), at the photo's resolution only: the spec's
    `yaw` curve times `turn.DEGREES` (the model's own yaw direction then moves by `turn.MODEL_SHARE` of it); None
    without one."""
    from .turn import DEGREES

    c = _photo_curve(spec, "yaw")
    return None if c is None else DEGREES * c


def _walk_basis(dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(dim, generator=g)
    b = torch.randn(dim, generator=g)
    u = a / a.norm()
    v = b - (b @ u) * u
    return u, v / v.norm()


def memory_latents(latent: torch.Tensor, space: str, spec: MemorySpec, *, coord_std: float = 1.0,
                   directions: dict[str, torch.Tensor] | None = None,
                   extents: dict[str, float] | None = None, mouth: np.ndarray | None = None) -> torch.Tensor:
    """latent (1, D) for z / w or (1, n_ws, D) for w+ -> (T, D) or (T, n_ws, D): the looping walk, the edit and
    the motion. `coord_std`: the latent's per-coordinate spread (1 for z; `projection.latent_space(g, 'w').coord_std()`).
    `extents`: the directions' motion amounts (`motion_directions`; None: the defaults). `mouth`: (T,) a voice's
    mouth opening per frame in motion amounts of `mouth_open` (`audio.mouth_curve`, in [0, 1], plus the face's
    `talking_start`), added to the `mouth_open` curve."""
    from ..generation.motion import DRIFT, MotionError, check_motion, motion_curves, motion_offsets

    spec.validate()
    if space not in SPACES:
        raise MemoryClipError(f"space must be one of {SPACES}, got {space!r}")
    assert latent.shape[0] == 1 and latent.ndim == (3 if space == "w+" else 2), tuple(latent.shape)
    if spec.edit:
        if not directions:
            raise MemoryClipError("this model has no edit directions; clear the edit")
        check_edits(spec.edit, directions)
    curves = {}
    if spec.motion:
        try:
            check_motion(spec.motion, directions)
            curves = motion_curves(spec.motion, spec.frames, spec.fps, available=directions or {})
        except MotionError as e:
            raise MemoryClipError(str(e)) from None
    if "eyes" in curves and lids_draw_eyes(spec, directions):
        curves.pop("eyes")  # drawn on the frames by the eyelids (`lid_curve`), not moved in the latent
    if "yaw" in curves and spec.render == "photo":
        from .turn import MODEL_SHARE

        curves["yaw"] = MODEL_SHARE * curves["yaw"]  # the rest of the turn is drawn (`drawn_turn`)
    if mouth is not None:
        check_mouth(directions)
        assert mouth.shape == (spec.frames,), (mouth.shape, spec.frames)
        curves["mouth_open"] = curves.get("mouth_open", np.zeros(spec.frames)) + np.asarray(mouth, np.float64)
    dim = latent.shape[-1]
    u, v = _walk_basis(dim, spec.seed)
    r = spec.radius * math.sqrt(2 * dim) * coord_std  # share of the distance between two random latents
    phase = 2 * math.pi * torch.arange(spec.frames, dtype=torch.float64) / spec.frames
    if spec.motion or spec.render == "photo" or mouth is not None:  # the walk starts at the face, as far as the
        drift = torch.from_numpy(np.asarray(curves.pop(DRIFT, np.zeros(spec.frames)), np.float64)  # motion's drift says
                                 if spec.motion else np.ones(spec.frames))
        cos = torch.cos(phase) - 1
        offs = (r * drift[:, None] * (cos[:, None] * u.double() + torch.sin(phase)[:, None] * v.double())).float()
    else:  # today's walk: a circle around the face
        offs = (r * (torch.cos(phase)[:, None] * u.double() + torch.sin(phase)[:, None] * v.double())).float()  # (T, D)
    if curves:
        try:
            offs = offs + motion_offsets(curves, directions, extents, dim)
        except MotionError as e:
            raise MemoryClipError(str(e)) from None
    base = latent.expand(spec.frames, *latent.shape[1:]).clone()
    out = base + (offs[:, None, :] if space == "w+" else offs)
    if spec.edit:
        ramp = ((1 - torch.cos(phase)) / 2).float()  # 0 -> 1 -> 0
        out = torch.stack([apply_edits(out[i : i + 1], space, directions, {k: a * float(ramp[i]) for k, a in spec.edit.items()})[0]
                           for i in range(spec.frames)])
    return out


def add_mark(frame: np.ndarray, text: str = MARK_TEXT, *, corner: bool = False) -> np.ndarray:
    """A visible mark at the bottom left: white text on a dark band across the frame (a model clip), or with
    `corner`, on a dark box sized to the text, about 1/24 of the frame's height (a photo memory, where a band
    would hide the photo). frame: (H, W, 3) uint8."""
    im = Image.fromarray(frame)
    d = ImageDraw.Draw(im)
    h = im.size[1]
    if corner:
        from PIL import ImageFont

        size = max(10, h // 24)
        font = ImageFont.load_default(size=size)
        x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
        pad = max(2, size // 4)
        d.rectangle([0, h - (y1 - y0) - 2 * pad, (x1 - x0) + 2 * pad, h], fill=(0, 0, 0))
        d.text((pad - x0, h - (y1 - y0) - pad - y0), text, fill=(255, 255, 255), font=font)
        return np.asarray(im)
    band = max(9, h // 8)
    d.rectangle([0, h - band, im.size[0], h], fill=(0, 0, 0))
    d.text((2, h - band + max(0, (band - 10) // 2)), text, fill=(255, 255, 255))
    return np.asarray(im)


@torch.no_grad()
def render_memory(generator: torch.nn.Module, latents: torch.Tensor, space: str, spec: MemorySpec, *, upscaler=None,
                  batch: int = 16, progress: Progress | None = None) -> np.ndarray:
    """Walk latents -> uint8 frames (T, H, W, 3). `upscaler`: anything with `upscale(images_u8, factor)`."""
    spec.validate()
    if spec.upscale > 1 and upscaler is None:
        raise MemoryClipError("upscaling needs an upscaler model")
    frames = []
    t = latents.shape[0]
    for i in range(0, t, batch):
        imgs = to_uint8(synthesize(generator, latents[i : i + batch], space).clamp(-1, 1)).cpu()  # (N, 3, R, R)
        if spec.upscale > 1:
            imgs = upscaler.upscale(imgs, spec.upscale)
        frames.append(imgs.permute(0, 2, 3, 1).numpy())
        if progress is not None:
            progress(min(i + batch, t), t)
    out = np.concatenate(frames)
    if spec.mark:
        out = np.stack([add_mark(f) for f in out])
    return np.ascontiguousarray(out)


TUNED_NOTE = ("made with a private copy of the generator fine-tuned on the photo (pivotal tuning); that copy was never "
              "saved, so this clip cannot be regenerated from its recipe without the photo: the latent is the pivot")


@dataclass
class PhotoFrame:
    """What a photo memory is drawn on (kept in memory only, never written): the photo as the clip's frame and
    where the model's aligned crop lies in it."""
    canvas: np.ndarray  # (H, W, 3) uint8: the photo at the clip's size (`render.photo_canvas`)
    to_aligned: np.ndarray  # (2, 3): canvas pixels -> the model's aligned crop pixels
    canonical: np.ndarray  # (5, 2): the crop recipe's canonical landmarks, in [0, 1]

    @classmethod
    def from_photo(cls, photo, to_crop: np.ndarray, recipe: str) -> "PhotoFrame":
        """photo: a PIL image; to_crop: its (2, 3) photo -> crop transform (`projection.aligned_target`)."""
        from .alignment import invert_transform, load_canonical
        from .render import compose, photo_canvas

        canvas, to_canvas = photo_canvas(photo)
        return cls(canvas, compose(to_crop, invert_transform(to_canvas)), load_canonical(recipe))


def motion_directions(model, spec: MemorySpec, directions: dict[str, torch.Tensor] | None, mouth: bool = False):
    """The directions a spec needs (the caller's, else the model's directions.json; {} when it has none: the
    checks then name what is missing) and the model's motion extents. `mouth`: a voice drives the mouth."""
    from pathlib import Path

    from ..generation.motion import load_extents, needed_directions
    from .edits import DIRECTIONS_FILE, EditError, load_directions

    need = (needed_directions(spec.motion) if spec.motion else []) + (["mouth_open"] if mouth else [])
    if directions is None and (need or spec.edit):
        try:
            directions = load_directions(model)
        except EditError:
            if spec.edit:  # says which model and where directions come from
                raise
            directions = {}  # check_motion names what the motion needs
    extents = load_extents(Path(model.path) / DIRECTIONS_FILE) if need and getattr(model, "path", None) else {}
    return directions, extents


def memory_recipe(model, latent: torch.Tensor, space: str, spec: MemorySpec, upscaler=None,
                  tuning: dict[str, Any] | None = None, size: tuple[int, int] | None = None,
                  voice=None, mouth_follows_voice: bool = False, mouth_start: float | None = None,
                  eyelids: bool = False) -> dict[str, Any]:
    """What reproduces the clip: the model (name, weights hash), the latent itself and the parameters (`mouth_start`:
    where the voice's pauses put the mouth, `talking_start`; `eyelids`: the blink is drawn by the eyelids, whose shape
    is recorded). With
    `tuning` (the pivotal-tuning options), the recipe says that the clip needs the photo to be made again; so
    does a photo memory (`size`: its (width, height); the photo's pixels are never in the recipe)."""
    from ..generation.pipeline import SYNTHETIC_NOTICE

    recipe = {"synthetic": True, "tool": "Deeply Good Fakes (dgf_core)", "kind": "memory", "notice": SYNTHETIC_NOTICE,
              "model": model.name, "weights_sha256": model.weights_sha256, "space": space,
              "latent": np.round(latent.numpy().astype(np.float64), 5).tolist(), **asdict(spec),
              "upscaler": upscaler.recipe() if upscaler is not None and spec.upscale > 1 else None}
    if tuning:
        recipe["tuning"] = {**tuning, "regenerable_without_photo": False, "note": TUNED_NOTE}
    if spec.render == "photo":
        from . import render

        recipe.update(width=int(size[0]), height=int(size[1]), regenerable_without_photo=False, render_note=PHOTO_NOTE,
                      flow={"method": "opencv farneback", "side": render.FLOW_SIDE, "smooth": render.FLOW_SMOOTH,
                            "residual_deadzone": render.RESIDUAL_DEADZONE, "feather": [render.INNER, render.OUTER]})
    if drawn_turn(spec) is not None:  # at the photo's resolution only
        from . import turn as tn

        recipe["turn"] = {"method": "the face turned as a solid in the photo (dgf_core.faces.turn)",
                          "degrees": tn.DEGREES, "model_share": tn.MODEL_SHARE,
                          "solid": {"half_width": tn.HALF_WIDTH, "half_height": tn.HALF_HEIGHT, "depth": tn.DEPTH,
                                    "nose_sigma": tn.NOSE_SIGMA}, "unit": "the eye distance"}
    if drawn_smile(spec) is not None:  # at the photo's resolution only
        from . import smile as sm

        recipe["smile_lift"] = {"method": "the mouth's corners lifted in the photo (dgf_core.faces.smile)",
                                "lift": sm.LIFT, "widen": sm.WIDEN, "spread": sm.SPREAD, "unit": "the eye distance"}
    if eyelids:
        from . import eyelids as lid

        recipe["eyelids"] = {"method": "a lid layer drawn over each eye (dgf_core.faces.eyelids)", "eye_half_width":
                             lid.EYE_HALF_WIDTH, "upper": lid.UPPER, "lower": lid.LOWER, "reach": lid.REACH,
                             "lid_blur": lid.LID_BLUR, "lash": lid.LASH, "unit": "the eye distance"}
    if voice is not None:
        from ..generation.audio import recording_recipe

        recipe.update(recording_recipe(voice))
        recipe["voice"]["mouth_follows_voice"] = bool(mouth_follows_voice)
        if mouth_start is not None:
            recipe["voice"]["mouth_start"] = float(mouth_start)
    return recipe


def talking_start(model, latent: torch.Tensor, space: str, directions: dict[str, torch.Tensor] | None,
                  extents: dict[str, float] | None, generator: torch.nn.Module | None = None) -> float:
    """Where a voice's pauses put this face's mouth along `mouth_open`, in its motion amounts (<= 0; 0: the face
    itself): `mouth.mouth_start` on the frames of `generator` (default: the model's)."""
    from ..generation.motion import extent
    from .alignment import model_recipe
    from .mouth import mouth_start

    check_mouth(directions)
    gen = generator if generator is not None else model.generator
    return float(mouth_start(gen, latent, space, directions["mouth_open"], extent("mouth_open", extents),
                             model_recipe(model.card))["start"])


def make_memory(model, latent: torch.Tensor, space: str, spec: MemorySpec, outs: Sequence[str | os.PathLike], *,
                directions: dict[str, torch.Tensor] | None = None, upscaler=None,
                progress: Progress | None = None, generator: torch.nn.Module | None = None,
                tuning: dict[str, Any] | None = None, extents: dict[str, float] | None = None,
                photo: PhotoFrame | None = None, voice=None, mouth_follows_voice: bool = True) -> dict[str, Any]:
    """Render the memory clip of a projected latent once and write each of `outs` (.mp4 / .gif). Returns the recipe.
    `generator`: what renders the frames instead of the model's own (a pivotal-tuned copy, `tuning` its options).
    `photo`: what a spec.render == "photo" clip is drawn on (`PhotoFrame`). `voice`: an `audio.Recording` (the
    spec's frames must cover it: `voice_spec`), muxed into every MP4; the mouth follows it unless told not to."""
    from ..generation.video import check_outputs, write_clip, write_mp4_stream

    check_outputs(outs)
    if spec.render == "photo" and photo is None:
        raise MemoryClipError("rendering at the photo's resolution needs the photo; a saved latent renders with "
                              "render 'model'")
    mouth = start = None
    if voice is not None:
        from ..generation.audio import mouth_curve, mux_audio

        if spec.frames != voice.frames(spec.fps):
            raise MemoryClipError("the clip must last as long as the recording: build the spec with voice_spec")
        if mouth_follows_voice:
            start = talking_start(model, latent, space, directions, extents, generator)
            mouth = start + mouth_curve(voice, spec.fps, spec.frames)
    kw = dict(directions=directions, extents=extents, upscaler=upscaler, progress=progress, generator=generator,
              photo=photo, mouth=mouth)
    recipe = memory_recipe(model, latent, space, spec, upscaler, tuning,
                           size=photo.canvas.shape[1::-1] if spec.render == "photo" else None,
                           voice=voice, mouth_follows_voice=mouth is not None, mouth_start=start if mouth is not None else None,
                           eyelids=lid_curve(spec, directions) is not None)
    if streams(spec, outs):
        write_mp4_stream(iter_memory_frames(model, latent, space, spec, **kw), outs, spec.fps, recipe)
    else:
        frames = memory_frames(model, latent, space, spec, **kw)
        for out in outs:
            write_clip(frames, out, spec.fps, recipe)
    for out in outs:
        if voice is not None and str(out).lower().endswith(".mp4"):
            mux_audio(out, voice, out)
    return recipe


def streams(spec: MemorySpec, outs: Sequence[str | os.PathLike]) -> bool:
    """Whether `make_memory` streams the clip's frames into its files (a photo memory written to MP4 only) instead
    of holding them all (a GIF needs every frame; a model-rendered clip's frames are small)."""
    return spec.render == "photo" and bool(outs) and all(str(o).lower().endswith(".mp4") for o in outs)


def voice_spec(spec: MemorySpec, voice) -> MemorySpec:
    """The spec of a voice memory: as many frames as the recording lasts, its length recorded."""
    from dataclasses import replace

    out = replace(spec, frames=voice.frames(spec.fps), voice_seconds=round(voice.seconds, 2))
    out.validate()
    return out


def memory_frames(model, latent: torch.Tensor, space: str, spec: MemorySpec, *,
                  directions: dict[str, torch.Tensor] | None = None, extents: dict[str, float] | None = None,
                  upscaler=None, progress: Progress | None = None, generator: torch.nn.Module | None = None,
                  photo: PhotoFrame | None = None, mouth: np.ndarray | None = None) -> np.ndarray:
    """The clip's uint8 frames (T, H, W, 3): the generator's (render "model"), or the photo moved by them
    (render "photo", drawn on `photo`; the model frames, upscaled when spec.upscale > 1, then drive the flow)."""
    from dataclasses import replace

    coord_std = latent_space(model.generator, "w").coord_std() if space in ("w", "w+") else 1.0
    lat = memory_latents(latent, space, spec, coord_std=coord_std, directions=directions, extents=extents, mouth=mouth)
    gen = generator if generator is not None else model.generator
    lids = lid_curve(spec, directions)
    if spec.render != "photo":
        if lids is None:
            return render_memory(gen, lat, space, spec, upscaler=upscaler, progress=progress)
        from .eyelids import close_eyes, face_landmarks

        frames = render_memory(gen, lat, space, replace(spec, mark=False), upscaler=upscaler, progress=progress)
        eyes = face_landmarks(frames[0], _canonical(model))[:2]
        frames = np.stack([close_eyes(f, eyes, k) if k > 0 else f for f, k in zip(frames, lids)])
        return np.stack([add_mark(f) for f in frames]) if spec.mark else frames
    from .render import render_photo

    t = spec.frames
    driving = render_memory(gen, lat, space, replace(spec, mark=False), upscaler=upscaler,
                            progress=None if progress is None else lambda done, total: progress(done, 2 * t))
    frames = render_photo(photo.canvas, _to_driving(model, photo, driving), driving, photo.canonical,
                          **_drawn_for_photo(model, spec, directions, photo, driving),
                          progress=None if progress is None else lambda done, total: progress(t + done, 2 * t))
    if spec.mark:
        frames = np.stack([add_mark(f, corner=True) for f in frames])
    return frames


def _canonical(model) -> np.ndarray | None:
    """The model's crop recipe's canonical landmarks ((5, 2) in [0, 1]), or None when its card names none."""
    from .alignment import load_canonical, model_recipe

    try:
        return load_canonical(model_recipe(getattr(model, "card", None) or {}))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _to_driving(model, photo: PhotoFrame, driving: np.ndarray) -> np.ndarray:
    """The photo's canvas -> the pixels of the (upscaled) model frames that drive it."""
    r = driving.shape[1]
    return photo.to_aligned * (r / model.config.resolution) if r != model.config.resolution else photo.to_aligned


def iter_memory_frames(model, latent: torch.Tensor, space: str, spec: MemorySpec, *,
                       directions: dict[str, torch.Tensor] | None = None, extents: dict[str, float] | None = None,
                       upscaler=None, progress: Progress | None = None, generator: torch.nn.Module | None = None,
                       photo: PhotoFrame | None = None, mouth: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """`memory_frames`' frames one at a time, (H, W, 3) uint8 each: a photo memory holds its model frames (small) and
    the flows of three neighbouring frames (`render.iter_photo_frames`), never the clip's frames at the photo's size."""
    from dataclasses import replace

    if spec.render != "photo":
        yield from memory_frames(model, latent, space, spec, directions=directions, extents=extents, upscaler=upscaler,
                                 progress=progress, generator=generator, mouth=mouth)
        return
    from .render import iter_photo_frames

    coord_std = latent_space(model.generator, "w").coord_std() if space in ("w", "w+") else 1.0
    lat = memory_latents(latent, space, spec, coord_std=coord_std, directions=directions, extents=extents, mouth=mouth)
    gen = generator if generator is not None else model.generator
    t = spec.frames
    driving = render_memory(gen, lat, space, replace(spec, mark=False), upscaler=upscaler,
                            progress=None if progress is None else lambda done, total: progress(done, 2 * t))
    for f in iter_photo_frames(photo.canvas, _to_driving(model, photo, driving), driving, photo.canonical,
                               **_drawn_for_photo(model, spec, directions, photo, driving),
                               progress=None if progress is None else lambda done, total: progress(t + done, 2 * t)):
        yield add_mark(f, corner=True) if spec.mark else f


def _drawn_for_photo(model, spec: MemorySpec, directions, photo: PhotoFrame, driving: np.ndarray) -> dict[str, Any]:
    """render_photo's `lids`, `smile`, `turn` and `landmarks` (MTCNN's on the photo, carried into the driving frames'
    pixels; on the pivot frame where the photo shows no face) for a spec: {} when nothing is drawn."""
    lids, smile, turn = lid_curve(spec, directions), drawn_smile(spec), drawn_turn(spec)
    if lids is None and smile is None and turn is None:
        return {}
    from .eyelids import face_landmarks, photo_landmarks

    lm = photo_landmarks(photo.canvas)
    to = _to_driving(model, photo, driving)
    lm = lm @ to[:, :2].T + to[:, 2] if lm is not None else face_landmarks(driving[0], photo.canonical)
    return {"lids": lids, "smile": smile, "turn": turn, "landmarks": lm}

def memory_from_file(latent_path: str | os.PathLike, outs: Sequence[str | os.PathLike], spec: MemorySpec, *,
                     model_name: str | None = None, device: str = "cpu", upscaler=None,
                     progress: Progress | None = None) -> dict[str, Any]:
    """The CLI's `video --latent latent.npz [--edit age=+1.5]`: load the latent, its model (the one named in the
    file unless `model_name` is given; the weights hash must match), the model's edit directions when the spec
    edits, and write the clip. Raises ProjectionError / EditError / MemoryClipError with user-facing messages."""
    from ..checkpoint import load_model
    from .edits import load_directions
    from .projection import check_latent_model, load_latent

    spec.validate()
    if spec.render == "photo":
        raise MemoryClipError("a saved latent has no photo to render at its resolution: use render 'model'")
    saved = load_latent(latent_path)
    model = load_model(model_name or saved.model, device)
    check_latent_model(saved, model)
    directions = load_directions(model) if spec.edit else None
    directions, extents = motion_directions(model, spec, directions)
    return make_memory(model, saved.latent, saved.space, spec, outs, directions=directions, upscaler=upscaler,
                       progress=progress, extents=extents)


# ---- photo -> memory: the one core call behind the app's Memory tab, the Streamlit page and the CLI ---------

PhaseProgress = Callable[[str, float, str], None]  # (phase, fraction of that phase done, text for the user)
PHASES = ("align", "project", "tune", "render")


def overall_progress(phase: str, fraction: float, tuning: bool = True) -> float:
    """A phase's progress -> the whole request's (0..1), for one progress bar over all phases."""
    spans = ({"align": (0.0, 0.03), "project": (0.03, 0.4), "tune": (0.4, 0.9), "render": (0.9, 1.0)} if tuning else
             {"align": (0.0, 0.03), "project": (0.03, 0.85), "tune": (0.85, 0.85), "render": (0.85, 1.0)})
    lo, hi = spans[phase]
    return lo + (hi - lo) * min(max(fraction, 0.0), 1.0)


@dataclass
class MemoryResult:
    recipe: dict[str, Any]
    outs: list[str]
    aligned: torch.Tensor  # (3, R, R) uint8: what the generator was asked to reproduce (never written to disk)
    projection: torch.Tensor  # (3, R, R) uint8: the model's reconstruction from the pivot latent
    tuned: torch.Tensor | None  # (3, R, R) uint8: the tuned generator's reconstruction (None without tuning)
    latent: torch.Tensor
    space: str
    psnr_projection: float
    psnr_tuned: float | None
    likeness_projection: float | None  # identity-embedding cosine to the aligned photo (None without a likeness model)
    likeness_tuned: float | None
    notices: list[str]
    seconds: dict[str, float]
    projected: Any = None  # the projection.ProjectionResult (for `save_latent`)

    @property
    def reconstruction(self) -> torch.Tensor:
        return self.tuned if self.tuned is not None else self.projection

    @property
    def psnr(self) -> float:
        return self.psnr_tuned if self.psnr_tuned is not None else self.psnr_projection


def memory_from_photo(model, photo, spec: MemorySpec, outs: Sequence[str | os.PathLike], *, projection=None,
                      tuning=None, align: bool = True, detector=None, likeness=None,
                      directions: dict[str, torch.Tensor] | None = None, upscaler=None,
                      progress: PhaseProgress | None = None, motion: str | None = None,
                      render: str | None = "photo", voice=None, mouth_follows_voice: bool = True) -> MemoryResult:
    """Photo (an opened PIL image, e.g. `uploads.open_upload`) -> aligned face -> pivot latent (projection) ->
    pivotal tuning of a private copy of the generator (unless `tuning.steps` is 0; None: the space's default) -> looping memory clip
    written to each of `outs` (.mp4 / .gif). `model`: a `checkpoint.LoadedModel` (with its discriminator when
    it ships one: feature matching); `likeness`: a `likeness.Likeness` (identity loss and the likeness figures).
    `motion` ('alive', 'smile,blink', ...; None: the spec's) and `render` ("photo": at the photo's resolution, the
    default; "model": the generator's frames; None: the spec's) override the spec's fields. Directions the motion
    or the edit needs come from the model's directions.json unless `directions` is given. `voice`: the person's own
    recording (`audio.load_recording`, checked before this call): the clip lasts as long, carries it as sound in
    every MP4, and the mouth follows it (`mouth_follows_voice`; needs the model's mouth_open direction).

    The photo and the tuned generator stay in memory: nothing here writes either to disk, and the tuned copy is
    dropped when this returns. Raises AlignmentError / ProjectionError / MemoryClipError / EditError with messages
    for the user; every check that can fail runs before the slow work.
    """
    import time

    from ..generation.video import check_outputs
    from .alignment import model_recipe
    from .projection import ProjectionOptions, aligned_target, project_model
    from .tuning import TuningOptions, tune

    from dataclasses import replace

    from ..generation.motion import MotionError, check_motion

    projection = projection or ProjectionOptions()
    tuning = tuning if tuning is not None else TuningOptions()
    projection.validate()
    tuning.validate()
    spec = replace(spec, **({"motion": motion} if motion is not None else {}), **({"render": render} if render else {}))
    spec = voice_spec(spec, voice) if voice is not None else spec
    spec.validate()
    check_outputs(outs)
    check_clip_memory(spec, photo, streamed=streams(spec, outs))
    follow = voice is not None and mouth_follows_voice
    directions, extents = motion_directions(model, spec, directions, mouth=follow)
    if follow:
        check_mouth(directions)
    if spec.edit:
        if not directions:
            raise MemoryClipError("this model has no edit directions; clear the edit")
        check_edits(spec.edit, directions)
    if spec.motion:
        try:
            check_motion(spec.motion, directions)
        except MotionError as e:
            raise MemoryClipError(str(e)) from None
    say = progress or (lambda phase, frac, text: None)
    seconds: dict[str, float] = {}
    recipe_name = model_recipe(model.card)

    t = time.perf_counter()
    say("align", 0.0, "Finding the face" if align else "Cropping the photo")
    target, notices, to_crop = aligned_target(photo, model, align=align, detector=detector)
    frame = PhotoFrame.from_photo(photo, to_crop, recipe_name) if spec.render == "photo" else None
    seconds["align"] = time.perf_counter() - t

    t = time.perf_counter()
    result = project_model(model, target, projection, progress=lambda step, total, loss: say(
        "project", step / total, f"Projecting into the model: step {step}/{total}"))
    seconds["project"] = time.perf_counter() - t

    tuning = tuning.resolved(result.space)  # the latent space's defaults where the caller left None
    tuned = None
    if tuning.steps > 0:
        t = time.perf_counter()
        tuned = tune(model.generator, result.latent, result.space, target, tuning, discriminator=model.discriminator,
                     likeness=likeness, recipe=recipe_name, progress=lambda step, total, loss: say(
                         "tune", step / total, f"Tuning a private copy of the model to the photo: step {step}/{total}"))
        seconds["tune"] = time.perf_counter() - t

    t = time.perf_counter()
    tuning_card = None
    if tuned is not None:
        tuning_card = {k: v for k, v in asdict(tuned.options).items()}
        tuning_card["identity_loss"] = likeness is not None and tuning.identity_weight > 0
        tuning_card["feature_matching"] = model.discriminator is not None and tuning.fm_weight > 0
    recipe = make_memory(model, result.latent, result.space, spec, outs, directions=directions, upscaler=upscaler,
                         generator=tuned.generator if tuned is not None else None, tuning=tuning_card,
                         extents=extents, photo=frame, voice=voice, mouth_follows_voice=follow,
                         progress=lambda done, total: say("render", done / total, f"Rendering frame {done}/{total}"))
    seconds["render"] = time.perf_counter() - t

    def cosine(img: torch.Tensor) -> float | None:
        return None if likeness is None else round(float(likeness(img, target, recipe_name)[0]), 4)

    out = MemoryResult(
        recipe=recipe, outs=[str(o) for o in outs], aligned=to_uint8(target)[0], projection=to_uint8(result.image)[0],
        tuned=to_uint8(tuned.image)[0] if tuned is not None else None, latent=result.latent, space=result.space,
        psnr_projection=result.psnr, psnr_tuned=tuned.psnr if tuned is not None else None,
        likeness_projection=cosine(result.image), likeness_tuned=cosine(tuned.image) if tuned is not None else None,
        notices=list(notices), seconds={k: round(v, 2) for k, v in seconds.items()}, projected=result)
    return out  # the tuned copy and the photo's pixels go with this call's locals


def check_clip_memory(spec: MemorySpec, photo, streamed: bool = False) -> None:
    """MemoryClipError when the clip's frames would not fit in MAX_CLIP_BYTES (a GIF of a long voice memory of a large
    photo), before any slow work. `photo`: the PIL photo (its clip size is at most 1024 px on the longer side).
    `streamed`: the frames go to the files as they are made (`streams`): only the model's frames are held."""
    if spec.render == "photo" and photo is not None and not streamed:
        w, h = photo.size
        f = min(1.0, 1024 / max(w, h))
        side_bytes = round(w * f) * round(h * f) * 3
    else:
        side_bytes = (256 * 256 * 3)  # the model's frames, upscaled x4 at most
    need = spec.frames * side_bytes * 2  # the frames and the encoder's copy
    if need > MAX_CLIP_BYTES:
        raise MemoryClipError(f"a {spec.frames / spec.fps:.0f}-second clip of this photo would need "
                              f"{need / 2**30:.1f} GB of memory; use a shorter recording or a smaller photo")


def motion_preview(model, motion: str, *, frames: int = 24, fps: int = 12, seed: int = 0,
                   directions: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """A short look at a motion before a photo is given: the model's own face of `seed` (its typical face: the
    latent pulled halfway to the mean, truncation 0.5) moving by `motion` for frames / fps seconds, at the model's
    resolution. uint8 (frames, R, R, 3). MemoryClipError naming what the model lacks, as for a photo."""
    from ..latent import seed_to_z

    spec = MemorySpec(frames=frames, fps=fps, motion=motion, mark=False)
    spec.validate()
    directions, extents = motion_directions(model, spec, directions)
    g = model.generator
    z = seed_to_z(seed, model.config.z_dim)[None]
    if hasattr(g, "synthesis"):
        space = "w"
        with torch.no_grad():
            w = g.mapping(z)
        latent = 0.5 * (w + latent_space(g, "w").w_avg[None])
    else:
        space, latent = "z", 0.5 * z
    return memory_frames(model, latent, space, spec, directions=directions, extents=extents)
