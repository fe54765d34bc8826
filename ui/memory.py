"""The Memory tab: a photo (with consent) -> a short looping memory clip of its face (/project), through
`dgf_core.faces.memory.memory_from_photo` after the checks that belong to the app; the motion preview and the edit and
likeness controls that follow the model."""
from __future__ import annotations

import base64
import functools
import io
import shutil
from contextlib import nullcontext
from pathlib import Path

import gradio as gr
from PIL import Image

from dgf_core.checkpoint import write_json_atomic
from dgf_core.faces.edits import MAX_EDIT, EditError, load_directions
from dgf_core.faces.memory import (
    MAX_MEMORY_FRAMES,
    RENDERS,
    MemoryClipError,
    MemorySpec,
    motion_preview,
    overall_progress,
)
from dgf_core.faces.memory import memory_from_photo as core_memory_from_photo
from dgf_core.faces.projection import DEFAULT_STEPS, ProjectionOptions
from dgf_core.faces.tuning import DEFAULT_TUNE_STEPS, MAX_TUNE_STEPS, TuningOptions, default_tuning
from dgf_core.generation import video
from dgf_core.generation.audio import load_recording
from dgf_core.generation.motion import PRESETS as MOTIONS
from dgf_core.serving import priority, uploads

from . import common
from .common import (
    _FINISHED,
    MEMORY_CONCURRENCY,
    MEMORY_NICE,
    PROJECTORS,
    UPLOADS,
    _current_event,
    _flag,
    _number,
    data_uri,
    gif_button,
    upscale_radio,
    upscaler_for,
    user_errors,
)

MAX_PROJECTION_STEPS = 1000  # the app's budget per photo (the CLI allows more)
CONSENT = "I have the right to use this photo"
VOICE_CONSENT = "I have the right to use this recording"


@functools.lru_cache(maxsize=1)
def face_detector():
    """MTCNN (dgf_core.faces.mtcnn, weights in weights/mtcnn), loaded on the first photo, not at import."""
    from dgf_core.checkpoint import CheckpointError
    from dgf_core.faces.alignment import load_detector

    try:
        return load_detector("cpu")
    except CheckpointError as e:  # weights/mtcnn missing or damaged in this copy of the app
        raise gr.Error(f"Face alignment is unavailable here: {e}", print_exception=False) from None


@functools.lru_cache(maxsize=1)
def likeness_model():
    """The identity embedding of the weights folder (identity loss and likeness figures), None without one."""
    from dgf_core.faces.likeness import default_likeness

    return default_likeness()


@user_errors
def memory_from_photo(photo: dict | str | None, consent: bool, model: str, steps: float = DEFAULT_STEPS,
                      align: bool = True, age: float = 0.0, gender: float = 0.0, frames: float = 48, fps: float = 24,
                      mark: bool = True, upscale: str = "off", tune_steps: float | None = None,
                      motion: str | list[str] = "", render: str = "photo", gif: bool = False,
                      voice: dict | str | None = None, voice_consent: bool = False, mouth_follows_voice: bool = True,
                      progress=gr.Progress()) -> tuple[str, dict]:
    """Photo -> aligned face -> pivot latent -> pivotal tuning (tune_steps; 0: off, None: the model's default) -> looping memory clip (MP4,
    GIF, recipe with the latent): `dgf_core.faces.memory.memory_from_photo`, after the checks that belong to the app.

    Registered with preprocess=False: Gradio's own input checks would refuse a bad value before this runs and
    leave the upload in its cache, so every input is checked here, after the upload is in hand. `photo` is
    Gradio's file payload ({"path": ...} in its upload folder; Gradio has checked the path). `voice`: the person's
    own recording, the same kind of payload (optional; needs `voice_consent`), decoded into memory and deleted with the
    photo."""
    path = photo.get("path") if isinstance(photo, dict) else photo
    voice_path = voice.get("path") if isinstance(voice, dict) else voice
    if not path:
        raise ValueError("upload a photo with one face, seen from the front" if consent is True else
                         f"tick \"{CONSENT}\" to use a photo; nothing was read")
    private = common.SCRATCH.new()
    try:
        # both uploads are deleted from Gradio's cache after the last request that uses them
        with UPLOADS.held(path) as copy_into, (UPLOADS.held(voice_path) if voice_path else nullcontext()) as voice_into:
            try:
                if consent is not True:
                    raise ValueError(f"tick \"{CONSENT}\" to use a photo; nothing was read")
                recording = None
                if voice_path:
                    if voice_consent is not True:
                        raise ValueError(f"tick \"{VOICE_CONSENT}\" to use the recording; nothing was read")
                    recording = load_recording(voice_into(private, "voice"))  # checked before any slow work
                return make_memory(copy_into(private, "photo"), model, steps, align, age, gender, frames, fps, mark,
                                   upscale, tune_steps, motion, render, gif, progress, recording,
                                   _flag("mouth_follows_voice", mouth_follows_voice))
            finally:
                _FINISHED.append(_current_event())
    finally:
        shutil.rmtree(private, ignore_errors=True)


