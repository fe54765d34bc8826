"""What the tabs share: the model caches, the scratch folders, the shared uploads, the queue's limits, the error
wrapper (`user_errors`), input checks (`_number`, `_flag`), the upscale option and the clip files a render writes."""
from __future__ import annotations

import base64
import collections
import functools
import io
import logging
import os
import secrets

import gradio as gr

from dgf_core.checkpoint import write_json_atomic
from dgf_core.generation import compare
from dgf_core.generation.upscale import check_factor
from dgf_core.images import to_pil
from dgf_core.serving import registry
from dgf_core.serving.scratch import ScratchDirs
from dgf_core.serving.uploads import SharedUploads

RENDER_CONCURRENCY = int(os.environ.get("DGF_MAX_RENDERS", "2"))  # clips rendered at once; the rest wait in line
MEMORY_CONCURRENCY = int(os.environ.get("DGF_MAX_MEMORIES", "2"))  # memories made at once, in slots of their own
MEMORY_NICE = int(os.environ.get("DGF_MEMORY_NICE", "10"))  # a memory's thread runs this much nicer (serving.priority)
QUEUE_SIZE = int(os.environ.get("DGF_QUEUE_SIZE", "64"))  # requests waiting beyond this are turned away
MODELS = registry.PipelineCache()
UPSCALERS = registry.UpscalerCache()
PROJECTORS = registry.ModelCache(max_models=2, kind="projection")  # generators with their discriminators
UPSCALE_CHOICES = ["off", "x2", "x4"]
# Generate and Interpolate: "auto" shows a 128-px model's faces at 256 px through the upscaler, smaller ones at
# their own pixels (compare.display_factor); "off" is shown as "original pixels"
DISPLAY_CHOICES = [("auto", "auto"), ("original pixels", "off"), ("x2", "x2"), ("x4", "x4")]
# the tabs look SCRATCH up here when they run (common.SCRATCH), so one replacement reaches every tab
SCRATCH = ScratchDirs(prefix="dgf-app-", max_bytes=int(float(os.environ.get("DGF_SCRATCH_MB", "256")) * 2**20))
log = logging.getLogger("dgf.app")


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


def _number(name: str, value: object, lo: float, hi: float, whole: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi
            or (whole and value != int(value))):
        raise ValueError(f"{name} must be a {'whole ' if whole else ''}number in {lo:g}..{hi:g}, got {value!r}")
    return int(value) if whole else float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def data_uri(image_u8) -> str:
    """A (3, H, W) uint8 image as a PNG data URI: shown in the page, never written to the server's disk."""
    buf = io.BytesIO()
    to_pil(image_u8).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---- the models and the upscale option ---------------------------------------------------------------------

def model_info(name: str | None) -> str:
    if not name:
        return (f"**No generator found** in the weights folder ({registry.default_weights_dir()}). Put a model folder "
                "there (see README) or set `DGF_WEIGHTS_DIR`, then reload.")
    return f"**{name}**: {registry.describe_line(registry.describe(name))}"


def refresh_models(current: str | None):
    names = registry.generators()
    value = current if current in names else registry.default_generator()
    return gr.Dropdown(choices=names, value=value)


def upscaler_for(upscale: str, resolution: int | None = None):
    """'off' | 'x2' | 'x4' -> (the weights folder's upscaler or None, factor); ValueError if there is none to use.
    'auto' (with the model's `resolution`): the factor `compare.display_factor` picks, never an error."""
    if isinstance(upscale, str) and upscale.strip().lower() == "auto":
        name = registry.default_upscaler()
        factor = compare.display_factor(int(resolution or 0), name is not None)
        return (UPSCALERS.get(name) if factor > 1 else None), factor
    factor = check_factor(upscale)
    if factor == 1:
        return None, 1
    name = registry.default_upscaler()
    if name is None:
        raise ValueError(f"upscale {upscale} needs an upscaler model, and there is none in the weights folder "
                         f"({registry.default_weights_dir()}); use upscale off")
    return UPSCALERS.get(name), factor


def upscale_radio(elem_id: str, auto: bool = False) -> gr.Radio:
    """The upscale option: off / x2 / x4 with the weights folder's upscaler; disabled, with a note, without one.
    With `auto`, also "auto" (the default: a 128-px model's faces at 256 px, smaller ones at their own pixels)."""
    name = registry.default_upscaler()
    info = (f"a GAN upscaler ({name}) enlarges each face" if name else
            "disabled: no upscaler in the weights folder (put an upscaler model folder there, see README)")
    if auto and name:
        info += f"; auto: a model of 128 px or more at {compare.DISPLAY_SIDE} px, a 64-px one at its own pixels"
    return gr.Radio(DISPLAY_CHOICES if auto else UPSCALE_CHOICES, value="auto" if auto else "off", label="Upscale",
                    info=info, interactive=name is not None, elem_id=elem_id)


# ---- clip files (Interpolate, Compare, Memory) --------------------------------------------------------------

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


# ---- shared uploads (Memory) ----------------------------------------------------------------------------------

_FINISHED = collections.deque(maxlen=1024)  # Gradio events whose handler is done (they may still look active)
_SERVED: list[gr.Blocks] = []  # the Blocks whose queue wanted_elsewhere reads (set by serve_uploads_of)


def serve_uploads_of(demo: gr.Blocks) -> None:
    """Name the Blocks whose requests share UPLOADS: wanted_elsewhere reads its queue (app.py calls this once)."""
    _SERVED[:] = [demo]


def _current_event() -> str | None:
    from gradio.context import LocalContext

    return LocalContext.event_id.get(None)


def wanted_elsewhere(path: str) -> bool | None:
    """Whether a request other than this one, waiting in Gradio's queue or running, names the upload `path`: Gradio
    files identical uploads under one path, so two people sending the same photo share it. None when the queue cannot
    be read (then the upload is left to Gradio's cache expiry, never deleted under another request)."""
    me, finished = _current_event(), set(_FINISHED)
    try:
        queue = _SERVED[0]._queue
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
    except (AttributeError, TypeError, IndexError):  # another Gradio version, or no Blocks named yet: cannot tell
        return None


# A client uploads a file, then joins the queue: the deletion waits DGF_UPLOAD_GRACE_S (10 s) after the last request
# that used the file, so that a second sender of the same photo (Gradio files it under the same path) between those two
# steps still finds it.
UPLOADS = SharedUploads(wanted_elsewhere, grace_s=float(os.environ.get("DGF_UPLOAD_GRACE_S", "10")))
