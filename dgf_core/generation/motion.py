"""Motion presets: named, looping, composable movements of a face along its model's edit directions.

A motion is a set of per-frame curves, one per edit direction, in units of the direction's natural extent: 1.0
on `yaw` is the edit amount that turns the head as far as it naturally goes in the named way (`motion_amount` in
the model's `directions.json`, see docs/motion.md), so the same preset moves every model as far as that model
can. Age and gender, today's morphs, are motions too; their extent is the gentle edit the memory always made
(`EDIT_EXTENTS`). `drift` is today's small random walk around the face (the memory's `radius`).

Every curve is 0 at frame 0 (the first frame is the photo) and periodic over the clip (it loops without a
seam), and its timing is natural in seconds, whatever the frame rate: a blink closes in 0.15 s and opens in
0.2 s, a smile takes a second to come and a second to go, a nod half a second down, a syllable a quarter of a
second. `NAME[,NAME...]` composes motions: curves of the same direction add up.

- `parse_motion(text)` -> the motion's names (MotionError listing the known ones for an unknown name);
- `motion_curves(names, frames, fps)` -> {direction: (T,) float64}, with "drift" the walk's per-frame scale;
- `motion_path(latent, space, curves, directions, extents)` -> the latents (T, ...) the curves make.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

# the directions a motion can move: part 1's motion directions and today's edits (names as in directions.json)
MOTION_DIRECTIONS = ("smile", "mouth_open", "eyes", "yaw", "pitch")
EDIT_EXTENTS = {"age": 1.5, "gender": 1.5}  # the morphs' extent: the edit today's memory reaches mid-clip
DEFAULT_EXTENT = 2.0  # edit units for a motion direction whose table lacks motion_amount
MAX_EXTENT = 6.0  # |motion_amount| above this is refused as a broken table (MAX_EDIT is 3)
DRIFT = "drift"  # not a direction: the scale of the memory's random walk (its radius)
BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.15, 0.05, 0.2  # seconds


class MotionError(ValueError):
    """An unknown motion, or a motion the model cannot make; str(e) is a message for the user."""


def ease(x: np.ndarray) -> np.ndarray:
    """Cosine ease 0 -> 1 on [0, 1] (zero velocity at both ends), clamped outside."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def pulse(t: np.ndarray, duration: float, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0: eased up over `rise` seconds from `start`, held, eased down over `fall`; times modulo the
    clip's `duration`, so a pulse that runs past the end wraps to the start (the clip loops)."""
    s = np.mod(t - start, duration)
    up = ease(s / max(rise, 1e-9))
    down = 1.0 - ease((s - rise - hold) / max(fall, 1e-9))
    return np.where(s < rise + hold, up, np.where(s < rise + hold + fall, down, 0.0))


def cycles(duration: float, period: float) -> int:
    """Whole cycles of about `period` seconds in a clip (at least one): a periodic motion must loop."""
    return max(1, round(duration / period))


def wave(t: np.ndarray, duration: float, n: int) -> np.ndarray:
    """n full sine waves over the clip, 0 at the start: left, right and back."""
    return np.sin(2 * np.pi * n * t / duration)


