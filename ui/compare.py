"""The Compare tab: the same seeds in two models, as a picture (/compare) and side by side as a clip (/compare_clip),
with what each model card says."""
from __future__ import annotations

import gradio as gr

from dgf_core.generation import compare, video
from dgf_core.latent import parse_seeds
from dgf_core.serving import registry

from . import common
from .common import MODELS, RENDER_CONCURRENCY, clip_files, refresh_models, upscale_radio, upscaler_for, user_errors


def parse_compare_seeds(seeds: str) -> list[int]:
    return parse_seeds(str(seeds), max_count=compare.MAX_COMPARE_SEEDS)


@user_errors
def compare_images(seeds: str, model_a: str, model_b: str, truncation: float = 1.0, upscale: str = "off") -> str:
    """One PNG: a row per seed, model A on the left, model B on the right (scaled to the same height)."""
    up, factor = upscaler_for(upscale)
    picture = compare.compare_picture([MODELS.get(model_a), MODELS.get(model_b)], parse_compare_seeds(seeds),
                                      truncation, up, factor)
    return str(picture.save(common.SCRATCH.new()))


@user_errors
def model_cards(model_a: str, model_b: str) -> tuple[str, str, str]:
    """Both model cards, and a line on the sizes: each model at its own resolution, shown at the same height."""
    return (registry.card_markdown(registry.describe(model_a)), registry.card_markdown(registry.describe(model_b)),
            resolution_note(MODELS.get(model_a).resolution, MODELS.get(model_b).resolution))


def resolution_note(res_a: int, res_b: int) -> str:
    if res_a == res_b:
        return f"Both models make {res_a}-px faces, shown pixel for pixel at the same size."
    return (f"Each model at its own resolution (A: {res_a} px, B: {res_b} px), scaled to the same display height: "
            f"the {min(res_a, res_b)}-px faces are enlarged {max(res_a, res_b) // min(res_a, res_b)}x, pixel for "
            "pixel (an upscale enlarges both by the same factor).")


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
                sizes = gr.Markdown(elem_id="compare-sizes")
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
        gr.on([model_a.change, model_b.change, demo.load], model_cards, [model_a, model_b], [card_a, card_b, sizes],
              api_visibility="private", show_progress="hidden")
        clip_btn.click(compare_clip, [keyframes, frames, fps, model_a, model_b, loop, truncation, scale, upscale],
                       [clip, files], api_name="compare_clip", concurrency_limit=RENDER_CONCURRENCY,
                       concurrency_id="render").success(show_compare_files, files, [mp4_dl, recipe],
                                                        api_visibility="private")
        demo.load(refresh_models, model_a, model_a, api_visibility="private", show_progress="hidden")
        demo.load(refresh_models, model_b, model_b, api_visibility="private", show_progress="hidden")
