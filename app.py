"""Deeply Good Fakes, the Gradio app: `python app.py [--host 127.0.0.1] [--port 7860] [--share]`.

Widgets wired to `dgf_core` calls, nothing else. The model dropdown lists the generators that
`dgf_core.serving.registry` finds in the weights folder ($DGF_WEIGHTS_DIR, else weights/). Each tab is built by one
small function (Generate, Interpolate, Compare, Upscale, Memory from a photo), so a new tab is a function and
one line in `build_demo`.

API (gradio_client; the UI's own events):
  /generate     (seed, model, truncation[, upscale]) -> PNG with its recipe in text chunks
  /grid         (seed, count, model, truncation) -> gallery of `count` consecutive seeds
  /interpolate  (seeds "1,7,42", frames_per_transition, fps, model[, method, easing, loop, truncation, scale, upscale,
                gif]) -> MP4 (H.264) with its recipe in the comment tag (gif=True also writes a GIF for the UI's preview and
                download; the API returns the MP4 only)
  /compare      (seeds "1,2", model_a, model_b, truncation[, upscale]) -> PNG: one row per seed, model A | model B
  /compare_clip (seeds "1,7,42", frames_per_transition, fps, model_a, model_b[, loop, truncation, scale, upscale])
                -> MP4 of both models walking the same keyframes side by side; recipe names both models
  /upscale      (image file, factor "x2" | "x4") -> PNG with the upscaler and its weights hash in text chunks
  /project      (photo file, consent, model[, steps, align, age, gender, frames, fps, mark, upscale, tune_steps, motion,
                render, gif, voice file, voice_consent, mouth_follows_voice]) ->
                looping MP4 memory of the face in the photo (motion: "alive", "smile,blink", ...: docs/motion.md;
                render "photo", the default: the photo itself at its resolution up to 1024 px, moved by the model;
                "model": the model's frames; gif=True also writes a GIF): projection, then pivotal tuning of a private copy of the
                model (tune_steps; None: the model's default, 150 for the DCGAN's z, 250 for W+; 0: off; never
                saved); its recipe holds the pivot latent, never the photo
                (a tuned clip cannot be regenerated without the photo, and its recipe says so). Without
                consent=True nothing is read. Each request works on its own hard link of the upload in a private
                folder, deleted when the request ends; the upload itself is deleted from Gradio's cache when the last
                request that names it (running or queued: the same photo sent twice shares one path) ends. Never
                logged. Memories run in a line of their own (DGF_MAX_MEMORIES at once, default 2), apart from the
                renders (DGF_MAX_RENDERS: interpolate, compare_clip, upscale), so fast requests never wait behind one.
`upscale` is "off" (default), "x2" or "x4", done by the weights folder's upscaler (registry.default_upscaler);
with no upscaler there, the option is disabled in the UI and the API refuses x2/x4 with a message.
Bad input raises gr.Error with the reason (gradio_client raises it as AppError); any other failure gives a one-line
message with an incident id, and the log (stderr) keeps its traceback under that id. Scratch files: see
dgf_core.serving.scratch (DGF_SCRATCH_MB caps them).
"""
from __future__ import annotations

import argparse
import base64
import collections
import functools
import io
import json
import logging
import os
import secrets
import shutil
import signal
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
from dgf_core.generation import compare, upscale, video
from dgf_core.generation.audio import load_recording
from dgf_core.generation.motion import PRESETS as MOTIONS
from dgf_core.generation.upscale import check_factor
from dgf_core.images import save_png, to_pil
from dgf_core.latent import (
    EASINGS,
    INTERPOLATIONS,
    SEED_MAX,
    check_seed,
    parse_seeds,
)
from dgf_core.serving import registry, uploads
from dgf_core.serving.scratch import ScratchDirs
from dgf_core.serving.uploads import SharedUploads, open_upload

