"""Train the age/gender attribute classifier on UTKFace (held-out split by data.is_heldout kept for metrics).

    nice -n 10 python scripts/train_attributes.py --data ../shared/data/utkface --out weights/attributes-utkface --minutes 8

Writes model.safetensors + config.json (format dgf-attributes/1) whose card holds the held-out age MAE and
gender accuracy. CPU, one thread by default.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/train_attributes.py from anywhere
from dgf_core.data import load_image_set, parse_utkface_name  # noqa: E402
from dgf_core.faces.edits import save_classifier, train_attribute_classifier  # noqa: E402
from dgf_core.models.attributes import AttributeConfig  # noqa: E402


def load_split(data: str, split: str, res: int, limit: int | None):
    s = load_image_set(data, res, split, limit=limit)
    labels = [parse_utkface_name(p) for p in s.paths]
    keep = [i for i, l in enumerate(labels) if l is not None]
    ages = torch.tensor([labels[i].age for i in keep])
    female = torch.tensor([labels[i].gender for i in keep])
    return s.images[keep], ages, female


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    x, ages, fem = load_split(a.data, "train", a.resolution, a.limit)
    val = load_split(a.data, "heldout", a.resolution, None)
    print(f"decoded {len(x)} train / {len(val[0])} held-out faces in {time.time() - t0:.0f} s", flush=True)
    cfg = AttributeConfig(resolution=a.resolution, channels=a.channels)
    net, card = train_attribute_classifier(x, ages, fem, cfg=cfg, steps=a.steps, minutes=a.minutes, val=val,
                                           log=lambda m: print(m, flush=True))
    card.update({
        "description": "Age (years) and gender classifier for labelling generated faces when learning edit directions. "
                       "Input: 32x32 faces in UTKFace's chip geometry (alignment recipe 'utkface-chip'); generated faces are "
                       "warped into it with the canonical landmarks of both crop recipes.",
        "data": "UTKFace aligned & cropped (Zhang et al. 2017): non-commercial research purposes only. Held-out: "
                "data.is_heldout (crc32(file name) % 20 == 0).",
        "limits": "Trained on UTKFace's labels (apparent age from the data set, binary gender as UTKFace codes it: "
                  "0 male, 1 female); it labels generated samples for direction learning only and must not be used to "
                  "judge real people. Skewed towards UTKFace's age and ethnicity mix; at 32x32 it sees coarse cues only.",
        "command": "python " + " ".join(sys.argv),
    })
    save_classifier(a.out, net, card)
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
