"""The upload guard: every bad file gives one UploadError with a readable message; good ones become RGB."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dgf_core.serving.uploads import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    UploadError,
    fit_within,
    open_upload,
)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height RGB, with one tiny IDAT: a decompression-bomb-shaped file."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def gradient(w: int = 40, h: int = 30) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 6, y * 8, (x + y) * 3], -1).astype(np.uint8))


def test_good_png_round_trips_exactly():
    im = gradient()
    out = open_upload(encode(im, "PNG"))
    assert out.mode == "RGB" and out.size == (40, 30)
    assert np.array_equal(np.asarray(out), np.asarray(im))


def test_path_and_file_object_sources(tmp_path):
    p = tmp_path / "face.png"
    gradient().save(p)
    assert open_upload(p).size == (40, 30)
    with open(p, "rb") as f:
        assert open_upload(f).size == (40, 30)
    with pytest.raises(UploadError, match="no such file"):
        open_upload(tmp_path / "missing.png")


@pytest.mark.parametrize("data", [b"", b"hello, this is text and not an image", b"%PDF-1.4\n" + b"0" * 200])
def test_non_images_are_refused(data):
    with pytest.raises(UploadError, match="empty|not an image"):
        open_upload(data)


def test_unsupported_format_is_refused():
    with pytest.raises(UploadError, match="not an image in a supported format"):
        open_upload(encode(gradient(), "TIFF"))


def test_truncated_jpeg_and_png_are_refused():
    jpg = encode(gradient(200, 150), "JPEG", quality=90)
    with pytest.raises(UploadError, match="truncated or corrupt"):
        open_upload(jpg[: len(jpg) // 2])
    png = encode(gradient(200, 150), "PNG")
    with pytest.raises(UploadError, match="truncated or corrupt|corrupt"):
        open_upload(png[: len(png) // 2])


def test_decompression_bombs_are_refused_before_decoding():
    # beyond PIL's own bomb limit (2 x 89.5 MP): PIL raises DecompressionBombError on open
    with pytest.raises(UploadError, match="too many pixels|limit is"):
        open_upload(png_header_only(20_000, 20_000))
    # below PIL's limit but above ours: refused from the header
    with pytest.raises(UploadError, match=r"5000x5000 \(25,000,000 pixels\); the limit is 16,777,216"):
        open_upload(png_header_only(5000, 5000))
    assert MAX_UPLOAD_PIXELS == 4096 * 4096


def test_huge_files_are_refused_by_byte_size(tmp_path):
    with pytest.raises(UploadError, match="larger than the limit of 20 MB"):
        open_upload(b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES)
    p = tmp_path / "big.png"
    p.write_bytes(encode(gradient(), "PNG") + b"\0" * 5000)
    with pytest.raises(UploadError, match="the limit is 0 MB"):
        open_upload(p, max_bytes=4000)


def test_tiny_images_are_refused():
    with pytest.raises(UploadError, match="at least 4 pixels"):
        open_upload(encode(gradient(3, 10), "PNG"))


def test_animated_gif_gives_its_first_frame():
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    blue = Image.new("RGB", (16, 16), (0, 0, 255))
    gif = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    out = np.asarray(open_upload(gif))
    assert out.shape == (16, 16, 3)
    assert tuple(out[8, 8]) == (255, 0, 0)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    out = open_upload(encode(cmyk, "JPEG", quality=95))
    assert out.mode == "RGB"
    r, g, b = np.asarray(out)[16, 16].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_alpha_palette_grey_and_16_bit_become_rgb():
    la = Image.new("LA", (8, 8), (0, 0))  # fully transparent black -> white background
    assert tuple(np.asarray(open_upload(encode(la, "PNG")))[0, 0]) == (255, 255, 255)
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    assert tuple(np.asarray(open_upload(encode(rgba, "PNG")))[0, 0]) == (10, 20, 30)
    p = gradient().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert open_upload(encode(p, "PNG")).mode == "RGB"
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))  # 16-bit grey, full scale
    assert deep.mode.startswith("I;16")
    out = open_upload(encode(deep, "PNG"))
    assert out.mode == "RGB" and tuple(np.asarray(out)[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    im = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = open_upload(encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (30, 40)


def test_fit_within_only_shrinks():
    im = gradient(400, 100)
    assert fit_within(im, 200).size == (200, 50)
    assert fit_within(im, 1000) is im


# ---- one upload, several requests ---------------------------------------------------------------------------

def test_shared_upload_lives_until_its_last_holder_leaves(tmp_path):
    from dgf_core.serving.uploads import SharedUploads

    (tmp_path / "cache" / "abc").mkdir(parents=True)
    upload = tmp_path / "cache" / "abc" / "photo.png"
    gradient().save(upload)
    shared = SharedUploads()
    with shared.held(upload) as copy_a:
        a = copy_a(tmp_path, "a")
        with shared.held(upload) as copy_b:
            b = copy_b(tmp_path, "b")
            assert shared.holders(upload) == 2
        assert upload.exists() and a.read_bytes() == b.read_bytes() == upload.read_bytes()
        b.unlink()
    assert not upload.exists()  # the last holder deleted it
    assert a.exists() and open_upload(a).size == (40, 30)  # a request's own link outlives the shared file


def test_shared_upload_is_kept_while_a_queued_request_names_it(tmp_path):
    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    for answer, kept in ((True, True), (None, True), (False, False)):  # None: cannot tell -> never deleted
        shared = SharedUploads(lambda path: answer)
        with shared.held(upload) as copy:
            copy(tmp_path, f"own-{answer}")
        assert upload.exists() == kept
    with pytest.raises(UploadError, match="no longer on the server"):
        with SharedUploads().held(upload) as copy:
            copy(tmp_path, "late")


def test_concurrent_holders_of_one_upload_all_read_it(tmp_path):
    """Eight threads hold one path at once (as eight requests running together): each reads the whole image, and the
    file goes when the last leaves. (A request that arrives after the last holder left is the queue's case:
    `wanted_elsewhere`, tested above.)"""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    shared, start, all_in = SharedUploads(), threading.Barrier(8), threading.Barrier(8)

    def request(i):
        start.wait()
        with shared.held(upload) as copy:
            all_in.wait()
            (tmp_path / str(i)).mkdir()
            return np.asarray(open_upload(copy(tmp_path / str(i), "photo"))).sum()

    with ThreadPoolExecutor(8) as pool:
        sums = list(pool.map(request, range(8)))
    assert sums == [np.asarray(gradient()).sum()] * 8 and not upload.exists()


def test_a_shared_upload_sent_again_after_it_was_taken_is_left_for_its_request(tmp_path):
    """Gradio renames each upload into place: the same content uploaded again is a new file under the same path, for
    a request that may not have started yet; the holders of the old version leave it alone."""
    import os

    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    shared = SharedUploads()
    with shared.held(upload) as copy:
        copy(tmp_path, "own")
        again = tmp_path / "incoming.png"
        gradient().save(again)
        os.replace(again, upload)  # the second upload arrives while the first request runs
    assert upload.exists()
    with shared.held(upload) as copy:  # its own request takes it, and deletes it at the end
        copy(tmp_path, "own2")
    assert not upload.exists()


def test_a_holder_that_never_reads_the_upload_still_deletes_it(tmp_path):
    """A request refused before reading (no consent) leaves nothing behind either."""
    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    with SharedUploads().held(upload):
        pass
    assert not upload.exists()


def test_a_grace_period_keeps_the_upload_for_a_sender_who_has_not_joined_yet(tmp_path):
    """A client uploads, then joins the queue: with a grace period, a request that arrives just after the last holder
    left still finds the file, and its own exit starts a new grace period; the file goes once one runs out."""
    import time

    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    shared = SharedUploads(grace_s=0.3)
    with shared.held(upload) as copy:
        copy(tmp_path, "first")
    assert upload.exists() and shared.pending() == 1  # the first request is done; the file waits out the grace
    time.sleep(0.2)
    with shared.held(upload) as copy:  # the late sender joins within the grace
        copy(tmp_path, "late")
        time.sleep(0.3)  # the first grace period runs out while it holds the file: nothing happens
        assert upload.exists()
    deadline = time.monotonic() + 5
    while upload.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not upload.exists() and shared.pending() == 0


def test_a_holders_exception_passes_through(tmp_path):
    from dgf_core.serving.uploads import SharedUploads

    upload = tmp_path / "photo.png"
    gradient().save(upload)
    for grace in (0, 0.1):
        shared = SharedUploads(grace_s=grace)
        with pytest.raises(KeyError):
            with shared.held(upload), shared.held(upload):
                raise KeyError("the request failed")