SEED_SLIDER_MAX = 9_999  # the slider browses 0..9999; the number box takes any seed up to SEED_MAX
MAX_GRID = 64
RENDER_CONCURRENCY = int(os.environ.get("DGF_MAX_RENDERS", "2"))  # clips rendered at once; the rest wait in line
MEMORY_CONCURRENCY = int(os.environ.get("DGF_MAX_MEMORIES", "2"))  # memories made at once, in slots of their own
QUEUE_SIZE = int(os.environ.get("DGF_QUEUE_SIZE", "64"))  # requests waiting beyond this are turned away
MODELS = registry.PipelineCache()
UPSCALERS = registry.UpscalerCache()
PROJECTORS = registry.ModelCache(max_models=2, kind="projection")  # generators with their discriminators
MAX_PROJECTION_STEPS = 1000  # the app's budget per photo (the CLI allows more)
CONSENT = "I have the right to use this photo"
VOICE_CONSENT = "I have the right to use this recording"
UPSCALE_CHOICES = ["off", "x2", "x4"]
SCRATCH = ScratchDirs(prefix="dgf-app-", max_bytes=int(float(os.environ.get("DGF_SCRATCH_MB", "256")) * 2**20))
log = logging.getLogger("dgf.app")
CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#face img, #compare-image img, #upscale-before img, #upscale-after img { width: 100%; height: 100%; object-fit: contain; }
"""


def user_errors(fn):
    """Bad input (ValueError: seeds, limits, unknown models) -> gr.Error carrying its message. Anything else is a
    fault of the server: the log keeps its traceback under an incident id, the user gets one line naming that id
    (never Gradio's generic "error", never a path or a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:
            incident = secrets.token_hex(4)
            log.exception("incident %s in %s", incident, fn.__name__)
            raise gr.Error(f"the server failed on this request ({type(e).__name__}, incident {incident}); please try "
                           "again, and report the incident id if it keeps happening", print_exception=False) from None

    return wrapper


@user_errors
def auto_scale(model: str | None, upscale: str = "off") -> int:
    """The pixel scale that shows a model's frames (upscaled or not) at about 256 px."""
    if not model:
        return 1
    return video.display_scale(registry.describe(model).resolution or video.MAX_SIDE, factor=check_factor(upscale))


def upscaler_for(upscale: str):
    """'off' | 'x2' | 'x4' -> (the weights folder's upscaler or None, factor); ValueError if there is none to use."""
    factor = check_factor(upscale)
    if factor == 1:
        return None, 1
    name = registry.default_upscaler()
    if name is None:
        raise ValueError(f"upscale {upscale} needs an upscaler model, and there is none in the weights folder "
                         f"({registry.default_weights_dir()}); use upscale off")
    return UPSCALERS.get(name), factor


def upscale_radio(elem_id: str) -> gr.Radio:
    """The upscale option: off / x2 / x4 with the weights folder's upscaler; disabled, with a note, without one."""
    name = registry.default_upscaler()
    info = (f"a GAN upscaler ({name}) enlarges each face" if name else
            "disabled: no upscaler in the weights folder (put an upscaler model folder there, see README)")
    return gr.Radio(UPSCALE_CHOICES, value="off", label="Upscale", info=info, interactive=name is not None,
                    elem_id=elem_id)


# ---- Generate -------------------------------------------------------------------------------------------

@user_errors
def generate(seed: float, model: str, truncation: float, upscale: str = "off") -> str:
    """One face (upscaled x2/x4 if asked) as a PNG file carrying its recipe (text chunks)."""
    up, factor = upscaler_for(upscale)
    return str(compare.face_picture(MODELS.get(model), check_seed(seed), truncation, up, factor).save(SCRATCH.new()))


def png_download(path: str):
    """The Download PNG button for the shown face, and its recipe as read back from the PNG's text chunks."""
    with Image.open(path) as im:
        recipe = json.loads(im.text["dgf_recipe"])
    return gr.DownloadButton(value=path, interactive=True), recipe


@user_errors
def grid(seed: float, count: float, model: str, truncation: float) -> tuple[list[tuple[str, str]], list[int]]:
    """`count` consecutive seeds from `seed`, one PNG each (with its recipe)."""
    pipe = MODELS.get(model)
    seed = check_seed(seed)
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count) or not 1 <= count <= MAX_GRID:
        raise ValueError(f"grid size must be a whole number in 1..{MAX_GRID}, got {count!r}")
    count = int(count)
    seeds = [check_seed(s) for s in range(seed, seed + count)]
    folder = SCRATCH.new()
    items = [(str(save_png(img, folder / f"seed{s}.png", pipe.png_text(seed=s, truncation=truncation))), f"seed {s}")
             for s, img in zip(seeds, pipe.generate(seeds, truncation))]
    return items, seeds


