"""Memory from a photo: with consent, find the face of a photo in a generator's latent space and make a short,
looping memory clip of it (optionally aged or re-gendered mid-clip). The photo stays in memory for this run only:
it is never written to disk or logged, and the clip's recipe holds the latent, not the photo."""
import json
import tempfile
from pathlib import Path

import streamlit as st

from dgf_core.faces.edits import MAX_EDIT, EditError, load_directions
from dgf_core.faces.memory import (
    MAX_MEMORY_FRAMES,
    RENDERS,
    MemorySpec,
    memory_from_photo,
    motion_preview,
    overall_progress,
)
from dgf_core.generation.audio import load_recording
from dgf_core.generation.motion import PRESETS
from dgf_core.faces.projection import DEFAULT_STEPS, ProjectionOptions
from dgf_core.faces.tuning import MAX_TUNE_STEPS, TuningOptions, default_tuning
from dgf_core.generation.video import MAX_FPS
from dgf_core.images import to_pil
from dgf_core.serving import uploads
from streamlit_shared import NOTICE, model_picker, projection_model, upscale_option

CONSENT = "I have the right to use this photo"
VOICE_CONSENT = "I have the right to use this recording"
VOICE_TYPES = ["wav", "mp3", "m4a", "aac", "ogg", "oga", "opus", "flac", "webm", "mp4"]
MAX_STEPS = 1000


@st.cache_resource(show_spinner="Loading the face detector...")
def face_detector():
    from dgf_core.faces.alignment import load_detector

    return load_detector("cpu")


@st.cache_resource(show_spinner="Loading the likeness model...")
def likeness_model():
    from dgf_core.faces.likeness import default_likeness

    return default_likeness()


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
steps = st.slider("Projection steps", 10, MAX_STEPS, DEFAULT_STEPS, 10, key="steps",
                  help="finds the closest face the model knows")
tune_steps = st.slider("Likeness (tuning steps)", 0, MAX_TUNE_STEPS, default_tuning(m).steps, 10,
                       key=f"tune_steps-{model}",  # each model starts at its own default
                       help="tunes a private copy of the model to the photo: more steps, closer likeness; 0: off. "
                            "The tuned copy is never saved")
if not edits_available:
    st.caption(f"{model} has no edit directions (a directions.json in its folder, see README): the edit sliders are off.")
age_col, gender_col = st.columns(2)
age = age_col.slider("Age", -MAX_EDIT, MAX_EDIT, 0.0, 0.25, key="age", disabled="age" not in edits_available)
gender = gender_col.slider("Gender", -MAX_EDIT, MAX_EDIT, 0.0, 0.25, key="gender", disabled="gender" not in edits_available)
motion = st.multiselect("Motion", list(PRESETS), [], key="motion", format_func=lambda k: f"{k}: {PRESETS[k][1]}",
                        help="several compose; none: a gentle drift around the face")
render = st.radio("Render", RENDERS, 0, key="render", horizontal=True,
                  help="photo: the photo itself, at its resolution, moved by the model; model: the model's own frames")
if motion:
    try:
        look = motion_preview(m, ",".join(motion), frames=24, fps=12)
    except ValueError as e:  # the model lacks a direction the motion needs
        st.caption(str(e))
    else:
        import io

        from PIL import Image

        buf = io.BytesIO()
        ims = [Image.fromarray(f) for f in look]
        ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=83, loop=0)
        st.image(buf.getvalue(), width=128, caption=f"{', '.join(motion)} on the model's own face")
frames_col, fps_col = st.columns(2)
frames = frames_col.slider("Frames in the loop", 2, MAX_MEMORY_FRAMES, 48, key="frames")
fps = fps_col.slider("Frames per second", 1, MAX_FPS, 24, key="fps")
mark_col, gif_col = st.columns(2)
mark = mark_col.checkbox('Visible "SYNTHETIC" mark', True, key="mark")
want_gif = gif_col.checkbox("Also a GIF (no sound)", True, key="gif",
                            help="A GIF holds every frame at once; without it a long memory is streamed into the MP4")
