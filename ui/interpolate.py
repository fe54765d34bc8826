"""The Interpolate tab: a walk through latent space from face to face, as a clip (/interpolate)."""
from __future__ import annotations

import gradio as gr

from dgf_core.generation import video
from dgf_core.generation.upscale import check_factor
from dgf_core.latent import EASINGS, INTERPOLATIONS
from dgf_core.serving import registry

from .common import (
    MODELS,
    RENDER_CONCURRENCY,
    _flag,
    clip_files,
    gif_button,
    upscale_radio,
    upscaler_for,
    user_errors,
)


@user_errors
def auto_scale(model: str | None, upscale: str = "off") -> int:
    """The pixel scale that shows a model's frames (upscaled or not) at about 256 px."""
    if not model:
        return 1
    return video.display_scale(registry.describe(model).resolution or video.MAX_SIDE, factor=check_factor(upscale))


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