@user_errors
def step_seed(seed: float, delta: int) -> int:
    return min(max(check_seed(seed) + delta, 0), SEED_MAX)


def random_seed() -> int:
    return secrets.randbelow(SEED_SLIDER_MAX + 1)


def generate_tab(model: gr.Dropdown, demo: gr.Blocks) -> None:
    with gr.Tab("Generate"):
        with gr.Row():
            with gr.Column(scale=1):
                seed_slider = gr.Slider(0, SEED_SLIDER_MAX, value=42, step=1, label="Seed")
                with gr.Row():
                    seed = gr.Number(42, label=f"Seed (0..{SEED_MAX})", elem_id="seed", scale=2)
                    prev_btn = gr.Button("◀ Previous", elem_id="prev", scale=1)
                    next_btn = gr.Button("Next ▶", elem_id="next", scale=1)
                    random_btn = gr.Button("Random", elem_id="random", scale=1)
                truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation ψ",
                                       info="lower: more typical faces, less variety; 1 = none")
                upscale = upscale_radio("generate-upscale")
                recipe = gr.JSON(label="Recipe (also in the PNG's text chunks)", max_height=240)
            with gr.Column(scale=1):
                image = gr.Image(label="Face (PNG, synthetic)", type="filepath", format="png", height=320,
                                 buttons=["download", "fullscreen"], elem_id="face", elem_classes="pixelated")
                png_btn = gr.DownloadButton("Download PNG", interactive=False, elem_id="dl-png")
        with gr.Row():
            count = gr.Slider(1, MAX_GRID, value=16, step=1, label="Grid: consecutive seeds from the current one", scale=3)
            grid_btn = gr.Button("Show grid", elem_id="grid-btn", scale=1)
        gallery = gr.Gallery(label="Click a face to open its seed", columns=8, format="png",
                             elem_id="grid", elem_classes="pixelated")
        grid_seeds = gr.State([])

        inputs = [seed, model, truncation, upscale]
        gr.on([seed.change, model.change, truncation.release, upscale.change, demo.load], generate, inputs, image,
              api_name="generate").success(png_download, image, [png_btn, recipe], api_visibility="private",
                                          show_progress="hidden")
        gr.on([grid_btn.click, count.release, demo.load], grid, [seed, count, model, truncation], [gallery, grid_seeds],
              api_name="grid")
        seed.change(lambda s: min(max(int(s or 0), 0), SEED_SLIDER_MAX), seed, seed_slider, api_visibility="private",
                    show_progress="hidden")
        seed_slider.release(lambda s: s, seed_slider, seed, api_visibility="private", show_progress="hidden")
        prev_btn.click(lambda s: step_seed(s, -1), seed, seed, api_visibility="private", show_progress="hidden")
        next_btn.click(lambda s: step_seed(s, +1), seed, seed, api_visibility="private", show_progress="hidden")
        random_btn.click(random_seed, None, seed, api_visibility="private", show_progress="hidden")
        gallery.select(_pick_seed, grid_seeds, seed, api_visibility="private", show_progress="hidden")


def _pick_seed(seeds: list[int], evt: gr.SelectData) -> int:
    return seeds[evt.index]


# ---- Interpolate (video memory) -------------------------------------------------------------------------

@user_errors
def interpolate(seeds: str, frames_per_transition: float, fps: float, model: str, method: str = "slerp",
                easing: str = "ease-in-out", loop: bool = True, truncation: float = 1.0, scale: float = 4,
                upscale: str = "off", gif: bool = False, progress=gr.Progress()) -> tuple[str, dict]:
    """Render the walk once; write the MP4, the GIF when asked (`gif`; the API returns the MP4 only) and recipe.json
    into this request's own folder."""
    pipe = MODELS.get(model)
    spec = video.ClipSpec(video.parse_keyframes(seeds), frames_per_transition, fps, loop=loop, method=method,
                          easing=easing, truncation=truncation, scale=scale)
    up, factor = upscaler_for(upscale)
    stem = f"{pipe.model.name}-{'-'.join(map(str, spec.seeds[:8]))}"
    return clip_files(lambda outs, prog: video.make_clip(pipe, spec, outs, prog, upscaler=up, factor=factor), stem,
                      progress, gif=_flag("gif", gif))


