"""Train an attribute classifier (held-out split by data.is_heldout kept for metrics).

Age/gender on UTKFace's file-name labels:
    nice -n 10 python scripts/train_attributes.py --data ../shared/data/utkface --out weights/attributes-utkface --minutes 8
CelebA's binary attributes (Smiling, Mouth_Slightly_Open, Narrow_Eyes, ...) from list_attr_celeba.txt, on the files
it covers; faces are made exactly as the 64-px generators' training crops (data.center_crop_resize) and then warped
into the classifier's geometry, as generated faces will be:
    nice -n 10 python scripts/train_attributes.py --data ../shared/data/celeba/img_align_celeba_89x109 \
        ../shared/data/celeba/img_align_celeba --celeba-attributes ../shared/data/celeba/list_attr_celeba_000001-020000.txt \
        --out weights/attributes-celeba --minutes 8

Writes model.safetensors + config.json (format dgf-attributes/1) whose card holds the held-out scores
(age MAE and gender accuracy; per label accuracy, balanced accuracy, ROC AUC and the majority baseline).
CPU, one thread by default.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/train_attributes.py from anywhere
from dgf_core.data import list_images, load_image, load_image_set, parse_utkface_name, to_float  # noqa: E402
from dgf_core.faces.edits import recipe_warp, save_classifier, train_attribute_classifier, train_label_classifier  # noqa: E402
from dgf_core.models.attributes import AttributeConfig  # noqa: E402


def load_split(data: str, split: str, res: int, limit: int | None):
    s = load_image_set(data, res, split, limit=limit)
    labels = [parse_utkface_name(p) for p in s.paths]
    keep = [i for i, l in enumerate(labels) if l is not None]
    ages = torch.tensor([labels[i].age for i in keep])
    female = torch.tensor([labels[i].gender for i in keep])
    return s.images[keep], ages, female


CELEBA_LABELS = ("Smiling", "Mouth_Slightly_Open", "Narrow_Eyes", "Eyeglasses", "Male", "Young")
CROP_SIDE = 64  # the generators' training crop (data.center_crop_resize on CelebA, recipe celeba-center-crop)


def read_celeba_attributes(path: str | Path) -> tuple[list[str], dict[str, list[int]]]:
    """CelebA's list_attr_celeba.txt (a count line, a line of 40 names, then 'file.jpg 1 -1 ...') ->
    (names, {file name: [0/1 per name]}). Lines that do not hold a file and one value per name are skipped."""
    names: list[str] = []
    rows: dict[str, list[int]] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not names:
            if len(parts) > 1 and not parts[0].lower().endswith(".jpg"):
                names = parts
            continue
        if len(parts) == len(names) + 1 and parts[0].lower().endswith(".jpg"):
            rows[parts[0]] = [int(v == "1") for v in parts[1:]]
    if not names or not rows:
        raise SystemExit(f"{path} is not a CelebA attribute list (a line of names, then 'file.jpg 1 -1 ...' rows)")
    return names, rows


def load_celeba_split(roots: list[str], attr_file: str, labels: tuple[str, ...], split: str, res: int, recipe: str):
    names, rows = read_celeba_attributes(attr_file)
    missing = [x for x in labels if x not in names]
    if missing:
        raise SystemExit(f"labels {missing} are not in {attr_file}; it has {names}")
    cols = [names.index(x) for x in labels]
    paths = [p for p in list_images(roots, split) if p.name in rows]
    with ThreadPoolExecutor(4) as ex:
        arrays = list(ex.map(lambda q: load_image(q, CROP_SIDE), paths))
    keep = [i for i, a in enumerate(arrays) if a is not None]
    crops = torch.from_numpy(np.stack([arrays[i] for i in keep])).permute(0, 3, 1, 2)  # (N, 3, 64, 64) uint8
    faces = torch.cat([recipe_warp(to_float(crops[i : i + 1024]), "celeba-center-crop", recipe, res)
                       for i in range(0, len(crops), 1024)])
    y = torch.tensor([[rows[paths[i].name][c] for c in cols] for i in keep])
    return faces, y


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--celeba-attributes", default=None, help="CelebA list_attr_celeba.txt: train its binary labels")
    p.add_argument("--labels", default=",".join(CELEBA_LABELS), help="with --celeba-attributes: comma-separated names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--stages", type=int, default=3, help="stride-2 stages (channels double at each)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (age/gender only; CPUs with AVX512-BF16)")
    p.add_argument("--judge", action="store_true",
                   help="age/gender only: a judge that measures edits and memories (weights/age-judge-utkface), kept "
                        "apart from the classifier that learns the directions, as the identity judge is")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    if a.celeba_attributes:
        train_celeba(a, t0)
        return
    x, ages, fem = load_split(a.data, "train", a.resolution, a.limit)
    val = load_split(a.data, "heldout", a.resolution, None)
    print(f"decoded {len(x)} train / {len(val[0])} held-out faces in {time.time() - t0:.0f} s", flush=True)
    cfg = AttributeConfig(resolution=a.resolution, channels=a.channels, stages=a.stages)
    net, card = train_attribute_classifier(x, ages, fem, cfg=cfg, steps=a.steps, minutes=a.minutes, val=val,
                                           log=lambda m: print(m, flush=True), amp=a.amp)
    role = ("Age (years) and gender judge that measures edits and photo memories (scripts/measure_motion.py): kept "
            "apart from weights/attributes-utkface, which labels the samples the edit directions are learnt from, so "
            "a direction is not judged by the net it was fitted to. " if a.judge else
            "Age (years) and gender classifier for labelling generated faces when learning edit directions. ")
    card.update({
        "description": role + f"Input: {a.resolution}x{a.resolution} faces in UTKFace's chip geometry (alignment recipe "
                       "'utkface-chip'); generated faces are warped into it with the canonical landmarks of both crop "
                       "recipes.",
        "data": "UTKFace aligned & cropped (Zhang et al. 2017): non-commercial research purposes only. Held-out: "
                "data.is_heldout (crc32(file name) % 20 == 0).",
        "limits": "Trained on UTKFace's labels (apparent age from the data set, binary gender as UTKFace codes it: "
                  "0 male, 1 female); it labels generated samples for direction learning and measurement only and "
                  f"must not be used to judge real people. Skewed towards UTKFace's age and ethnicity mix; at {a.resolution}x{a.resolution} it "
                  "sees coarse cues only.",
        "command": "python " + " ".join(sys.argv),
    })
    save_classifier(a.out, net, card)
    print(json.dumps(card, indent=1))


def train_celeba(a, t0: float) -> None:
    labels = tuple(x.strip() for x in a.labels.split(",") if x.strip())
    cfg = AttributeConfig(resolution=a.resolution, channels=a.channels, labels=labels, stages=a.stages)
    x, y = load_celeba_split(a.data, a.celeba_attributes, labels, "train", a.resolution, cfg.recipe)
    val = load_celeba_split(a.data, a.celeba_attributes, labels, "heldout", a.resolution, cfg.recipe)
    print(f"decoded {len(x)} train / {len(val[0])} held-out labelled faces in {time.time() - t0:.0f} s", flush=True)
    net, card = train_label_classifier(x, y, labels, cfg=cfg, steps=a.steps, minutes=a.minutes, val=val, seed=a.seed,
                                       log=lambda m: print(m, flush=True))
    card.update({
        "description": f"CelebA attribute classifier ({', '.join(labels)}: one probability each) for labelling generated "
                       f"faces when learning motion edit directions. Input: {a.resolution}x{a.resolution} faces in UTKFace's "
                       "chip geometry (alignment recipe 'utkface-chip'), made from the 64x64 CelebA centre crops the "
                       "generators train on (recipe 'celeba-center-crop'), as generated faces are.",
        "data": "CelebA (Liu et al. 2015) attributes list_attr_celeba.txt, rows 1-20,000: the files of the data folders it "
                "covers. CelebA is for non-commercial research purposes only. Held-out: data.is_heldout "
                "(crc32(file name) % 20 == 0), never trained on.",
        "licence": "Weights derived from CelebA: non-commercial research purposes only (CelebA's terms).",
        "limits": "CelebA's labels are one annotator's binary calls (Narrow_Eyes especially is noisy and rare); 32x32 "
                  "faces of celebrities, biased towards CelebA's demographics. It labels generated samples for direction "
                  "learning and measures edits; it must not be used to judge real people.",
        "command": "python " + " ".join(sys.argv),
    })
    save_classifier(a.out, net, card)
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
