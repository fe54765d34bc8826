"""Compare: the same seeds in two models side by side, each with its model card's metrics, and a side-by-side
clip of both models walking the same keyframe seeds in sync (MP4 with a recipe naming both models)."""
import json
import tempfile
from pathlib import Path

import streamlit as st

from dgf_core.generation import compare, video
from dgf_core.images import to_pil
from dgf_core.latent import parse_seeds
from dgf_core.serving import registry
from streamlit_shared import NOTICE, pipeline, upscale_option

st.set_page_config(page_title="Compare · Deeply Good Fakes", page_icon="⚖️")
st.title("Compare")
st.caption(NOTICE)
names = registry.generators()
if not names:
    st.error(f"No generator found in the weights folder ({registry.default_weights_dir()}). Put a model folder "
             "there (see README) or set DGF_WEIGHTS_DIR.")
    st.stop()
default_a, default_b = registry.default_pair()
col_a, col_b = st.columns(2)
model_a = col_a.selectbox("Model A (left)", names, index=names.index(default_a), key="model_a")
model_b = col_b.selectbox("Model B (right)", names, index=names.index(default_b), key="model_b")
pipes = [pipeline(model_a), pipeline(model_b)]

seeds_text = st.text_input("Seeds", "1, 2, 3", key="seeds",
                           help=f"one seed or a list (ranges such as 0-3 work too), at most {compare.MAX_COMPARE_SEEDS}")
psi = st.slider("Truncation ψ", 0.0, 1.0, 1.0, 0.05, key="truncation")
up, factor = upscale_option()

try:
    seeds = parse_seeds(seeds_text, max_count=compare.MAX_COMPARE_SEEDS)
except ValueError as e:
    st.error(str(e))
else:
    picture = compare.compare_picture(pipes, seeds, psi, up, factor)  # (3, H, W) uint8: rows = seeds, A | B
    st.image(to_pil(picture.image), caption=f"{model_a} | {model_b}, seeds {', '.join(map(str, seeds))} (synthetic)",
             output_format="PNG", width="stretch")
    st.download_button("Download PNG", picture.png_bytes(), file_name=picture.name, mime="image/png",
                       key="download", on_click="ignore")
for col, name in zip(st.columns(2), (model_a, model_b)):
    col.markdown(registry.card_markdown(registry.describe(name)))

st.subheader("Side-by-side clip")
st.markdown("Both models walk the same keyframe seeds with the same path, frame for frame.")
keyframes = st.text_input("Keyframe seeds", "1, 7, 42", key="keyframes")
frames_per_transition = st.slider("Frames per transition", 1, video.MAX_FRAMES_PER_TRANSITION, 24, key="frames")
fps = st.slider("Frames per second", video.MIN_FPS, video.MAX_FPS, 24, key="fps")
loop = st.checkbox("Loop back to the first face", True, key="loop")
scales = list(video.DISPLAY_SCALES)
tallest = max(p.resolution for p in pipes)
scale = st.radio("Pixel scale", scales, index=scales.index(video.display_scale(tallest, factor=factor)), horizontal=True,
                 key="scale")

if st.button("Render side-by-side clip", type="primary", key="render"):
    st.session_state.pop("compare_clip", None)
    try:
        spec = video.ClipSpec(video.parse_keyframes(keyframes), frames_per_transition, fps, loop=loop,
                              easing="ease-in-out", truncation=psi, scale=scale)
        bar = st.progress(0.0, text="Rendering frames")
        with tempfile.TemporaryDirectory() as d:
            recipe = video.make_compare_clip(pipes, spec, [Path(d) / "clip.mp4"], lambda done, total: bar.progress(
                0.8 * done / total, text=f"Rendering frames {done}/{total}"), upscaler=up, factor=factor)
            mp4 = (Path(d) / "clip.mp4").read_bytes()
    except ValueError as e:
        st.error(str(e))
    else:
        bar.progress(1.0, text=f"{spec.n_frames} frames, {spec.duration:.2f} s")
        stem = f"{model_a}-vs-{model_b}-{'-'.join(map(str, spec.seeds[:8]))}"
        st.session_state.compare_clip = {"mp4": mp4, "recipe": recipe, "stem": stem}

clip = st.session_state.get("compare_clip")
if clip:
    st.video(clip["mp4"], format="video/mp4", loop=True, autoplay=True, muted=True)
    mp4_col, recipe_col = st.columns(2)
    mp4_col.download_button("Download MP4", clip["mp4"], f"{clip['stem']}.mp4", "video/mp4", key="dl-mp4",
                            on_click="ignore")
    recipe_col.download_button("Download recipe (JSON)", json.dumps(clip["recipe"], indent=2),
                               f"{clip['stem']}.recipe.json", "application/json", key="dl-recipe", on_click="ignore")
    with st.expander("Recipe (also in the MP4's comment tag): both models and their weights hashes"):
        st.json(clip["recipe"])
