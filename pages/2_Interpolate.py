"""Interpolate: a video memory walking between keyframe seeds, as MP4 and GIF, with its recipe."""
import json
import tempfile
from pathlib import Path

import streamlit as st

from dgf_core.generation import video
from dgf_core.latent import EASINGS, INTERPOLATIONS
from streamlit_shared import NOTICE, model_picker, pipeline, upscale_option

st.set_page_config(page_title="Interpolate · Deeply Good Fakes", page_icon="🎞️")
st.title("Interpolate")
st.caption(NOTICE)
st.markdown(f"A *video memory*: a walk through latent space from face to face. Limits: {video.MAX_KEYFRAMES} keyframes, "
            f"{video.MAX_FRAMES_PER_TRANSITION} frames per transition, {video.MAX_FRAMES} frames, {video.MAX_FPS} fps, "
            f"{video.MAX_SIDE} px.")
model = model_picker()
pipe = pipeline(model)

keyframes = st.text_input("Keyframe seeds", "1, 7, 42", key="keyframes",
                          help="two or more, comma-separated; ranges such as 0-3 work too")
frames_per_transition = st.slider("Frames per transition", 1, video.MAX_FRAMES_PER_TRANSITION, 24, key="frames")
fps = st.slider("Frames per second", video.MIN_FPS, video.MAX_FPS, 24, key="fps")
method_col, easing_col = st.columns(2)
methods = sorted(INTERPOLATIONS, reverse=True)
method = method_col.radio("Interpolation", methods, horizontal=True, key="method")
easing = easing_col.selectbox("Easing", sorted(EASINGS), index=sorted(EASINGS).index("ease-in-out"), key="easing")
loop = st.checkbox("Loop back to the first face", True, key="loop")
psi = st.slider("Truncation ψ", 0.0, 1.0, 1.0, 0.05, key="truncation")
up, factor = upscale_option()
scales = list(video.DISPLAY_SCALES)
scale = st.radio("Pixel scale", scales, index=scales.index(video.display_scale(pipe.resolution, factor=factor)),
                 horizontal=True, key="scale", help="nearest-neighbour enlargement of the written frames")

if st.button("Render clip", type="primary", key="render"):
    st.session_state.pop("clip", None)
    try:
        spec = video.ClipSpec(video.parse_keyframes(keyframes), frames_per_transition, fps, loop=loop, method=method,
                              easing=easing, truncation=psi, scale=scale)
        bar = st.progress(0.0, text="Rendering frames")
        with tempfile.TemporaryDirectory() as d:
            recipe = video.make_clip(pipe, spec, [Path(d) / "clip.mp4", Path(d) / "clip.gif"], lambda done, total:
                                     bar.progress(0.8 * done / total, text=f"Rendering frames {done}/{total}"),
                                     upscaler=up, factor=factor)
            mp4, gif = (Path(d) / "clip.mp4").read_bytes(), (Path(d) / "clip.gif").read_bytes()
    except ValueError as e:
        st.error(str(e))
    else:
        bar.progress(1.0, text=f"{spec.n_frames} frames, {spec.duration:.2f} s")
        stem = f"{model}-{'-'.join(map(str, spec.seeds[:8]))}"
        st.session_state.clip = {"mp4": mp4, "gif": gif, "recipe": recipe, "stem": stem}

clip = st.session_state.get("clip")
if clip:
    st.video(clip["mp4"], format="video/mp4", loop=True, autoplay=True, muted=True)
    st.image(clip["gif"], caption="GIF", output_format="GIF")
    mp4_col, gif_col, recipe_col = st.columns(3)
    mp4_col.download_button("Download MP4", clip["mp4"], f"{clip['stem']}.mp4", "video/mp4", key="dl-mp4", on_click="ignore")
    gif_col.download_button("Download GIF", clip["gif"], f"{clip['stem']}.gif", "image/gif", key="dl-gif", on_click="ignore")
    recipe_col.download_button("Download recipe (JSON)", json.dumps(clip["recipe"], indent=2), f"{clip['stem']}.recipe.json",
                               "application/json", key="dl-recipe", on_click="ignore")
    with st.expander("Recipe: `python -m dgf_core video --recipe FILE.json --out clip.mp4` reproduces the clip"):
        st.json(clip["recipe"])