def clip_files(make, stem: str, progress, gif: bool = False) -> tuple[str, dict]:
    """Run a core clip call (`make(outs, progress)` -> recipe) into a fresh request folder: MP4, recipe.json and, when
    asked, a GIF (files["gif"] is None otherwise)."""
    folder = SCRATCH.new()
    mp4, gif_path = folder / f"{stem}.mp4", folder / f"{stem}.gif" if gif else None
    progress(0, desc="Rendering frames")
    recipe = make([mp4, gif_path] if gif else [mp4],
                  lambda done, total: progress((done, total), desc="Rendering frames", unit="frames"))
    write_json_atomic(recipe, folder / f"{stem}.recipe.json")
    return str(mp4), {"mp4": str(mp4), "gif": str(gif_path) if gif else None, "recipe": recipe,
                      "recipe_path": str(folder / f"{stem}.recipe.json")}


def gif_button(path: str | None) -> gr.DownloadButton:
    """Download GIF: usable when the request made one."""
    return gr.DownloadButton(value=path, interactive=path is not None)


def show_clip_files(files: dict):
    return (gr.DownloadButton(value=files["mp4"], interactive=True), gif_button(files["gif"]),
            gr.DownloadButton(value=files["recipe_path"], interactive=True), files["gif"], files["recipe"])


def interpolate_tab(model: gr.Dropdown, demo: gr.Blocks) -> None:
    with gr.Tab("Interpolate"):
        gr.Markdown(f"A *video memory*: a walk through latent space from face to face. Limits: {video.MAX_KEYFRAMES} "
                    f"keyframes, {video.MAX_FRAMES_PER_TRANSITION} frames per transition, {video.MAX_FRAMES} frames, "
                    f"{video.MAX_FPS} fps, {video.MAX_SIDE} px.")
        with gr.Row():
            with gr.Column(scale=1):
                keyframes = gr.Textbox("1, 7, 42", label="Keyframe seeds", elem_id="keyframes",
                                       info="two or more, comma-separated; ranges such as 0-3 work too")
                frames = gr.Slider(1, video.MAX_FRAMES_PER_TRANSITION, value=24, step=1, label="Frames per transition",
                                   elem_id="frames")
                fps = gr.Slider(video.MIN_FPS, video.MAX_FPS, value=24, step=1, label="Frames per second", elem_id="fps")
                with gr.Row():
                    method = gr.Radio(sorted(INTERPOLATIONS, reverse=True), value="slerp", label="Interpolation")
                    easing = gr.Dropdown(sorted(EASINGS), value="ease-in-out", label="Easing")
                loop = gr.Checkbox(True, label="Loop back to the first face")
                truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation ψ")
                upscale = upscale_radio("interpolate-upscale")
                scale = gr.Radio(list(video.DISPLAY_SCALES), value=auto_scale(model.value), label="Pixel scale",
                                 info="nearest-neighbour enlargement of the written frames")
                gif = gr.Checkbox(False, label="Also make a GIF", elem_id="make-gif")
                render_btn = gr.Button("Render clip", variant="primary", elem_id="render")
            with gr.Column(scale=1):
                preview = gr.Video(label="Preview (MP4, synthetic)", autoplay=True, loop=True, buttons=["download"],
                                   elem_id="clip", elem_classes="pixelated", height=320)
                gif_preview = gr.Image(label="GIF", type="filepath", format="gif", height=160, elem_id="gif",
                                       elem_classes="pixelated")
                with gr.Row():
                    mp4_dl = gr.DownloadButton("Download MP4", interactive=False, elem_id="dl-mp4")
                    gif_dl = gr.DownloadButton("Download GIF", interactive=False, elem_id="dl-gif")
                    recipe_dl = gr.DownloadButton("Download recipe (JSON)", interactive=False, elem_id="dl-recipe")
                recipe = gr.JSON(label="Recipe: `python -m dgf_core video --recipe FILE.json --out clip.mp4` reproduces the clip",
                                 max_height=320)
        files = gr.State()
        gr.on([model.change, upscale.change], auto_scale, [model, upscale], scale, api_visibility="private",
              show_progress="hidden")
        render_btn.click(interpolate, [keyframes, frames, fps, model, method, easing, loop, truncation, scale, upscale,
                                       gif], [preview, files], api_name="interpolate", concurrency_limit=RENDER_CONCURRENCY,
                         concurrency_id="render").success(
            show_clip_files, files, [mp4_dl, gif_dl, recipe_dl, gif_preview, recipe], api_visibility="private")


