"""A voice in a memory: the person's own recording, checked, decoded, turned into a mouth-opening curve, and muxed
into the clip. The project never makes up a voice: the sound is the recording, as it was given.

- `load_recording(path)` decodes any format the ffmpeg of imageio-ffmpeg reads (WAV, MP3, M4A/AAC, OGG, FLAC, the
  WebM/MP4 audio phones record), mono or stereo, any sample rate, into mono 16-bit PCM at SAMPLE_RATE held in
  memory. Every problem a user can cause is a `RecordingError` with a one-line message, raised before any slow work:
  a 0-byte file, a file over MAX_BYTES, a file that is not audio or has no audio track, a corrupt or truncated one,
  a recording over MAX_SECONDS, silence. The decoder reads the file in place and writes nothing.
- `mouth_curve(rec, fps, n_frames)`: the loudness envelope (RMS in 10 ms hops, in dB between the recording's own
  noise floor and its loud syllables), smoothed forwards and backwards (zero phase: the mouth does not lag the
  sound), averaged over each video frame: 0 = closed (a pause), 1 = fully open (a loud syllable).
- `mux_audio(video, rec, out)` copies the H.264 stream and its metadata (the recipe), encodes the recording as AAC
  through a pipe (the recording never lands on disk apart from inside the finished clip) and writes `out` atomically.
- `recording_recipe(rec)` is what the clip's recipe says of it: that a recording was used and its length, nothing
  that identifies it.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48_000  # decoded and muxed at this rate (mono)
MAX_SECONDS = 60.0
MAX_BYTES = 50 * 1024 * 1024
HOP_SECONDS = 0.010  # loudness hop
SILENCE_DBFS = -45.0  # a recording whose loud parts (95th percentile of the hop loudness) stay below this is silent
SMOOTH_SECONDS = 0.035  # time constant of the zero-phase envelope smoothing
DECODE_TIMEOUT = 60  # seconds


class RecordingError(ValueError):
    """A recording that cannot be used; str(e) is a one-line message for the user."""


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray  # (n,) int16 mono PCM at SAMPLE_RATE
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def frames(self, fps: int) -> int:
        """Video frames that cover the recording at `fps` (the clip lasts as long as the recording)."""
        return max(1, math.ceil(round(self.seconds * fps, 6)))


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def load_recording(path: str | os.PathLike, *, max_seconds: float = MAX_SECONDS, max_bytes: int = MAX_BYTES) -> Recording:
    """Check and decode a recording (see the module note). Raises RecordingError with a message for the user."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError("no recording was received; upload it again")
    size = path.stat().st_size
    if size == 0:
        raise RecordingError("the recording is empty (0 bytes); upload the audio file again")
    if size > max_bytes:
        raise RecordingError(f"the recording is {size / 2**20:.0f} MB; at most {max_bytes / 2**20:.0f} MB is accepted")
    declared, has_audio, readable = _probe(path)
    if not readable:
        raise RecordingError("this file is not a readable audio recording (it may be corrupt or another kind of "
                             "file); use WAV, MP3, M4A, OGG, FLAC or WebM")
    if not has_audio:
        raise RecordingError("this file has no audio track; upload a voice recording (WAV, MP3, M4A, OGG, FLAC, WebM)")
    if declared is not None and declared > max_seconds + 0.5:
        raise RecordingError(f"the recording is {declared:.0f} s long; trim it to at most {max_seconds:.0f} seconds")
    # decode a little more than the limit, so that a longer recording is recognised without decoding all of it
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1",
           "-ar", str(SAMPLE_RATE), "-t", f"{max_seconds + 0.5:.3f}", "-f", "s16le", "pipe:1"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RecordingError("the recording could not be decoded in time; use a common audio format (WAV, MP3, "
                             "M4A, OGG, FLAC)") from None
    err = out.stderr.decode("utf-8", "replace").strip()
    if out.returncode != 0 or not out.stdout:
        raise RecordingError("this file is not a readable audio recording (it may be corrupt or another kind of "
                             "file); use WAV, MP3, M4A, OGG, FLAC or WebM")
    if err:  # decoded with errors: a damaged or cut-off file whose sound would be garbled
        raise RecordingError("the recording is damaged or cut off (the decoder reported errors); upload the "
                             "complete file")
    samples = np.frombuffer(out.stdout[: len(out.stdout) // 2 * 2], dtype="<i2").astype(np.int16)
    rec = Recording(samples)
    if declared is not None and rec.seconds < min(declared, max_seconds) - max(0.25, 0.02 * declared):
        raise RecordingError(f"the recording is cut off: it should last {declared:.1f} s but only "
                             f"{rec.seconds:.1f} s could be decoded; upload the complete file")
    if rec.seconds > max_seconds:
        raise RecordingError(f"the recording is longer than {max_seconds:.0f} s; trim it to at most "
                             f"{max_seconds:.0f} seconds")
    if rec.seconds < 0.2:
        raise RecordingError("the recording is shorter than 0.2 s; use a recording of a few seconds of speech")
    if np.percentile(hop_loudness_db(rec), 95) < SILENCE_DBFS:
        raise RecordingError("the recording is silent (or nearly); use a recording in which the person speaks")
    return rec


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


def _probe(path: Path) -> tuple[float | None, bool, bool]:
    """(declared duration in seconds or None, has an audio stream, readable at all) from ffmpeg's description."""
    try:
        res = subprocess.run([_ffmpeg(), "-nostdin", "-hide_banner", "-i", str(path)], capture_output=True,
                             timeout=DECODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, False, False
    text = res.stderr.decode("utf-8", "replace")
    if "Error opening input" in text or "Invalid data found" in text:
        return None, False, False
    m = _DURATION.search(text)
    declared = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    return declared, bool(re.search(r"Stream #\S+.*: Audio:", text)), True


def hop_loudness_db(rec: Recording, hop: float = HOP_SECONDS) -> np.ndarray:
    """RMS loudness per hop in dBFS: (ceil(seconds / hop),) float64, at least -100."""
    n = max(1, int(round(hop * rec.sample_rate)))
    x = rec.samples.astype(np.float64) / 32768.0
    pad = (-len(x)) % n
    x = np.concatenate([x, np.zeros(pad)]).reshape(-1, n)
    rms = np.sqrt((x * x).mean(1))
    return 20 * np.log10(np.maximum(rms, 1e-5))


def _smooth(x: np.ndarray, hop: float, tau: float) -> np.ndarray:
    """One-pole low-pass run forwards then backwards (zero phase)."""
    a = math.exp(-hop / tau)
    y = x.copy()
    for direction in (1, -1):
        seq = y[::direction].copy()
        for i in range(1, len(seq)):
            seq[i] = a * seq[i - 1] + (1 - a) * seq[i]
        y = seq[::direction]
    return y


def loudness_envelope(rec: Recording, hop: float = HOP_SECONDS) -> np.ndarray:
    """(hops,) in [0, 1]: the hop loudness between the recording's noise floor (its 10th percentile, at least 30 dB
    below its loud parts) and its loud syllables (95th percentile), smoothed with zero phase."""
    db = hop_loudness_db(rec, hop)
    loud = np.percentile(db, 95)
    floor = min(np.percentile(db, 10), loud - 30.0)
    floor = max(floor, loud - 45.0)  # a very quiet floor would make every breath open the mouth
    env = np.clip((db - floor) / max(loud - floor, 1e-6), 0.0, 1.0)
    return np.clip(_smooth(env, hop, SMOOTH_SECONDS), 0.0, 1.0)


def mouth_curve(rec: Recording, fps: int, n_frames: int | None = None) -> np.ndarray:
    """(n_frames,) float64 in [0, 1], the mouth opening of each video frame: the mean envelope over the frame's
    time span [i / fps, (i + 1) / fps). n_frames defaults to `rec.frames(fps)`; frames past the recording get 0."""
    n_frames = rec.frames(fps) if n_frames is None else int(n_frames)
    env = loudness_envelope(rec)
    t = (np.arange(len(env)) + 0.5) * HOP_SECONDS  # hop centres
    idx = np.floor(t * fps).astype(np.int64)
    keep = idx < n_frames
    sums = np.bincount(idx[keep], weights=env[keep], minlength=n_frames)
    counts = np.bincount(idx[keep], minlength=n_frames)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def recording_recipe(rec: Recording) -> dict[str, object]:
    """What a clip's recipe says of its recording: used, and how long; nothing that identifies it."""
    return {"voice": {"used": True, "seconds": round(rec.seconds, 2),
                      "note": "the person's own recording, given with consent; not stored, not synthesized; the clip "
                              "cannot be regenerated without it"}}


def mux_audio(video: str | os.PathLike, rec: Recording, out: str | os.PathLike, bitrate: str = "128k") -> Path:
    """`video` (an MP4 from `video.write_clip`) + the recording -> `out` (MP4, H.264 copied, AAC audio, the video's
    metadata kept), cut to the shorter of the two; written atomically. The PCM goes to ffmpeg through a pipe."""
    from ..checkpoint import atomic_path

    out, tmp = atomic_path(Path(out))
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(video), "-f", "s16le", "-ar", str(rec.sample_rate),
           "-ac", "1", "-i", "pipe:0", "-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "0", "-c:v", "copy",
           "-c:a", "aac", "-b:a", bitrate, "-shortest", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    try:
        res = subprocess.run(cmd, input=rec.samples.astype("<i2").tobytes(), capture_output=True, timeout=300)
        if res.returncode:
            raise RuntimeError(f"ffmpeg could not add the sound: {res.stderr.decode('utf-8', 'replace').strip()[-300:]}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def syllable_bursts(seconds: float, seed: int = 0) -> Recording:
    """A synthetic test recording for benchmarks and measurements, not a voice: syllable-like bursts (a 140 Hz tone
    with harmonics and noise, 120-260 ms, eased) separated by 80-300 ms pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    env, t = np.zeros(n), 0.1
    while t < seconds - 0.3:
        dur = rng.uniform(0.12, 0.26)
        a, b = int(t * SAMPLE_RATE), int((t + dur) * SAMPLE_RATE)
        env[a:b] = np.sin(np.linspace(0, np.pi, b - a)) ** 0.5 * rng.uniform(0.6, 1.0)
        t += dur + rng.uniform(0.08, 0.3)
    time = np.arange(n) / SAMPLE_RATE
    tone = 0.6 * np.sin(2 * np.pi * 140 * time) + 0.3 * np.sin(2 * np.pi * 280 * time) + 0.1 * rng.standard_normal(n)
    return Recording((np.clip(0.5 * env * tone, -1, 1) * 32767).astype(np.int16))


def audio_stream_seconds(path: str | os.PathLike) -> float | None:
    """The duration of a file's first audio stream in seconds (decoded), or None when it has none (tests, checks)."""
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE),
           "-f", "s16le", "pipe:1"]
    res = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT)
    if res.returncode or not res.stdout:
        return None
    return len(res.stdout) / 2 / SAMPLE_RATE
