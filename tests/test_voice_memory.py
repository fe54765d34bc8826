"""A voice memory: the clip lasts as long as the recording, carries it as sound, and the mouth follows it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan
from test_audio import syllables, write_wav

from dgf_core.checkpoint import load_model
from dgf_core.faces.memory import MemoryClipError, MemorySpec, check_clip_memory, memory_latents, voice_spec
from dgf_core.generation.audio import audio_stream_seconds, load_recording


def test_the_mouth_curve_moves_the_latent_along_mouth_open_only():
    base = torch.zeros(1, 4)
    dirs = {"mouth_open": torch.tensor([0.0, 0.0, 2.0, 0.0])}
    mouth = np.array([0.0, 0.5, 1.0, 0.25])
    lat = memory_latents(base, "z", MemorySpec(frames=4, radius=0.0, render="photo"), directions=dirs,
                         extents={"mouth_open": 1.5}, mouth=mouth)
    along = lat[:, 2] / 2.0  # the direction is 2 long: one unit of edit moves 2
    moved = along / along[2]
    np.testing.assert_allclose(moved.numpy(), mouth, atol=1e-5)  # proportional to the curve, open at its loudest
    assert torch.all(lat[:, [0, 1, 3]] == 0)
    with pytest.raises(MemoryClipError, match="no mouth_open direction"):
        memory_latents(base, "z", MemorySpec(frames=4, radius=0.0), directions={"age": dirs["mouth_open"]}, mouth=mouth)


def test_a_voice_spec_lasts_as_long_as_the_recording_and_long_clips_are_refused(tmp_path):
    pcm, _ = syllables(2.5, 16000)
    rec = load_recording(write_wav(tmp_path / "v.wav", pcm, 16000))
    spec = voice_spec(MemorySpec(frames=48, fps=24), rec)
    assert spec.frames == rec.frames(24) == 60 and spec.voice_seconds == pytest.approx(2.5, abs=0.01)
    long = MemorySpec(frames=1440, fps=24, voice_seconds=60.0, render="photo")
    long.validate()  # a voice memory may run to 60 s ...
    with pytest.raises(MemoryClipError, match="2..240"):
        MemorySpec(frames=1440, fps=24).validate()  # ... a silent loop may not

    class Photo:
        size = (4000, 3000)

    with pytest.raises(MemoryClipError, match="GB of memory"):
        check_clip_memory(long, Photo())  # 60 s at 1024 x 768
    Photo.size = (400, 300)
    check_clip_memory(long, Photo())
    Photo.size = (4000, 3000)
    check_clip_memory(long, Photo(), streamed=True)  # to MP4 only, the frames are never held together


def test_a_photo_memory_to_mp4_only_is_streamed_with_the_held_frames(tmp_path):
    from dataclasses import replace

    from PIL import Image

    from dgf_core.faces import memory
    from dgf_core.faces.alignment import model_recipe
    from dgf_core.faces.render import center_crop_transform
    from dgf_core.generation.video import read_clip, read_clip_recipe, write_clip

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 50, 3), dtype=np.uint8))
    frame = memory.PhotoFrame.from_photo(photo, center_crop_transform(50, 60, model.config.resolution), model_recipe(model.card))
    spec = MemorySpec(frames=10, fps=10, radius=0.3, render="photo")
    mp4, gif = tmp_path / "m.mp4", tmp_path / "m.gif"
    assert memory.streams(spec, [mp4, tmp_path / "n.MP4"]) and not memory.streams(spec, [mp4, gif])
    assert not memory.streams(replace(spec, render="model"), [mp4])  # the model's small frames are held
    z = torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(3))
    held = memory.memory_frames(model, z, "z", spec, photo=frame)
    streamed = list(memory.iter_memory_frames(model, z, "z", spec, photo=frame))
    assert len(streamed) == 10 and all(np.array_equal(a, b) for a, b in zip(streamed, held))
    recipe = memory.make_memory(model, z, "z", spec, [mp4], photo=frame)
    assert read_clip_recipe(mp4) == recipe and recipe["width"] == 50 and recipe["height"] == 60
    ref, _ = read_clip(write_clip(held, tmp_path / "ref.mp4", 10, recipe))
    assert np.array_equal(read_clip(mp4)[0], ref)


def test_cli_voice_memory(tmp_path, capsys):
    from PIL import Image

    from dgf_core.cli import main
    from dgf_core.faces.edits import save_directions
    from dgf_core.generation.video import read_clip, read_clip_recipe

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    photo = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 26, 3), dtype=np.uint8)).save(photo)
    pcm, _ = syllables(1.5, 16000)
    voice = write_wav(tmp_path / "voice.wav", pcm, 16000)
    out = tmp_path / "m.mp4"
    proj = ["project", str(photo), "--model", str(model.path), "--out", str(tmp_path / "p.npz"), "--no-align",
            "--steps", "2", "--tune-steps", "0", "--fps", "8"]
    assert main(proj + ["--voice", str(voice)]) == 2
    assert "--voice works with --save-memory" in capsys.readouterr().err
    assert main(proj + ["--save-memory", str(out), "--voice", str(voice)]) == 2
    assert "--voice-consent" in capsys.readouterr().err
    (tmp_path / "empty.wav").write_bytes(b"")
    assert main(proj + ["--save-memory", str(out), "--voice", str(tmp_path / "empty.wav"), "--voice-consent"]) == 2
    assert "empty (0 bytes)" in capsys.readouterr().err
    assert main(proj + ["--save-memory", str(out), "--voice", str(voice), "--voice-consent"]) == 2
    assert "no mouth_open direction" in capsys.readouterr().err and not out.exists()
    # without the mouth following the voice, a model without mouth_open makes the clip with the sound
    assert main(proj + ["--save-memory", str(out), "--voice", str(voice), "--voice-consent", "--no-mouth-follow"]) == 0
    recipe = read_clip_recipe(out)
    assert recipe["voice"] == {"used": True, "seconds": 1.5, "mouth_follows_voice": False, "note": recipe["voice"]["note"]}
    assert "voice.wav" not in str(recipe) and recipe["voice_seconds"] == 1.5
    frames, fps = read_clip(out)
    assert len(frames) == 12 and fps == 8
    assert abs(audio_stream_seconds(out) - 1.5) <= 1 / 8
    save_directions({"format": "dgf-directions/1", "model": "tiny", "weights_sha256": model.weights_sha256, "space": "z",
                     "directions": {"mouth_open": {"vector": [0.0] * 15 + [1.0], "motion_amount": 1.5}}},
                    tmp_path / "tiny" / "directions.json")
    gif = tmp_path / "m.gif"
    assert main(proj + ["--save-memory", str(out), "--save-memory", str(gif), "--voice", str(voice),
                        "--voice-consent"]) == 0
    voiced = read_clip_recipe(out)["voice"]
    assert voiced["mouth_follows_voice"] is True and -1 <= voiced["mouth_start"] <= 0 and audio_stream_seconds(out) > 1.3
    assert audio_stream_seconds(gif) is None and read_clip_recipe(gif)["voice"]["used"]  # a GIF: no sound


def test_sync_finds_the_lag_of_a_shifted_curve():
    from dgf_core.evaluation.voice_sync import sync

    rng = np.random.default_rng(0)
    env = np.convolve(rng.random(80), np.ones(4) / 4, mode="same")
    late = np.concatenate([np.zeros(2), env[:-2]])  # the mouth 2 frames after the sound
    res = sync(late, env, fps=24)
    assert res["best_lag_frames"] == 2 and res["best_lag_ms"] == pytest.approx(83.3, abs=0.1)
    assert res["correlation_at_best_lag"] > 0.99 > res["correlation"]


@pytest.mark.parametrize("model_name, seed", [("stylegan2-celeba64", 3), ("dcgan-celeba64", 5), ("stylegan2-celeba64", 7), ("dcgan-celeba64", 6)])
def test_the_mouth_of_a_shipped_model_follows_the_voice(tmp_path, model_name, seed):
    """Issue 26's sync target on the shipped weights: the classifier's mouth opening of the frames follows the
    loudness envelope of syllable-like bursts (correlation >= 0.5, lag <= 80 ms); seeds 7 / 6 have their mouth open
    at rest: it closes in the pauses (a start below the face)."""
    from dgf_core.evaluation.voice_sync import measure_voice_sync
    from dgf_core.latent import seed_to_z

    model = load_model(model_name)
    z = seed_to_z(seed, model.config.z_dim)[None]
    g = model.generator
    if hasattr(g, "mapped"):
        with torch.no_grad():
            latent, space = g.mapped(z, 0.7), "w"
    else:
        latent, space = 0.7 * z, "z"
    pcm, _ = syllables(4.0, 16000, seed=2)
    rec = load_recording(write_wav(tmp_path / "v.wav", pcm, 16000))
    res = measure_voice_sync(model, latent, space, rec, fps=12)
    assert res["frames"] == 48
    assert res["correlation"] >= 0.5 and abs(res["best_lag_ms"]) <= 80, res
    assert (res["mouth_start"] < 0) == (seed in (6, 7)), res


def test_the_talking_mouth_starts_where_its_stretch_opens_most():
    from dgf_core.faces.mouth import GRID, MIN_GAIN, choose_start

    grid = np.array(GRID)  # -1 .. 1 motion amounts in steps of 0.25
    closed = 6 / (1 + np.exp(-4 * (grid - 0.5))) - 3  # closed at the face, opening half a motion amount above it
    assert choose_start(closed) == 0.0  # the stretch [0, 1] is not beaten by MIN_GAIN: the face itself
    laughing = np.minimum(4 + 6 * grid, 5.0)  # already open at the face, saturating above it: pauses must close it
    assert choose_start(laughing) == -1.0
    flat = np.zeros(len(grid))
    flat[0] = -MIN_GAIN / 2  # a stretch barely better than the face's own: keep the face
    assert choose_start(flat) == 0.0 and choose_start(np.full(len(grid), np.nan)) == 0.0


def test_talking_start_measures_the_face_along_mouth_open(tmp_path):
    from dgf_core.faces.memory import talking_start
    from dgf_core.faces.mouth import GRID, mouth_start

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    z = torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(0))
    d = torch.zeros(model.config.z_dim)
    d[0] = 1.0

    class Reader:  # the mouth opening the classifier would read: the mean red of the frame
        def predict(self, images, recipe):
            return {"Mouth_Slightly_Open": torch.sigmoid(20 * images[:, 0].mean((1, 2)))}

    res = mouth_start(model.generator, z, "z", d, 1.5, "celeba-center-crop", Reader())
    assert len(res["opening"]) == len(GRID) and -1 <= res["start"] <= 0
    with torch.no_grad():
        red = model.generator(z + torch.tensor(GRID)[:, None] * 1.5 * d[None])[:, 0].mean((1, 2))
    np.testing.assert_allclose(res["opening"], (20 * red).numpy(), atol=2e-3)  # the logits at the grid's points
    with pytest.raises(MemoryClipError, match="no mouth_open direction"):
        talking_start(model, z, "z", {"age": d}, None)


def test_talking_start_of_a_face_projected_into_w_plus(tmp_path):
    """A StyleGAN2 photo is projected into w+ (1, n_ws, D): its mouth line is walked in w+, every layer alike."""
    from conftest import make_tiny_stylegan2

    from dgf_core.faces.mouth import GRID, mouth_start
    from dgf_core.latent import synthesize

    model = load_model(make_tiny_stylegan2(tmp_path / "sg2"))
    g = model.generator
    with torch.no_grad():
        w = g.mapping(torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(0)))
    wp = g.broadcast(w).clone()
    wp[:, 0] += 0.5  # a w+ latent whose layers differ
    d = torch.zeros(w.shape[-1])
    d[1] = 1.0

    class Reader:
        def predict(self, images, recipe):
            return {"Mouth_Slightly_Open": torch.sigmoid(5 * images[:, 0].mean((1, 2)))}

    res = mouth_start(g, wp, "w+", d, 1.5, "celeba-center-crop", Reader())
    with torch.no_grad():
        frames = synthesize(g, wp + (torch.tensor(GRID)[:, None] * 1.5 * d[None])[:, None, :], "w+").clamp(-1, 1)
        red = frames[:, 0].mean((1, 2))
    np.testing.assert_allclose(res["opening"], (5 * red).numpy(), atol=2e-3)