def make_memory(photo: Path, model: str, steps, align, age, gender, frames, fps, mark, upscale, tune_steps, motion,
                render, gif, progress, voice=None, mouth_follows_voice: bool = True) -> tuple[str, dict]:
    """The checks that belong to the app, then `dgf_core.faces.memory.memory_from_photo` on this request's own link of
    the photo (and the recording, decoded, when there is one: the clip then lasts as long)."""
    picture = uploads.open_upload(photo)
    m = PROJECTORS.get(model)
    up, factor = upscaler_for(upscale)
    amounts = {"age": _number("age", age, -MAX_EDIT, MAX_EDIT), "gender": _number("gender", gender, -MAX_EDIT, MAX_EDIT)}
    edit = {k: v for k, v in amounts.items() if v}
    spec = MemorySpec(frames=_number("frames", frames, 2, MAX_MEMORY_FRAMES, whole=True),
                      fps=_number("fps", fps, 1, video.MAX_FPS, whole=True), edit=edit, upscale=factor,
                      mark=_flag("mark", mark), motion=motion_text(motion), render=render)
    spec.validate()
    options = ProjectionOptions(steps=_number("steps", steps, 1, MAX_PROJECTION_STEPS, whole=True))
    tuning = TuningOptions(steps=None if tune_steps is None else  # None: the model's default
                           _number("tune_steps", tune_steps, 0, MAX_TUNE_STEPS, whole=True))
    align = _flag("align", align)
    gif = _flag("gif", gif)
    folder = common.SCRATCH.new()
    stem = f"memory-{m.name}"
    outs = [folder / f"{stem}.mp4"] + ([folder / f"{stem}.gif"] if gif else [])
    # the slow work at a lower CPU priority, so that fast requests get the cores first (serving.priority)
    res = priority.in_background(
        core_memory_from_photo, m, picture, spec, outs, nice=MEMORY_NICE, name="memory", projection=options, tuning=tuning,
        align=align, detector=face_detector() if align else None, likeness=likeness_model(),
        upscaler=up, render=spec.render, voice=voice, mouth_follows_voice=mouth_follows_voice,
        progress=lambda phase, frac, text: progress(overall_progress(phase, frac, tuning.steps != 0), desc=text))
    del picture
    write_json_atomic(res.recipe, folder / f"{stem}.recipe.json")
    return str(folder / f"{stem}.mp4"), {
        "mp4": str(folder / f"{stem}.mp4"), "gif": str(outs[1]) if gif else None, "recipe": res.recipe,
        "recipe_path": str(folder / f"{stem}.recipe.json"), "aligned": data_uri(res.aligned),
        "projection": data_uri(res.projection), "psnr_projection": res.psnr_projection,
        "tuned": data_uri(res.tuned) if res.tuned is not None else None, "psnr_tuned": res.psnr_tuned,
        "likeness_projection": res.likeness_projection, "likeness_tuned": res.likeness_tuned,
        "reconstruction": data_uri(res.reconstruction), "psnr": res.psnr, "notices": res.notices}


def _figure(uri: str, caption: str) -> str:
    return (f"<figure><img src='{uri}' style='width:160px;image-rendering:pixelated'/>"
            f"<figcaption>{caption}</figcaption></figure>")