# ---- Compare (the same seeds in two models) --------------------------------------------------------------

def parse_compare_seeds(seeds: str) -> list[int]:
    return parse_seeds(str(seeds), max_count=compare.MAX_COMPARE_SEEDS)


@user_errors
def compare_images(seeds: str, model_a: str, model_b: str, truncation: float = 1.0, upscale: str = "off") -> str:
    """One PNG: a row per seed, model A on the left, model B on the right (scaled to the same height)."""
    up, factor = upscaler_for(upscale)
    picture = compare.compare_picture([MODELS.get(model_a), MODELS.get(model_b)], parse_compare_seeds(seeds),
                                      truncation, up, factor)
    return str(picture.save(SCRATCH.new()))


@user_errors
def model_cards(model_a: str, model_b: str) -> tuple[str, str]:
    return registry.card_markdown(registry.describe(model_a)), registry.card_markdown(registry.describe(model_b))


@user_errors
def compare_clip(seeds: str, frames_per_transition: float, fps: float, model_a: str, model_b: str, loop: bool = True,
                 truncation: float = 1.0, scale: float = 2, upscale: str = "off", progress=gr.Progress()) -> tuple[str, dict]:
    """Both models walk the same keyframe seeds in sync, side by side; MP4, GIF and recipe.json."""
    pipes = [MODELS.get(model_a), MODELS.get(model_b)]
    spec = video.ClipSpec(video.parse_keyframes(seeds), frames_per_transition, fps, loop=loop, easing="ease-in-out",
                          truncation=truncation, scale=scale)
    up, factor = upscaler_for(upscale)
    return clip_files(lambda outs, prog: video.make_compare_clip(pipes, spec, outs, prog, upscaler=up, factor=factor),
                      f"{model_a}-vs-{model_b}-{'-'.join(map(str, spec.seeds[:8]))}", progress)


def show_compare_files(files: dict):
    return gr.DownloadButton(value=files["mp4"], interactive=True), files["recipe"]


def compare_tab(demo: gr.Blocks) -> None:
    a, b = registry.default_pair()
    names = registry.generators()
    with gr.Tab("Compare"):
        gr.Markdown("The **same seeds** in two models, side by side, with what each model card says about it.")
        with gr.Row():
            model_a = gr.Dropdown(names, value=a, label="Model A (left)", allow_custom_value=True, elem_id="model-a")
            model_b = gr.Dropdown(names, value=b, label="Model B (right)", allow_custom_value=True, elem_id="model-b")
        with gr.Row():
            with gr.Column(scale=1):
                seeds = gr.Textbox("1, 2, 3", label="Seeds", elem_id="compare-seeds",
                                   info=f"one seed or a list (ranges such as 0-3 work too), at most {compare.MAX_COMPARE_SEEDS}")
                truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation ψ")
                upscale = upscale_radio("compare-upscale")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
            with gr.Column(scale=2):
                image = gr.Image(label="A | B, one row per seed (PNG, synthetic)", type="filepath", format="png",
                                 height=420, buttons=["download", "fullscreen"], elem_id="compare-image",
                                 elem_classes="pixelated")
                with gr.Row():
                    card_a = gr.Markdown(elem_id="card-a")
                    card_b = gr.Markdown(elem_id="card-b")
        gr.Markdown("### Side-by-side clip: both models walk the same keyframe seeds in sync")
        with gr.Row():
            with gr.Column(scale=1):
                keyframes = gr.Textbox("1, 7, 42", label="Keyframe seeds", elem_id="compare-keyframes")
                frames = gr.Slider(1, video.MAX_FRAMES_PER_TRANSITION, value=24, step=1, label="Frames per transition")
                fps = gr.Slider(video.MIN_FPS, video.MAX_FPS, value=24, step=1, label="Frames per second")
                loop = gr.Checkbox(True, label="Loop back to the first face")
                scale = gr.Radio(list(video.DISPLAY_SCALES), value=2, label="Pixel scale")
                clip_btn = gr.Button("Render side-by-side clip", elem_id="compare-render")
            with gr.Column(scale=2):
                clip = gr.Video(label="A | B (MP4, synthetic)", autoplay=True, loop=True, buttons=["download"],
                                elem_id="compare-clip", elem_classes="pixelated", height=320)
                mp4_dl = gr.DownloadButton("Download MP4", interactive=False, elem_id="compare-dl-mp4")
                recipe = gr.JSON(label="Recipe (in the MP4's comment tag): both models and their weights hashes",
                                 max_height=240)
        files = gr.State()
        gr.on([compare_btn.click, demo.load], compare_images, [seeds, model_a, model_b, truncation, upscale], image,
              api_name="compare")
        gr.on([model_a.change, model_b.change, demo.load], model_cards, [model_a, model_b], [card_a, card_b],
              api_visibility="private", show_progress="hidden")
        clip_btn.click(compare_clip, [keyframes, frames, fps, model_a, model_b, loop, truncation, scale, upscale],
                       [clip, files], api_name="compare_clip", concurrency_limit=RENDER_CONCURRENCY,
                       concurrency_id="render").success(show_compare_files, files, [mp4_dl, recipe],
                                                        api_visibility="private")
        demo.load(refresh_models, model_a, model_a, api_visibility="private", show_progress="hidden")
        demo.load(refresh_models, model_b, model_b, api_visibility="private", show_progress="hidden")