up, factor = upscale_option()
with st.expander("A voice: the person's own recording (optional)"):
    st.caption("A voicemail or a video message the person left (up to 60 s). The clip lasts as long as the recording, "
               "the MP4 carries it as sound, and the mouth follows it. It is used for this request only and deleted "
               "with it; a GIF has no sound. This project never makes up a voice.")
    voice_consent = st.checkbox(VOICE_CONSENT, key="voice_consent")
    voice_file = st.file_uploader("Recording", type=VOICE_TYPES, key="voice", disabled=not voice_consent)
    mouth = st.checkbox("Mouth follows the voice", True, key="mouth")

if st.button("Make the memory", type="primary", key="make", disabled=not consent or source is None):
    st.session_state.pop("memory", None)
    bar = st.progress(0.0, text="Reading the photo")
    tuning = TuningOptions(steps=tune_steps)
    try:
        picture = uploads.open_upload(source.getvalue())  # bytes in memory: the photo never touches the disk
        edit = {k: v for k, v in (("age", age), ("gender", gender)) if v}
        spec = MemorySpec(frames=frames, fps=fps, edit=edit, upscale=factor, mark=mark, motion=",".join(motion),
                          render=render)
        with tempfile.TemporaryDirectory() as d:
            recording = None
            if voice_file is not None and voice_consent:  # decoded into memory; its file goes with the folder
                (Path(d) / "voice").write_bytes(voice_file.getvalue())
                recording = load_recording(Path(d) / "voice")
                (Path(d) / "voice").unlink()
            res = memory_from_photo(
                m, picture, spec, [Path(d) / "m.mp4"] + ([Path(d) / "m.gif"] if want_gif else []),
                projection=ProjectionOptions(steps=steps),
                tuning=tuning, align=align, detector=face_detector() if align else None, likeness=likeness_model(),
                directions=directions if edit else None, upscaler=up, render=render, voice=recording,
                mouth_follows_voice=mouth,
                progress=lambda phase, frac, text: bar.progress(overall_progress(phase, frac, tuning.steps > 0), text=text))
            mp4, gif = (Path(d) / "m.mp4").read_bytes(), (Path(d) / "m.gif").read_bytes() if want_gif else None
        del picture
    except ValueError as e:  # UploadError, AlignmentError, ProjectionError, MemoryClipError: messages for the user
        bar.empty()
        st.error(str(e))
    else:
        bar.progress(1.0, text=f"{spec.frames} frames, PSNR {res.psnr:.1f} dB")
        st.session_state.memory = {
            "mp4": mp4, "gif": gif, "recipe": res.recipe, "notices": res.notices, "aligned": to_pil(res.aligned),
            "projection": to_pil(res.projection), "psnr_projection": res.psnr_projection,
            "likeness_projection": res.likeness_projection, "tuned": to_pil(res.tuned) if res.tuned is not None else None,
            "psnr_tuned": res.psnr_tuned, "likeness_tuned": res.likeness_tuned}

memory = st.session_state.get("memory")
if memory:
    for n in memory["notices"]:
        st.info(n)
    st.video(memory["mp4"], format="video/mp4", loop=True, autoplay=True, muted="voice" not in memory["recipe"])
    def likeness_text(key: str) -> str:
        return f", likeness {memory[key]:.2f}" if memory.get(key) is not None else ""

    cols = st.columns(3 if memory["tuned"] is not None else 2)
    cols[0].image(memory["aligned"].resize((192, 192)), caption="aligned photo (not stored)")
    cols[1].image(memory["projection"].resize((192, 192)),
                  caption=f"projection, PSNR {memory['psnr_projection']:.1f} dB{likeness_text('likeness_projection')}")
    if memory["tuned"] is not None:
        cols[2].image(memory["tuned"].resize((192, 192)),
                      caption=f"tuned to the photo, PSNR {memory['psnr_tuned']:.1f} dB{likeness_text('likeness_tuned')}")
    stem = f"memory-{memory['recipe']['model']}"
    mp4_col, gif_col, recipe_col = st.columns(3)
    mp4_col.download_button("Download MP4", memory["mp4"], f"{stem}.mp4", "video/mp4", key="dl-mp4", on_click="ignore")
    if memory["gif"] is not None:
        gif_col.download_button("Download GIF", memory["gif"], f"{stem}.gif", "image/gif", key="dl-gif", on_click="ignore")
    recipe_col.download_button("Download recipe (JSON)", json.dumps(memory["recipe"]), f"{stem}.recipe.json",
                               "application/json", key="dl-recipe", on_click="ignore")