def show_memory(files: dict):
    def likeness(key: str) -> str:
        return f", likeness {files[key]:.2f}" if files.get(key) is not None else ""

    figs = [_figure(files["aligned"], "aligned photo (not stored)"),
            _figure(files["projection"], f"projection, PSNR {files['psnr_projection']:.1f} dB{likeness('likeness_projection')}")]
    if files.get("tuned"):
        figs.append(_figure(files["tuned"], f"tuned to the photo, PSNR {files['psnr_tuned']:.1f} dB{likeness('likeness_tuned')}"))
    notices = "".join(f"<li>{n}</li>" for n in files["notices"])
    html = ("<div style='display:flex;gap:1em;align-items:flex-start'>" + "".join(figs) + "</div>"
            + (f"<ul>{notices}</ul>" if notices else ""))
    return html, gr.DownloadButton(value=files["mp4"], interactive=True), gif_button(files["gif"]), files["recipe"]


def motion_text(motion: str | list[str] | None) -> str:
    """The Motion choice (a list from the UI, a 'smile,blink' string from the API) -> 'NAME[,NAME...]'."""
    if motion is None:
        return ""
    if isinstance(motion, (list, tuple)) and all(isinstance(m, str) for m in motion):
        return ",".join(motion)
    if not isinstance(motion, str):
        raise ValueError(f"motion must be a name such as 'alive' or a list of names, got {motion!r}")
    return motion


def gif_uri(frames, fps: int) -> str:
    """uint8 frames (T, H, W, 3) as a looping GIF data URI: shown in the page, never written to the server's disk."""
    buf = io.BytesIO()
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@user_errors
def preview_motion(model: str | None, motion: str | list[str] | None) -> str:
    """A 2-second look at the chosen motion on the model's own typical face (no photo needed)."""
    text = motion_text(motion)
    if not model:
        return ""
    if not text:
        return "<p>No motion chosen: the memory drifts gently around the face (<code>drift</code>).</p>"
    try:
        frames = motion_preview(PROJECTORS.get(model), text, frames=24, fps=12)
    except MemoryClipError as e:  # the model lacks a direction the motion needs: say which
        return f"<p>{e}</p>"
    return (f"<figure><img src='{gif_uri(frames, 12)}' style='width:128px;image-rendering:pixelated' alt='motion preview'/>"
            f"<figcaption>{text} on the model's own face</figcaption></figure>")


@user_errors
def edit_controls(model: str | None):
    """Age and gender sliders, usable only when the model has edit directions."""
    have = []
    if model:
        try:
            have = sorted(load_directions(PROJECTORS.get(model)))
        except EditError:
            have = []
    note = (f"Edits for **{model}**: {', '.join(have)} (reached mid-clip, undone by its end)." if have else
            f"**{model}** has no edit directions (a `directions.json` in its folder, see README): the edit sliders are off.")
    return (gr.Slider(interactive="age" in have, value=0.0), gr.Slider(interactive="gender" in have, value=0.0), note)


@user_errors
def tuning_steps_for(model: str | None):
    """The likeness slider starts at the model's default tuning steps (they differ by latent space)."""
    return gr.Slider(value=default_tuning(PROJECTORS.get(model)).steps if model else DEFAULT_TUNE_STEPS)