# ---- Upscale (an uploaded image) -------------------------------------------------------------------------

@user_errors
def upscale_image(image: str | None, factor: str = "x4") -> str:
    """An uploaded image (checked by dgf_core.serving.uploads) -> PNG `factor` times larger, naming the upscaler and its
    weights hash in its text chunks (never the uploaded file's name)."""
    if not image:
        raise ValueError("upload an image to upscale")
    up, f = upscaler_for(factor)
    if up is None:
        raise ValueError("choose x2 or x4")
    return str(compare.upscaled_picture(up, open_upload(image), f).save(SCRATCH.new()))


@user_errors
def upscale_preview(image: str | None) -> str | None:
    """The upload as it will be read (first frame, RGB, EXIF-rotated), or nothing: the 'before' image."""
    if not image:
        return None
    return str(save_png(open_upload(image), SCRATCH.new() / "before.png"))


def upscale_recipe_of(path: str) -> tuple[gr.DownloadButton, dict]:
    with Image.open(path) as im:
        recipe = json.loads(im.text["dgf_upscale"])
    return gr.DownloadButton(value=path, interactive=True), recipe


def upscale_tab() -> None:
    name = registry.default_upscaler()
    with gr.Tab("Upscale"):
        gr.Markdown(f"Enlarge a face 2x or 4x with the upscaler GAN. Images: PNG, JPEG, WebP, BMP or GIF (first frame), "
                    f"at most {uploads.MAX_UPLOAD_BYTES // 2**20} MB and {upscale.MAX_INPUT_SIDE} px a side. "
                    + (f"Upscaler: **{name}**." if name else
                       f"**No upscaler in the weights folder** ({registry.default_weights_dir()}): put an upscaler model "
                       "folder there (see README) to use this tab."))
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.File(label="Image to upscale", file_types=["image"], type="filepath", elem_id="upscale-input")
                factor = gr.Radio(UPSCALE_CHOICES[1:], value="x4", label="Factor", interactive=name is not None)
                button = gr.Button("Upscale", variant="primary", interactive=name is not None, elem_id="upscale-btn")
                recipe = gr.JSON(label="Recipe (in the PNG's text chunks)", max_height=200)
            with gr.Column(scale=2):
                with gr.Row():
                    before = gr.Image(label="Before", type="filepath", format="png", height=320, elem_id="upscale-before",
                                      elem_classes="pixelated")
                    after = gr.Image(label="After", type="filepath", format="png", height=320, elem_id="upscale-after",
                                     buttons=["download", "fullscreen"])
                png_btn = gr.DownloadButton("Download PNG", interactive=False, elem_id="upscale-dl")
        source.change(upscale_preview, source, before, api_visibility="private", show_progress="hidden")
        button.click(upscale_image, [source, factor], after, api_name="upscale", concurrency_limit=RENDER_CONCURRENCY,
                     concurrency_id="render").success(upscale_recipe_of, after, [png_btn, recipe],
                                                      api_visibility="private")


# ---- Memory from a photo ---------------------------------------------------------------------------------

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


