"""A voice in a memory (generation/audio.py): decoding every common format, refusing bad recordings with one line,
the mouth-opening curve of syllable-like bursts, and muxing the sound into a clip."""
import subprocess
import wave

import numpy as np
import pytest

from dgf_core.generation.audio import (
    SAMPLE_RATE,
    Recording,
    RecordingError,
    audio_stream_seconds,
    load_recording,
    mouth_curve,
    mux_audio,
    recording_recipe,
)


def ffmpeg():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def syllables(seconds=3.0, rate=22050, channels=1, seed=0):
    """Syllable-like bursts: voiced tones with noise, 120-260 ms each with raised-cosine onsets, and pauses of
    80-300 ms between them. Returns (int16 samples (n, channels), the true loudness curve per sample in [0, 1])."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    env = np.zeros(n)
    t = 0.1
    while t < seconds - 0.3:
        dur = rng.uniform(0.12, 0.26)
        a, b = int(t * rate), int((t + dur) * rate)
        ramp = min(int(0.03 * rate), (b - a) // 2)
        shape = np.ones(b - a)
        shape[:ramp] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        shape[-ramp:] = shape[:ramp][::-1]
        env[a:b] = shape * rng.uniform(0.6, 1.0)
        t += dur + rng.uniform(0.08, 0.3)
    time = np.arange(n) / rate
    voice = 0.6 * np.sin(2 * np.pi * 140 * time) + 0.3 * np.sin(2 * np.pi * 280 * time) + 0.1 * rng.standard_normal(n)
    x = 0.5 * env * voice + 0.0005 * rng.standard_normal(n)  # a faint room noise in the pauses
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    return np.repeat(pcm[:, None], channels, 1), env


def write_wav(path, pcm, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def encode(src, dst):
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(src), str(dst)], check=True, timeout=60)
    return dst


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    pcm, _ = syllables(3.0, 44100, channels=2)
    return write_wav(tmp_path_factory.mktemp("voice") / "voice.wav", pcm, 44100)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "ogg", "flac", "webm"])
def test_every_common_format_decodes_to_mono_at_the_project_rate(wav, tmp_path, fmt):
    path = wav if fmt == "wav" else encode(wav, tmp_path / f"voice.{fmt}")
    rec = load_recording(path)
    assert rec.sample_rate == SAMPLE_RATE and rec.samples.ndim == 1 and rec.samples.dtype == np.int16
    assert abs(rec.seconds - 3.0) < 0.08
    assert rec.frames(24) in (72, 73)


def test_bad_recordings_get_one_line_each(wav, tmp_path):
    def refused(path, match, **kw):
        with pytest.raises(RecordingError, match=match) as e:
            load_recording(path, **kw)
        assert "\n" not in str(e.value)

    (tmp_path / "empty.wav").write_bytes(b"")
    refused(tmp_path / "empty.wav", "empty")
    refused(tmp_path / "missing.wav", "no recording")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    refused(tmp_path / "photo.png", "no audio track")  # ffmpeg reads it as a picture: no sound in it
    (tmp_path / "notes.txt").write_text("hello, this is not a recording\n" * 20)
    refused(tmp_path / "notes.txt", "not a readable audio|no audio track")  # ffmpeg may read text as a video
    (tmp_path / "garbage.m4a").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    refused(tmp_path / "garbage.m4a", "not a readable audio")
    video = tmp_path / "silent-video.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=1:size=64x64", str(video)],
                   check=True, timeout=60)
    refused(video, "no audio track")
    mp3 = encode(wav, tmp_path / "voice.mp3")
    data = mp3.read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.mp3", "cut off")
    flac = encode(wav, tmp_path / "voice.flac")
    data = flac.read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.flac", "damaged or cut off|cut off")
    refused(wav, "longer than 2 s|2 s", max_seconds=2.0)
    refused(wav, "MB", max_bytes=1000)
    quiet = write_wav(tmp_path / "quiet.wav", (np.random.default_rng(0).standard_normal((44100, 1)) * 3).astype(np.int16),
                      44100)
    refused(quiet, "silent")


def test_a_long_recording_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    long = tmp_path / "long.ogg"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=200:duration=70",
                    str(long)], check=True, timeout=120)
    import dgf_core.generation.audio as audio

    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(audio.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or real_run(cmd, **kw))
    with pytest.raises(RecordingError, match="70 s long"):
        load_recording(long)
    assert len(calls) == 1 and "pipe:1" not in calls[0]  # the description only, no decoding


def test_mouth_curve_follows_the_loudness_of_syllables(tmp_path):
    rate, fps = 22050, 24
    pcm, env = syllables(6.0, rate, seed=3)
    rec = load_recording(write_wav(tmp_path / "v.wav", pcm, rate))
    curve = mouth_curve(rec, fps)
    assert curve.shape == (rec.frames(fps),) and curve.min() >= 0 and curve.max() <= 1
    # the truth per frame: the burst envelope averaged over each frame
    frame_of = (np.arange(len(env)) / rate * fps).astype(int)
    truth = np.bincount(frame_of, weights=env)[: len(curve)] / np.bincount(frame_of)[: len(curve)]

    def corr(lag):
        a, b = (curve[lag:], truth[: len(truth) - lag]) if lag >= 0 else (curve[:lag], truth[-lag:])
        return np.corrcoef(a, b)[0, 1]

    lags = range(-4, 5)
    best = max(lags, key=corr)
    assert corr(0) > 0.8 and abs(best) * 1000 / fps <= 80
    assert curve[truth == 0].mean() < 0.25 and curve[truth > 0.5].mean() > 0.6  # closed in pauses, open on syllables
    flat = mouth_curve(Recording(np.zeros(SAMPLE_RATE, np.int16) + 1000), fps)  # a constant hum: no syllables
    assert np.ptp(flat) < 0.05


def test_mux_adds_the_sound_and_keeps_the_recipe(tmp_path):
    from dgf_core.generation.video import read_clip, read_clip_recipe, write_clip

    rate, fps = 22050, 12
    pcm, _ = syllables(2.0, rate, seed=1)
    rec = load_recording(write_wav(tmp_path / "v.wav", pcm, rate))
    frames = np.zeros((rec.frames(fps), 32, 32, 3), np.uint8)
    frames[:, :, :16] = 200
    silent = write_clip(frames, tmp_path / "silent.mp4", fps, {"kind": "test", **recording_recipe(rec)})
    assert audio_stream_seconds(silent) is None
    out = mux_audio(silent, rec, tmp_path / "voice.mp4")
    assert abs(audio_stream_seconds(out) - rec.seconds) <= 1 / fps
    got, got_fps = read_clip(out)
    assert len(got) == len(frames) and got_fps == fps
    recipe = read_clip_recipe(out)
    assert recipe["voice"]["used"] and recipe["voice"]["seconds"] == pytest.approx(2.0, abs=0.05)
    assert "v.wav" not in str(recipe)  # nothing that names the recording
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]