def bump(t: np.ndarray, duration: float, n: int) -> np.ndarray:
    """n raised cosines over the clip, 0 -> 1 -> 0 each: a movement one way and back."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * n * t / duration)


def blinks(t: np.ndarray, duration: float, every: float = 3.0, first: float = 0.35) -> np.ndarray:
    """Fast blinks (BLINK_CLOSE / BLINK_HOLD / BLINK_OPEN seconds), one about every `every` seconds; the first at
    `first` of the spacing, so the clip starts with the eyes open."""
    n = cycles(duration, every)
    gap = duration / n
    out = np.zeros_like(t)
    for i in range(n):
        out = np.maximum(out, pulse(t, duration, (i + first) * gap, BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN))
    return out


def slow_pulse(t: np.ndarray, duration: float, ramp: float = 1.0) -> np.ndarray:
    """A slow expression (a smile): comes over `ramp` seconds (at most 40% of the clip), holds, goes as slowly."""
    lead = 0.08 * duration
    r = min(ramp, 0.4 * duration)
    hold = max(0.0, duration - 2 * lead - 2 * r)
    return pulse(t, duration, lead, r, hold, r)


Preset = Callable[[np.ndarray, float], dict[str, np.ndarray]]


def _smile(t, d):
    return {"smile": slow_pulse(t, d)}


def _blink(t, d):
    return {"eyes": blinks(t, d)}


def _nod(t, d):
    return {"pitch": bump(t, d, cycles(d, 1.6))}


def _look_around(t, d):
    n = cycles(d, 4.0)
    return {"yaw": wave(t, d, n), "pitch": 0.3 * wave(t, d, 2 * n) * np.abs(wave(t, d, n))}


def _talk(t, d):
    syllables = bump(t, d, cycles(d, 0.25))  # about 4 a second
    phrase = 0.35 + 0.65 * bump(t, d, cycles(d, 1.3))  # louder and softer
    return {"mouth_open": syllables * phrase, "pitch": 0.1 * wave(t, d, cycles(d, 1.3))}


def _alive(t, d):
    breath = bump(t, d, cycles(d, 4.0))  # a breath about every 4 s: the head rises a little
    return {"pitch": -0.12 * breath, "yaw": 0.25 * wave(t, d, cycles(d, 6.0)), "eyes": blinks(t, d, every=3.5),
            "smile": 0.3 * slow_pulse(t, d, ramp=1.5), DRIFT: np.full_like(t, 0.5)}


def _age(t, d):
    return {"age": bump(t, d, 1)}


def _gender(t, d):
    return {"gender": bump(t, d, 1)}


def _drift(t, d):
    return {DRIFT: np.ones_like(t)}


PRESETS: dict[str, tuple[Preset, str]] = {
    "alive": (_alive, "a gentle mix: breathing, a slight turn, a blink, the start of a smile"),
    "smile": (_smile, "a slow smile, held, then relaxed"),
    "blink": (_blink, "a fast blink about every 3 s"),
    "look-around": (_look_around, "the head turns one way, then the other"),
    "nod": (_nod, "a nod about every 1.6 s"),
    "talk": (_talk, "the mouth opens and closes about 4 times a second, as in speech"),
    "age": (_age, "older towards the middle of the clip, back by its end"),
    "gender": (_gender, "the other gender towards the middle of the clip, back by its end"),
    "drift": (_drift, "today's memory: a small random walk around the face"),
}
KNOWN = tuple(PRESETS)
# parts of a preset that a model without the direction leaves out instead of refusing the motion: the slight nod
# inside a look around, a breath or a phrase (a `nod` asked for by name still needs `pitch`)
OPTIONAL: dict[str, tuple[str, ...]] = {"look-around": ("pitch",), "alive": ("pitch",), "talk": ("pitch",)}
# curves a renderer can draw without a latent direction: the eyelids close over the eyes (`faces.eyelids`), so a blink
# works on every model (through its `eyes` direction where it has one and the clip is the model's own frames)
DRAWN = ("eyes",)


def parse_motion(text: str | None) -> tuple[str, ...]:
    """'smile,blink' -> ('smile', 'blink'); '' or None -> () (the memory's walk alone). MotionError on unknown names."""
    if text is None:
        return ()
    if not isinstance(text, str):
        raise MotionError(f"a motion is a name or a comma-separated list of names, got {text!r}")
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise MotionError(f"unknown motion {', '.join(repr(n) for n in unknown)}; known motions: {', '.join(KNOWN)}")
    if len(set(names)) != len(names):
        raise MotionError(f"motion {text!r} names a motion twice")
    return names


def motion_curves(names: str | tuple[str, ...], frames: int, fps: int, available=None) -> dict[str, np.ndarray]:
    """Per-frame amounts {direction: (frames,) float64} of the composed motions, in units of each direction's
    extent (DRIFT: the walk's radius scale). Frame i is at t = i / fps; the clip lasts frames / fps seconds and
    every curve has the same value at t = 0 and t = frames / fps (0, except DRIFT's constant scale).
    `available`: the model's directions (names); an OPTIONAL part of a preset that it lacks is left out."""
    names = parse_motion(names) if isinstance(names, str) else tuple(names)
    if frames < 2 or fps < 1:
        raise MotionError(f"a motion needs at least 2 frames and 1 fps, got {frames} frames at {fps} fps")
    t = np.arange(frames, dtype=np.float64) / fps
    d = frames / fps
    out: dict[str, np.ndarray] = {}
    for name in names:
        for key, curve in PRESETS[name][0](t, d).items():
            if available is not None and key in OPTIONAL.get(name, ()) and key not in available:
                continue
            out[key] = out.get(key, 0.0) + curve
    return out


def needed_directions(names: str | tuple[str, ...]) -> list[str]:
    """The model directions a motion moves (sorted): DRIFT and its OPTIONAL parts excluded; a DRAWN one (eyes) is
    listed, since a model that has it uses it, but a model without it is not refused (`check_motion`)."""
    names = parse_motion(names) if isinstance(names, str) else names
    return sorted({k for n in names for k in PRESETS[n][0](np.zeros(1), 4.0) if k != DRIFT and k not in OPTIONAL.get(n, ())})


def check_motion(names: str | tuple[str, ...], directions: dict[str, torch.Tensor] | None) -> None:
    """MotionError naming what the model lacks when a motion needs directions it does not have (DRAWN curves
    excepted: the renderer draws them)."""
    need = [k for k in needed_directions(names) if k not in DRAWN]
    missing = [k for k in need if k not in (directions or {})]
    if missing:
        which = ", ".join(n for n in (parse_motion(names) if isinstance(names, str) else names)
                          if set(needed_directions((n,))) & set(missing))
        raise MotionError(f"motion {which} needs the edit direction{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}, which this model lacks (it has: {', '.join(sorted(directions or {})) or 'none'}); "
                          "compute them with scripts/compute_directions.py, or choose another motion")


def load_extents(path: str | Path | None) -> dict[str, float]:
    """{direction: motion_amount} from a directions.json ('dgf-directions/1'); directions without one are left
    out (they get EDIT_EXTENTS / DEFAULT_EXTENT). A missing file gives {}."""
    if path is None or not Path(path).is_file():
        return {}
    table = json.loads(Path(path).read_text())
    out = {}
    for name, entry in (table.get("directions") or {}).items():
        a = entry.get("motion_amount") if isinstance(entry, dict) else None
        if a is None:
            continue
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or not 0 < abs(a) <= MAX_EXTENT:
            raise MotionError(f"{path}: motion_amount of {name!r} must be a non-zero number within +-{MAX_EXTENT:g}, got {a!r}")
        out[name] = float(a)
    return out


def extent(name: str, extents: dict[str, float] | None) -> float:
    if extents and name in extents:
        return extents[name]
    return EDIT_EXTENTS.get(name, DEFAULT_EXTENT)


def motion_offsets(curves: dict[str, np.ndarray], directions: dict[str, torch.Tensor] | None,
                   extents: dict[str, float] | None, dim: int) -> torch.Tensor:
    """The curves as latent offsets (T, dim): sum over directions of curve * extent * direction (DRIFT ignored)."""
    curves = {k: v for k, v in curves.items() if k != DRIFT}
    missing = [k for k in curves if k not in (directions or {})]
    if missing:
        raise MotionError(f"this model lacks the edit direction{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))} "
                          f"that the motion needs (it has: {', '.join(sorted(directions or {})) or 'none'})")
    t = len(next(iter(curves.values()))) if curves else 0
    out = torch.zeros(t, dim, dtype=torch.float64)
    for k, c in curves.items():
        d = directions[k]
        if d.shape != (dim,):
            raise MotionError(f"direction {k!r} has {d.shape[0]} dimensions; the latent has {dim}")
        out += torch.from_numpy(np.asarray(c, np.float64) * extent(k, extents))[:, None] * d.double()[None, :]
    return out.float()


def motion_path(latent: torch.Tensor, space: str, curves: dict[str, np.ndarray],
                directions: dict[str, torch.Tensor] | None, extents: dict[str, float] | None = None) -> torch.Tensor:
    """latent (1, D) for z / w or (1, n_ws, D) for w+ -> (T, D) / (T, n_ws, D): the latent moved by the curves
    (every layer alike in w+). Frame i is latent + sum_k curves[k][i] * extent_k * direction_k."""
    assert latent.shape[0] == 1 and latent.ndim == (3 if space == "w+" else 2), tuple(latent.shape)
    offs = motion_offsets(curves, directions, extents, latent.shape[-1]).to(latent)
    if offs.shape[0] == 0:
        raise MotionError("the motion moves no direction")
    return latent + (offs[:, None, :] if space == "w+" else offs)
