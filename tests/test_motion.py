"""Motion presets (dgf_core.generation.motion): timing, looping, composition, errors, and the latent path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dgf_core.faces.memory import MemoryClipError, MemorySpec, memory_latents
from dgf_core.generation.motion import (
    BLINK_CLOSE,
    DEFAULT_EXTENT,
    DRIFT,
    KNOWN,
    MotionError,
    load_extents,
    motion_curves,
    motion_path,
    needed_directions,
    parse_motion,
)


def test_every_preset_starts_at_rest_and_loops():
    for name in KNOWN:
        for frames, fps in ((96, 24), (48, 24), (30, 10)):
            curves = motion_curves(name, frames, fps)
            assert curves, name
            for key, c in curves.items():
                assert c.shape == (frames,)
                if key == DRIFT:
                    continue
                assert c[0] == pytest.approx(0.0, abs=1e-12), (name, key)
                assert np.abs(c).max() > 0.05, (name, key)
                # looping: the step from the last frame back to frame 0 is no bigger than the steps within the clip
                assert abs(c[-1] - c[0]) <= np.abs(np.diff(c)).max() + 1e-9, (name, key)


def test_blink_is_fast_and_smile_is_slow():
    fps = 100
    eyes = motion_curves("blink", 400, fps)["eyes"]
    closing = np.flatnonzero((eyes > 0.05) & (np.diff(eyes, prepend=0) > 0))
    assert 0.1 <= len(closing) / fps <= 0.25  # frames spent closing: about BLINK_CLOSE
    assert BLINK_CLOSE == pytest.approx(0.15)
    assert eyes.max() == pytest.approx(1.0, abs=1e-3)
    smile = motion_curves("smile", 400, fps)["smile"]
    rising = np.flatnonzero((smile > 0.02) & (smile < 0.98) & (np.diff(smile, prepend=0) > 0))
    assert len(rising) / fps > 0.7  # a second or so to smile
    assert smile.max() == pytest.approx(1.0)


def test_motions_compose_by_adding_curves():
    a = motion_curves("nod", 48, 24)
    b = motion_curves("look-around", 48, 24)
    both = motion_curves("nod,look-around", 48, 24)
    assert np.allclose(both["pitch"], a["pitch"] + b["pitch"]) and np.allclose(both["yaw"], b["yaw"])
    assert set(motion_curves("alive", 96, 24)) == {"pitch", "yaw", "eyes", "smile", DRIFT}
    assert needed_directions("talk,age") == ["age", "mouth_open"] and needed_directions("nod,talk") == ["mouth_open", "pitch"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(MotionError) as e:
        parse_motion("smile,wink")
    assert "'wink'" in str(e.value) and all(k in str(e.value) for k in KNOWN)
    with pytest.raises(MotionError, match="twice"):
        parse_motion("blink,blink")
    assert parse_motion(" Smile , blink ") == ("smile", "blink") and parse_motion("") == ()
    with pytest.raises(MemoryClipError, match="known motions"):
        MemorySpec(motion="dance").validate()


def test_motion_path_scales_by_the_extent_and_moves_every_layer():
    dirs = {"yaw": torch.tensor([1.0, 0.0, 0.0]), "pitch": torch.tensor([0.0, 1.0, 0.0])}
    curves = motion_curves("look-around", 24, 24)
    lat = motion_path(torch.zeros(1, 2, 3), "w+", curves, dirs, {"yaw": -0.5})
    assert lat.shape == (24, 2, 3) and torch.equal(lat[:, 0], lat[:, 1])
    assert np.allclose(lat[:, 0, 0].numpy(), -0.5 * curves["yaw"], atol=1e-6)
    assert np.allclose(lat[:, 0, 1].numpy(), DEFAULT_EXTENT * curves["pitch"], atol=1e-6)  # no motion_amount: default
    with pytest.raises(MotionError, match="lacks the edit direction mouth_open"):
        motion_path(torch.zeros(1, 3), "z", motion_curves("talk", 24, 24), dirs)


def test_memory_latents_with_a_motion_start_at_the_face():
    base = torch.randn(1, 6, generator=torch.Generator().manual_seed(1))
    dirs = {"eyes": torch.eye(6)[2]}
    lat = memory_latents(base, "z", MemorySpec(frames=48, fps=24, motion="blink"), directions=dirs, extents={"eyes": 2.5})
    assert torch.equal(lat[0], base[0])  # frame 0 is the pivot: the photo
    move = (lat - base)[:, 2]
    assert float(move.max()) == pytest.approx(2.5, abs=1e-3) and float((lat - base)[:, [0, 1, 3, 4, 5]].abs().max()) < 1e-6
    drift = memory_latents(base, "z", MemorySpec(frames=12, fps=24, motion="drift"))
    assert torch.equal(drift[0], base[0]) and float((drift - base).norm(dim=1).max()) > 0.1
    with pytest.raises(MemoryClipError, match="needs the edit directions smile, yaw"):  # eyes: drawn; pitch: optional
        memory_latents(base, "z", MemorySpec(frames=12, motion="alive"), directions={"age": torch.ones(6)})


def test_a_model_without_pitch_still_looks_around_but_cannot_nod():
    from dgf_core.generation.motion import check_motion

    yaw_only = {"yaw": torch.tensor([1.0, 0.0, 0.0])}
    check_motion("look-around", yaw_only)
    curves = motion_curves("look-around", 24, 24, available=yaw_only)
    assert set(curves) == {"yaw"} and np.allclose(curves["yaw"], motion_curves("look-around", 24, 24)["yaw"])
    assert "pitch" in motion_curves("look-around", 24, 24, available={**yaw_only, "pitch": torch.zeros(3)})
    with pytest.raises(MotionError, match="nod needs the edit direction pitch"):
        check_motion("nod,look-around", yaw_only)


def test_extents_are_read_from_directions_json(tmp_path):
    table = {"format": "dgf-directions/1", "directions": {"yaw": {"vector": [0.0], "motion_amount": -1.75},
                                                           "age": {"vector": [1.0]}}}
    (tmp_path / "directions.json").write_text(json.dumps(table))
    assert load_extents(tmp_path / "directions.json") == {"yaw": -1.75}
    assert load_extents(tmp_path / "missing.json") == {}
    table["directions"]["yaw"]["motion_amount"] = "far"
    (tmp_path / "directions.json").write_text(json.dumps(table))
    with pytest.raises(MotionError, match="motion_amount of 'yaw'"):
        load_extents(tmp_path / "directions.json")


def test_a_blink_needs_no_eyes_direction_the_eyelids_draw_it():
    from dgf_core.generation.motion import DRAWN, OPTIONAL, check_motion, motion_curves, needed_directions

    assert needed_directions("alive") == ["eyes", "smile", "yaw"] and DRAWN == ("eyes",)
    assert OPTIONAL == {"look-around": ("pitch",), "alive": ("pitch",), "talk": ("pitch",)}
    no_eyes = {k: torch.zeros(4) for k in ("pitch", "smile", "yaw")}
    check_motion("alive,blink", no_eyes)  # the StyleGAN2 ships no eyes direction: the eyelids draw the blink
    assert "eyes" in motion_curves("alive", 96, 24, available=no_eyes)
    with pytest.raises(MotionError, match="smile needs the edit direction smile"):
        check_motion("smile,blink", {})  # a direction no renderer can draw is still named
