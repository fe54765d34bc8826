"""Opening user-supplied images safely: `open_upload(bytes | path | file) -> PIL RGB image`; `SharedUploads`: one
upload used by several requests at once, each on its own link of the file.

Limits (documented in the README; an upload over any of them is refused before it is decoded):
- `MAX_UPLOAD_BYTES` = 20 MB of file;
- `MAX_UPLOAD_PIXELS` = 16,777,216 pixels (4096 x 4096), read from the header, so a decompression bomb (a
  tiny file that declares a huge canvas) is refused without allocating it; PIL's own `DecompressionBombError`
  is caught too;
- formats: PNG, JPEG, WebP, BMP, GIF (others, including TIFF and SVG, are refused);
- sides of at least `MIN_SIDE` pixels.
Decoding: the whole file is decoded on open, so a truncated or corrupt file fails here, not later;
animated images (GIF, APNG, WebP) give their **first frame**; EXIF orientation is applied; palette, grey,
alpha (composited on white), CMYK and 16-bit images become 8-bit RGB.
Every failure is one `UploadError` (a ValueError) whose message can be shown to the user as it is; nothing
else escapes for bad input.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
MIN_SIDE = 4
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


class UploadError(ValueError):
    """An upload that cannot be used; str(e) is a message for the user."""


def _read_bytes(source: bytes | bytearray | str | os.PathLike | BinaryIO, max_bytes: int) -> bytes:
    limit_mb = f"{max_bytes / 2**20:.0f} MB"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise UploadError(f"no such file: {p}")
        if p.stat().st_size > max_bytes:
            raise UploadError(f"the file is {p.stat().st_size / 2**20:.1f} MB; the limit is {limit_mb}")
        data = p.read_bytes()
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
    else:
        raise UploadError(f"cannot read an image from a {type(source).__name__}")
    if len(data) > max_bytes:
        raise UploadError(f"the file is larger than the limit of {limit_mb}")
    if not data:
        raise UploadError("the file is empty")
    return data


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit RGB (alpha composited on white, 16-bit scaled down, CMYK converted)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        arr = arr / 257.0 if arr.max(initial=0) > 255 or im.mode.startswith("I;16") else arr
        return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def open_upload(
    source: bytes | bytearray | str | os.PathLike | BinaryIO, *, max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Image.Image:
    """Bytes, a path or a binary file -> a fully decoded PIL RGB image (first frame, EXIF-oriented).

    Raises UploadError, with a user-facing message, for anything that is not a usable image within the limits.
    """
    data = _read_bytes(source, max_bytes)
    try:
        im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        raise UploadError(f"this file is not an image in a supported format ({', '.join(ALLOWED_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise UploadError(f"the image declares too many pixels; the limit is {max_pixels:,}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UploadError(f"the image file is corrupt: {e}") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise UploadError(f"the image is {w}x{h} ({w * h:,} pixels); the limit is {max_pixels:,} pixels")
        if min(w, h) < MIN_SIDE:
            raise UploadError(f"the image is {w}x{h}; it must be at least {MIN_SIDE} pixels a side")
        try:
            im.seek(0)  # animated images: the first frame
            im.load()  # decode everything now: truncated files fail here
            out = ImageOps.exif_transpose(im) or im
            out = _to_rgb(out)
            out.load()
        except Image.DecompressionBombError:
            raise UploadError(f"the image declares too many pixels; the limit is {max_pixels:,}") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
            msg = "the image file is truncated or corrupt" + (f" ({e})" if str(e) else "")
            raise UploadError(msg) from None
    if out is im:  # detach from the closed file
        out = out.copy()
    return out


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so that the longer side is at most `max_side`, keeping the aspect ratio."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    s = max_side / max(w, h)
    return image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS, reducing_gap=3.0)


class SharedUploads:
    """Uploads that several requests may use at once: a server that files identical uploads under one path (Gradio
    keys its upload folder by the content's hash) hands two users who send the same photo the same file.

    `held(path)` registers the request as a holder of `path` for the duration of a `with` block and yields a function
    that puts the request's own hard link (a copy where links are impossible) of the upload into a folder of the
    request's choosing. When the last holder leaves, the shared file is deleted, unless
    - it is not a version any holder started with or took: the same content was uploaded again since (a new file
      under the same path, for a request that has not started yet), or
    - `wanted_elsewhere(path)` says that a request not yet started may still need it (True), or cannot tell (None).
    What is left is left to the server's own cache expiry. Thread-safe; one instance per server process.

    With `grace_s` > 0 the deletion waits that long after the last holder leaves, and the checks above run then: a
    client uploads a file and joins the queue in two steps, and a request that finishes in between cannot see the
    newcomer (it has not joined yet). A holder arriving in the grace period keeps the file, and its own exit starts a
    new one."""

    def __init__(self, wanted_elsewhere: Callable[[str], bool | None] = lambda path: False, grace_s: float = 0.0):
        self.wanted_elsewhere = wanted_elsewhere
        self.grace_s = float(grace_s)
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}
        self._taken: dict[str, set[tuple[int, int, int]]] = {}  # versions (device, inode, mtime) the holders linked
        self._generation: dict[str, int] = {}  # bumped by each last exit: only the newest pending deletion acts

    def holders(self, path: str | os.PathLike) -> int:
        with self._lock:
            return self._holders.get(os.path.abspath(path), 0)

    @contextmanager
    def held(self, path: str | os.PathLike) -> Iterator[Callable[[Path], Path]]:
        key = os.path.abspath(path)
        with self._lock:
            self._holders[key] = self._holders.get(key, 0) + 1
            taken = self._taken.setdefault(key, set())
            try:  # the version there when the request starts is the one it was sent (read or not: no consent)
                st = os.stat(key)
                taken.add((st.st_dev, st.st_ino, st.st_mtime_ns))
            except FileNotFoundError:
                pass

        def copy_into(folder: Path, name: str = "upload") -> Path:
            dst = Path(folder) / name
            try:
                try:
                    os.link(key, dst)
                    st = os.stat(dst)
                    version = (st.st_dev, st.st_ino, st.st_mtime_ns)
                except OSError as e:
                    if isinstance(e, FileNotFoundError):
                        raise
                    st = os.stat(key)
                    version = (st.st_dev, st.st_ino, st.st_mtime_ns)
                    shutil.copyfile(key, dst)  # another file system, or links not allowed
            except FileNotFoundError:
                raise UploadError("the uploaded file is no longer on the server (it is deleted after use); "
                                  "upload it again") from None
            with self._lock:
                self._taken[key].add(version)
            return dst

        try:
            yield copy_into
        finally:
            with self._lock:  # (no `return` in here: it would swallow the request's exception)
                left = self._holders.pop(key) - 1
                if left:
                    self._holders[key] = left
                    generation = None
                else:
                    generation = self._generation[key] = self._generation.get(key, 0) + 1
            if generation is not None and self.grace_s > 0:
                timer = threading.Timer(self.grace_s, self._release, (key, generation))
                timer.daemon = True
                timer.start()
            elif generation is not None:
                self._release(key, generation)

    def pending(self) -> int:
        """Uploads whose last holder has left and whose deletion is still waiting out the grace period."""
        with self._lock:
            return sum(1 for key in self._taken if key not in self._holders)

    def _release(self, key: str, generation: int) -> None:
        """Delete the upload `key` if no request holds it or has left it since (`generation`), the file there is a
        version a holder had, and no queued request names it."""
        with self._lock:
            if key in self._holders or self._generation.get(key) != generation:
                return  # held again: the newest exit decides
            self._generation.pop(key, None)
            taken = self._taken.pop(key, set())
            try:
                st = os.stat(key)
                ours = (st.st_dev, st.st_ino, st.st_mtime_ns) in taken
            except FileNotFoundError:
                ours = False
            if ours and self.wanted_elsewhere(key) is False:
                _remove_upload(Path(key))


def _remove_upload(path: Path) -> None:
    """Delete an upload. Its folder (Gradio files each upload in a folder named by a seeded hash of its content) stays:
    removing it could race with a new upload of the same content, which makes that folder and then renames its file
    into it; the server's cache expiry removes empty folders."""
    path.unlink(missing_ok=True)
