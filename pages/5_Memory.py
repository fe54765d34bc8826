"""Memory from a photo: with consent, find the face of a photo in a generator's latent space and make a short,
looping memory clip of it (optionally aged or re-gendered mid-clip). The photo stays in memory for this run only:
it is never written to disk or logged, and the clip's recipe holds the latent, not the photo."""
import json
import tempfile
from pathlib import Path

import streamlit as st

from dgf_core import uploads
from dgf_core.data import to_uint8
from dgf_core.edits import MAX_EDIT, EditError, load_directions
from dgf_core.images import to_pil
from dgf_core.memory import MAX_MEMORY_FRAMES, MemorySpec, make_memory
from dgf_core.projection import DEFAULT_STEPS, ProjectionOptions, prepare_target, project_model
from dgf_core.video import MAX_FPS
from streamlit_shared import NOTICE, model_picker, projection_model, upscale_option

CONSENT = "I have the right to use this photo"
MAX_STEPS = 1000


@st.cache_resource(show_spinner="Loading the face detector...")
def face_detector():
    from dgf_core.alignment import load_detector

    return load_detector("cpu")


st.set_page_config(page_title="Memory · Deeply Good Fakes", page_icon="🕯️")
st.title("Memory from a photo")
st.caption(NOTICE)
st.markdown("Find the face of a photo in the model's latent space and make a short, looping *memory* of it. The photo "
            "is used for this run only: it is kept in memory, never written to disk or logged, and the clip's recipe "
            "holds the latent, not the photo.")
model = model_picker()
m = projection_model(model)
try:
    directions = load_directions(m)
except EditError:  # no directions.json for this model: no edits
    directions = None
edits_available = sorted(directions or {})

consent = st.checkbox(CONSENT, key="consent")
source = st.file_uploader("Photo (one face, from the front)", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"],
                          key="photo", disabled=not consent)
align = st.checkbox("Find and align the face (untick for a photo already cropped like the training faces)", True,
                    key="align")
steps = st.slider("Projection steps", 10, MAX_STEPS, DEFAULT_STEPS, 10, key="steps", help="more: a closer likeness, slower")
if not edits_available:
    st.caption(f"{model} has no edit directions (a directions.json in its folder, see README): the edit sliders are off.")
age_col, gender_col = st.columns(2)
age = age_col.slider("Age", -MAX_EDIT, MAX_EDIT, 0.0, 0.25, key="age", disabled="age" not in edits_available)
gender = gender_col.slider("Gender", -MAX_EDIT, MAX_EDIT, 0.0, 0.25, key="gender", disabled="gender" not in edits_available)
frames_col, fps_col = st.columns(2)
frames = frames_col.slider("Frames in the loop", 2, MAX_MEMORY_FRAMES, 48, key="frames")
fps = fps_col.slider("Frames per second", 1, MAX_FPS, 24, key="fps")
mark = st.checkbox('Visible "SYNTHETIC" mark', True, key="mark")
up, factor = upscale_option()

if st.button("Make the memory", type="primary", key="make", disabled=not consent or source is None):
    st.session_state.pop("memory", None)
    try:
        picture = uploads.open_upload(source.getvalue())  # bytes in memory: the photo never touches the disk
        edit = {k: v for k, v in (("age", age), ("gender", gender)) if v}
        spec = MemorySpec(frames=frames, fps=fps, edit=edit, upscale=factor, mark=mark)
        spec.validate()
        target, notices = prepare_target(picture, m, align=align, detector=face_detector() if align else None)
    except ValueError as e:  # UploadError, AlignmentError, MemoryClipError: messages for the user
        st.error(str(e))
    else:
        del picture
        bar = st.progress(0.0, text="Projecting into the model")
        result = project_model(m, target, ProjectionOptions(steps=steps), progress=lambda step, total, loss: bar.progress(
            0.8 * step / total, text=f"Projecting into the model: step {step}/{total}"))
        bar.progress(0.8, text="Rendering the memory clip")
        with tempfile.TemporaryDirectory() as d:
            recipe = make_memory(m, result.latent, result.space, spec, [Path(d) / "m.mp4", Path(d) / "m.gif"],
                                 directions=directions if edit else None, upscaler=up)
            mp4, gif = (Path(d) / "m.mp4").read_bytes(), (Path(d) / "m.gif").read_bytes()
        bar.progress(1.0, text=f"{spec.frames} frames, PSNR {result.psnr:.1f} dB")
        st.session_state.memory = {"mp4": mp4, "gif": gif, "recipe": recipe, "notices": notices, "psnr": result.psnr,
                                   "aligned": to_pil(to_uint8(target)[0]), "reconstruction": to_pil(to_uint8(result.image)[0])}

memory = st.session_state.get("memory")
if memory:
    for n in memory["notices"]:
        st.info(n)
    st.video(memory["mp4"], format="video/mp4", loop=True, autoplay=True, muted=True)
    aligned_col, recon_col = st.columns(2)
    aligned_col.image(memory["aligned"].resize((192, 192)), caption="aligned photo (not stored)")
    recon_col.image(memory["reconstruction"].resize((192, 192)),
                    caption=f"the model's reconstruction, PSNR {memory['psnr']:.1f} dB")
    stem = f"memory-{memory['recipe']['model']}"
    mp4_col, gif_col, recipe_col = st.columns(3)
    mp4_col.download_button("Download MP4", memory["mp4"], f"{stem}.mp4", "video/mp4", key="dl-mp4", on_click="ignore")
    gif_col.download_button("Download GIF", memory["gif"], f"{stem}.gif", "image/gif", key="dl-gif", on_click="ignore")
    recipe_col.download_button("Download recipe (JSON)", json.dumps(memory["recipe"]), f"{stem}.recipe.json",
                               "application/json", key="dl-recipe", on_click="ignore")
