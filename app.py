"""Deeply Good Fakes, the Gradio app: `python app.py [--host 127.0.0.1] [--port 7860] [--share]`.

Widgets wired to `dgf_core` calls, nothing else. The model dropdown lists the generators that
`dgf_core.registry` finds in the weights folder ($DGF_WEIGHTS_DIR, else weights/). Each tab is built by one
small function taking that dropdown, so a new tab (Compare, Upscale) is a function and one line in
`build_demo`.

API (gradio_client; the UI's own events):
  /generate     (seed, model, truncation) -> PNG with its recipe in text chunks
  /grid         (seed, count, model, truncation) -> gallery of `count` consecutive seeds
  /interpolate  (seeds "1,7,42", frames_per_transition, fps, model[, method, easing, loop, truncation, scale])
                -> MP4 (H.264) with its recipe in the comment tag
Bad input raises gr.Error with the reason (gradio_client raises it as AppError).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import signal

import gradio as gr
from PIL import Image

from dgf_core import registry, video
from dgf_core.checkpoint import write_json_atomic
from dgf_core.images import save_png
from dgf_core.latent import EASINGS, INTERPOLATIONS, SEED_MAX, check_seed
from dgf_core.scratch import ScratchDirs

SEED_SLIDER_MAX = 9_999  # the slider browses 0..9999; the number box takes any seed up to SEED_MAX
MAX_GRID = 64
RENDER_CONCURRENCY = int(os.environ.get("DGF_MAX_RENDERS", "2"))  # clips rendered at once; the rest wait in line
QUEUE_SIZE = int(os.environ.get("DGF_QUEUE_SIZE", "64"))  # requests waiting beyond this are turned away
MODELS = registry.PipelineCache()
SCRATCH = ScratchDirs(prefix="dgf-app-")
CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#face img { width: 100%; height: 100%; object-fit: contain; }
"""


def user_errors(fn):
    """Bad input (ValueError: seeds, limits, unknown models) -> gr.Error carrying its message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper


@user_errors
def auto_scale(model: str | None) -> int:
    """The pixel scale that shows a model's frames at about 256 px."""
    return video.display_scale(registry.describe(model).resolution or video.MAX_SIDE) if model else 1


# ---- Generate -------------------------------------------------------------------------------------------

@user_errors
def generate(seed: float, model: str, truncation: float) -> str:
    """One face as a PNG file carrying its recipe (text chunks)."""
    pipe = MODELS.get(model)
    seed = check_seed(seed)
    image = pipe.generate([seed], truncation)[0]
    out = SCRATCH.new() / f"{pipe.model.name}-seed{seed}.png"
    return str(save_png(image, out, pipe.png_text(seed=seed, truncation=truncation)))


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

        inputs = [seed, model, truncation]
        gr.on([seed.change, model.change, truncation.release, demo.load], generate, inputs, image,
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
                progress=gr.Progress()) -> tuple[str, dict]:
    """Render the walk once; write MP4, GIF and recipe.json into this request's own folder."""
    pipe = MODELS.get(model)
    spec = video.ClipSpec(video.parse_keyframes(seeds), frames_per_transition, fps, loop=loop, method=method,
                          easing=easing, truncation=truncation, scale=scale)
    video.check_frame_size(pipe.resolution, spec.scale)
    progress(0, desc="Rendering frames")
    frames = video.render_clip(pipe, spec, lambda done, total: progress((done, total), desc="Rendering frames", unit="frames"))
    recipe = video.clip_recipe(pipe, spec)
    folder = SCRATCH.new()
    stem = f"{pipe.model.name}-{'-'.join(map(str, spec.seeds[:8]))}"
    progress(0.9, desc="Encoding MP4")
    mp4 = video.write_clip(frames, folder / f"{stem}.mp4", spec.fps, recipe)
    progress(0.95, desc="Encoding GIF")
    gif = video.write_clip(frames, folder / f"{stem}.gif", spec.fps, recipe)
    write_json_atomic(recipe, folder / f"{stem}.recipe.json")
    return str(mp4), {"mp4": str(mp4), "gif": str(gif), "recipe": recipe, "recipe_path": str(folder / f"{stem}.recipe.json")}


def show_clip_files(files: dict):
    return (gr.DownloadButton(value=files["mp4"], interactive=True), gr.DownloadButton(value=files["gif"], interactive=True),
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
                scale = gr.Radio(list(video.DISPLAY_SCALES), value=auto_scale(model.value), label="Pixel scale",
                                 info="nearest-neighbour enlargement of the written frames")
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
        model.change(auto_scale, model, scale, api_visibility="private", show_progress="hidden")
        render_btn.click(interpolate, [keyframes, frames, fps, model, method, easing, loop, truncation, scale],
                         [preview, files], api_name="interpolate", concurrency_limit=RENDER_CONCURRENCY,
                         concurrency_id="render").success(
            show_clip_files, files, [mp4_dl, gif_dl, recipe_dl, gif_preview, recipe], api_visibility="private")


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
    signal.signal(signal.SIGTERM, _stop)  # `docker stop`, a Space restart, a test fixture
    demo.launch(server_name=a.host, server_port=a.port, share=a.share, css=CSS, show_error=False)


if __name__ == "__main__":
    main()