def memory_tab(model: gr.Dropdown, demo: gr.Blocks) -> None:
    with gr.Tab("Memory from a photo"):
        gr.Markdown("Find a face from a photo in the model's latent space and make a short, looping *memory* of it. "
                    "The photo is used for this request only: it is deleted when the request ends (upload it again to "
                    "try other settings), never logged, and the clip's recipe holds the latent, not the photo. The "
                    f"clip is **synthetic**. Memories are made {MEMORY_CONCURRENCY} at a time; while yours waits, the "
                    "clip box shows its place in line.")
        with gr.Row():
            with gr.Column(scale=1):
                consent = gr.Checkbox(False, label=CONSENT, elem_id="consent")
                photo = gr.File(label="Photo (one face, from the front)", file_types=["image"], type="filepath",
                                interactive=False, elem_id="photo")
                align = gr.Checkbox(True, label="Find and align the face (untick for a photo already cropped like the "
                                                "training faces)")
                steps = gr.Slider(10, MAX_PROJECTION_STEPS, value=DEFAULT_STEPS, step=10, label="Projection steps",
                                  info="finds the closest face the model knows")
                tune_steps = gr.Slider(0, MAX_TUNE_STEPS, value=DEFAULT_TUNE_STEPS, step=10, label="Likeness (tuning steps)",
                                       info="tunes a private copy of the model to the photo: more steps, closer likeness; "
                                            "0: off. The tuned copy is never saved")
                note = gr.Markdown()
                with gr.Row():
                    age = gr.Slider(-MAX_EDIT, MAX_EDIT, value=0.0, step=0.25, label="Age", interactive=False)
                    gender = gr.Slider(-MAX_EDIT, MAX_EDIT, value=0.0, step=0.25, label="Gender", interactive=False)
                with gr.Row():
                    frames = gr.Slider(2, MAX_MEMORY_FRAMES, value=48, step=1, label="Frames in the loop")
                    fps = gr.Slider(1, video.MAX_FPS, value=24, step=1, label="Frames per second")
                with gr.Row():
                    motion = gr.Dropdown(list(MOTIONS), value=[], multiselect=True, label="Motion", elem_id="motion",
                                         info="; ".join(f"{k}: {v[1]}" for k, v in MOTIONS.items() if k != "drift")
                                              + ". Several compose; none: a gentle drift")
                    render = gr.Radio(list(RENDERS), value="photo", label="Render", elem_id="render",
                                      info="photo: the photo itself, at its resolution, moved by the model; model: the "
                                           "model's own frames")
                motion_look = gr.HTML(elem_id="motion-preview")
                mark = gr.Checkbox(True, label="Visible \"SYNTHETIC\" mark")
                upscale = upscale_radio("memory-upscale")
                gif = gr.Checkbox(False, label="Also make a GIF (a GIF has no sound)", elem_id="memory-gif")
                with gr.Accordion("A voice: the person's own recording (optional)", open=False):
                    gr.Markdown("A voicemail or a video message the person left (WAV, MP3, M4A, OGG, FLAC, WebM; up to "
                                "60 s). The clip lasts as long as the recording, the MP4 carries it as sound, and the "
                                "mouth follows it. It is used for this request only and deleted with it. This project "
                                "never makes up a voice.")
                    voice_consent = gr.Checkbox(False, label=VOICE_CONSENT, elem_id="voice-consent")
                    voice = gr.File(label="Recording", file_types=["audio", ".webm", ".m4a"], type="filepath",
                                    elem_id="voice")
                    mouth = gr.Checkbox(True, label="Mouth follows the voice", elem_id="mouth-follows")
                button = gr.Button("Make the memory", variant="primary", elem_id="memory-btn")
            with gr.Column(scale=1):
                clip = gr.Video(label="Memory (MP4, synthetic, loops)", autoplay=True, loop=True, buttons=["download"],
                                elem_id="memory-clip", height=320)
                preview = gr.HTML(elem_id="memory-preview")
                with gr.Row():
                    mp4_dl = gr.DownloadButton("Download MP4", interactive=False)
                    gif_dl = gr.DownloadButton("Download GIF", interactive=False)
                recipe = gr.JSON(label="Recipe (in the clip): model, weights hash, latent, parameters", max_height=240)
        files = gr.State()
        consent.change(lambda c: gr.File(interactive=bool(c)), consent, photo, api_visibility="private",
                       show_progress="hidden")
        gr.on([model.change, demo.load], edit_controls, model, [age, gender, note], api_visibility="private",
              show_progress="hidden")
        gr.on([model.change, demo.load], tuning_steps_for, model, tune_steps, api_visibility="private",
              show_progress="hidden")
        gr.on([motion.change, model.change], preview_motion, [model, motion], motion_look, api_visibility="private",
              show_progress="hidden")
        # memories wait in a line of their own (MEMORY_CONCURRENCY at once), so generate, upscale and clips never
        # wait behind one; while waiting, the clip box shows the request's place in that line
        made = button.click(memory_from_photo, [photo, consent, model, steps, align, age, gender, frames, fps, mark,
                                                upscale, tune_steps, motion, render, gif, voice, voice_consent,
                                                mouth], [clip, files],
                            api_name="project", preprocess=False, concurrency_limit=MEMORY_CONCURRENCY,
                            concurrency_id="memory", show_progress="full")
        made.success(show_memory, files, [preview, mp4_dl, gif_dl, recipe], api_visibility="private")
        made.then(lambda: None, None, photo, api_visibility="private", show_progress="hidden")  # it was deleted