_FINISHED = collections.deque(maxlen=1024)  # Gradio events whose handler is done (they may still look active)


def _current_event() -> str | None:
    from gradio.context import LocalContext

    return LocalContext.event_id.get(None)


def wanted_elsewhere(path: str) -> bool | None:
    """Whether a request other than this one, waiting in Gradio's queue or running, names the upload `path`: Gradio
    files identical uploads under one path, so two people sending the same photo share it. None when the queue cannot
    be read (then the upload is left to Gradio's cache expiry, never deleted under another request)."""
    me, finished = _current_event(), set(_FINISHED)
    try:
        queue = demo._queue
        events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        events += [e for job in queue.active_jobs if job for e in job]
        events += list(getattr(queue, "event_ids_to_events", {}).values())  # joined, perhaps not yet in a queue
        for e in events:
            if e._id == me or e._id in finished or e.data is None:
                continue
            for v in e.data.data:
                named = v.get("path") if isinstance(v, dict) else v
                if isinstance(named, str) and os.path.abspath(named) == path:
                    return True
        return False
    except (AttributeError, TypeError):  # another Gradio version: cannot tell
        return None


# A client uploads a file, then joins the queue: the deletion waits DGF_UPLOAD_GRACE_S (10 s) after the last request
# that used the file, so that a second sender of the same photo (Gradio files it under the same path) between those two
# steps still finds it.
UPLOADS = SharedUploads(wanted_elsewhere, grace_s=float(os.environ.get("DGF_UPLOAD_GRACE_S", "10")))


def data_uri(image_u8) -> str:
    """A (3, H, W) uint8 image as a PNG data URI: shown in the page, never written to the server's disk."""
    buf = io.BytesIO()
    to_pil(image_u8).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _number(name: str, value: object, lo: float, hi: float, whole: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi
            or (whole and value != int(value))):
        raise ValueError(f"{name} must be a {'whole ' if whole else ''}number in {lo:g}..{hi:g}, got {value!r}")
    return int(value) if whole else float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


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
    private = SCRATCH.new()
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
    folder = SCRATCH.new()
    stem = f"memory-{m.name}"
    outs = [folder / f"{stem}.mp4"] + ([folder / f"{stem}.gif"] if gif else [])
    res = core_memory_from_photo(
        m, picture, spec, outs, projection=options, tuning=tuning,
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


# ---- the app ----------------------------------------------------------------------------------------------

def model_info(name: str | None) -> str:
    if not name:
        return (f"**No generator found** in the weights folder ({registry.default_weights_dir()}). Put a model folder "
                "there (see README) or set `DGF_WEIGHTS_DIR`, then reload.")
    e = registry.describe(name)
    return f"**{e.name}**: {e.family}, {e.resolution}×{e.resolution}. {e.description}"


def refresh_models(current: str | None):
    names = registry.generators()
    value = current if current in names else registry.default_generator()
    return gr.Dropdown(choices=names, value=value)


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Deeply Good Fakes", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Deeply Good Fakes\nEvery face here is **synthetic**: made by a neural network from a seed, "
                    "not a photo of a real person. Downloads carry that notice and their recipe.")
        with gr.Row():
            model = gr.Dropdown(registry.generators(), value=registry.default_generator(), label="Model",
                                allow_custom_value=True, elem_id="model", scale=1)
            info = gr.Markdown(model_info(registry.default_generator()))
        generate_tab(model, demo)
        interpolate_tab(model, demo)
        compare_tab(demo)
        upscale_tab()
        memory_tab(model, demo)
        model.change(user_errors(model_info), model, info, api_visibility="private", show_progress="hidden")
        demo.load(refresh_models, model, model, api_visibility="private", show_progress="hidden")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=4)
    return demo


demo = build_demo()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Deeply Good Fakes (Gradio app)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all, as in Docker)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", default=os.environ.get("GRADIO_SHARE", "").lower() in ("1", "true"),
                   help="also open a public gradio.live link (off by default)")
    return p.parse_args(argv)


def _stop(signum, frame):
    raise KeyboardInterrupt  # launch() then closes the server, and atexit removes the scratch folders


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)  # `docker stop`, a Space restart, a test fixture
    demo.launch(server_name=a.host, server_port=a.port, share=a.share, css=CSS, show_error=False)


if __name__ == "__main__":
    main()
