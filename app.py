"""Deeply Good Fakes, the Gradio app: `python app.py [--host 127.0.0.1] [--port 7860] [--share]`.

Widgets wired to `dgf_core` calls, nothing else. The model dropdown lists the generators that
`dgf_core.serving.registry` finds in the weights folder ($DGF_WEIGHTS_DIR, else weights/). Each tab is a module of the
`ui` package (ui/generate.py, interpolate.py, compare.py, upscale.py, memory.py; ui/common.py holds what they share)
with its handlers and one builder; this file only assembles them, so a new tab is a module and one line in `build_demo`.

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
import logging
import os
import signal

import gradio as gr

from dgf_core.serving import registry
# the names below are reachable as app.NAME (tests call them); patch them where they live, in ui.*
from ui.common import (  # noqa: F401
    MEMORY_CONCURRENCY,
    QUEUE_SIZE,
    RENDER_CONCURRENCY,
    SCRATCH,
    model_info,
    refresh_models,
    serve_uploads_of,
    upscale_radio,
    upscaler_for,
    user_errors,
)
from ui.compare import compare_tab
from ui.generate import generate_tab
from ui.interpolate import interpolate, interpolate_tab  # noqa: F401
from ui.memory import make_memory, memory_tab, preview_motion, tuning_steps_for  # noqa: F401
from ui.upscale import upscale_tab

CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#face img, #compare-image img, #upscale-before img, #upscale-after img { width: 100%; height: 100%; object-fit: contain; }
"""


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
    serve_uploads_of(demo)  # shared uploads are deleted only when no request in this queue names them
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
