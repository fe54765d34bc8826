import json
import zlib

import pytest
import torch
from conftest import make_image_folder
from PIL import Image

from dgf_core.data import (
    DataError,
    center_crop_resize,
    epoch_permutation,
    is_heldout,
    list_images,
    load_image_set,
    parse_utkface_name,
    random_flip,
    to_float,
    to_uint8,
)


def test_recursive_listing_and_split(tmp_path):
    make_image_folder(tmp_path / "a", 30)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    paths = list_images(tmp_path / "a")
    assert len(paths) == 30 and paths == sorted(paths)
    train, held = list_images(tmp_path / "a", "train"), list_images(tmp_path / "a", "heldout")
    assert len(train) + len(held) == 30 and not set(train) & set(held)
    assert all(zlib.crc32(p.name.encode()) % 20 == 0 for p in held)
    assert all(is_heldout(p) for p in held)
    # the rule looks at the file name only, so combining folders does not move a face between splits
    assert is_heldout(tmp_path / "x" / held[0].name) if held else True


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    make_image_folder(tmp_path / "f", 6)
    (tmp_path / "f" / "sub" / "999998.jpg").write_bytes(b"not a jpeg at all")
    good = tmp_path / "f" / "sub" / "000001.jpg"
    (tmp_path / "f" / "sub" / "999999.jpg").write_bytes(good.read_bytes()[:200])  # truncated
    s = load_image_set(tmp_path / "f", 16, "all")
    assert len(s) == 6 and len(s.skipped) == 2
    assert s.images.shape == (6, 3, 16, 16) and s.images.dtype == torch.uint8


def test_nothing_decodable_is_an_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match="could be decoded"):
        load_image_set(tmp_path / "bad", 16, "all")


def test_resize_and_centre_crop():
    img = Image.new("RGB", (178, 218))
    img.paste((255, 0, 0), (0, 0, 178, 20))  # a red band at the top is cropped away
    out = center_crop_resize(img, 64)
    assert out.size == (64, 64)
    assert out.getpixel((32, 0))[0] < 50


def test_cache_round_trip(tmp_path):
    make_image_folder(tmp_path / "c", 8)
    a = load_image_set(tmp_path / "c", 16, "all", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    b = load_image_set(tmp_path / "c", 16, "all", cache_dir=tmp_path / "cache")
    assert torch.equal(a.images, b.images) and a.paths == b.paths


def test_utkface_names():
    lab = parse_utkface_name("/x/26_1_3_20170119181228234.jpg.chip.jpg")
    assert (lab.age, lab.gender, lab.race) == (26, 1, 3)
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg") is None  # one of the irregular names
    assert parse_utkface_name("000001.jpg") is None


def test_flips_and_conversions():
    x = torch.arange(2 * 3 * 2 * 4, dtype=torch.uint8).reshape(2, 3, 2, 4)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = random_flip(x, g1), random_flip(x, g2)
    assert torch.equal(a, b)
    for i in range(2):
        assert torch.equal(a[i], x[i]) or torch.equal(a[i], x[i].flip(-1))
    assert torch.equal(to_uint8(to_float(x)), x)
    assert torch.equal(epoch_permutation(10, 0, 3), epoch_permutation(10, 0, 3))
    assert not torch.equal(epoch_permutation(100, 0, 3), epoch_permutation(100, 0, 4))


def test_pack_keeps_names_and_split(tmp_path):
    from dgf_core.data import data_licences, pack_images

    make_image_folder(tmp_path / "src", 12)
    (tmp_path / "src" / "sub" / "bad.jpg").write_bytes(b"x")
    written, skipped = pack_images(tmp_path / "src", tmp_path / "pack", 16)
    assert (written, skipped) == (12, 1)
    packed = list_images(tmp_path / "pack")
    assert sorted(p.name for p in packed) == sorted(p.name for p in list_images(tmp_path / "src") if p.name != "bad.jpg")
    assert Image.open(packed[0]).size == (16, 16)
    assert data_licences(["/x/celeba/img_align_celeba"]) == ["CelebA (Liu et al. 2015): non-commercial research purposes only"]
    assert "licence unknown" in data_licences(["/x/faces"])[0]



def test_an_aligned_set_has_the_licences_of_its_sources(tmp_path):
    from dgf_core.data import data_licences

    aligned = tmp_path / "faces128"
    aligned.mkdir()
    (aligned / "summary.json").write_text(json.dumps({"format": "dgf-aligned-set/1", "sources": {
        "../shared/data/celeba/img_align_celeba": {"files": 6}, "../shared/data/utkface": {"files": 2}}}))
    assert data_licences([aligned]) == ["CelebA (Liu et al. 2015): non-commercial research purposes only",
                                        "UTKFace (Zhang et al. 2017): non-commercial research purposes only"]
    (aligned / "summary.json").write_text(json.dumps({"format": "other", "sources": {"x/celeba": {}}}))
    assert "licence unknown" in data_licences([aligned])[0]
    (aligned / "summary.json").write_text("{not json")  # damaged: the licence lookup flags it, the set's reader raises
    assert "licence unknown" in data_licences([aligned])[0]
    from dgf_core.faces.aligned_set import read_summary

    with pytest.raises(json.JSONDecodeError):
        read_summary(aligned)
    (aligned / "summary.json").write_text("[1, 2]")
    assert read_summary(aligned) is None and "licence unknown" in data_licences([aligned])[0]
