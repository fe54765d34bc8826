"""Train the identity embedding behind the likeness measure on CelebA's identities; verify on held-out files.

    nice -n 10 python scripts/train_identity.py --data ../shared/data/celeba/img_align_celeba \
        --identities ../shared/data/celeba/identity_CelebA.txt --out weights/identity-celeba200 --minutes 9
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/train_identity.py from anywhere
from dgf_core.data import is_heldout, list_images  # noqa: E402
from dgf_core.faces.likeness import (  # noqa: E402
    face_regions_from_files,
    read_identity_file,
    save_identity,
    train_identity,
    verify_identity,
)
from dgf_core.models.identity import IdentityConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--identities", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=9.0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--channels", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="initialization and batch order (another seed: an independent judge)")
    p.add_argument("--role", default="likeness", choices=["likeness", "judge"],
                   help="judge: an embedding that tuning never optimizes, kept for measuring likeness without bias")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    table = read_identity_file(a.identities)
    files = [f for f in list_images(a.data) if f.name in table]
    ids_sorted = sorted({table[f.name] for f in files})
    index = {i: k for k, i in enumerate(ids_sorted)}
    train = [f for f in files if not is_heldout(f)]
    held = [f for f in files if is_heldout(f)]
    cfg = IdentityConfig(channels=a.channels, n_ids=len(ids_sorted))
    t0 = time.time()
    x_tr, x_ho = face_regions_from_files(train, 64, cfg), face_regions_from_files(held, 64, cfg)
    y_tr = torch.tensor([index[table[f.name]] for f in train])
    y_ho = torch.tensor([index[table[f.name]] for f in held])
    print(f"{len(train)} train / {len(held)} held-out faces of {len(ids_sorted)} identities ({time.time() - t0:.0f} s)", flush=True)
    net, card = train_identity(x_tr, y_tr, cfg=cfg, steps=a.steps, minutes=a.minutes, seed=a.seed,
                               log=lambda m: print(m, flush=True))
    card["heldout_verification"] = verify_identity(net, x_ho, y_ho)
    purpose = ("Identity embedding for the likeness measure (and the identity loss of pivotal tuning)" if a.role == "likeness"
               else "Independent identity embedding, the judge of likeness figures: trained like the likeness embedding "
                    f"but from another seed ({a.seed}) and width ({a.channels} channels), and never used by tuning, "
                    "whose identity loss optimizes the other one")
    card.update({
        "description": purpose + ": cosine similarity of 64-d embeddings of the face "
                       "region (32x32, alignment recipe 'utkface-chip' geometry) of faces in the CelebA centre-crop geometry.",
        "seed": a.seed,
        "data": "CelebA (Liu et al. 2015), identity_CelebA.txt: non-commercial research purposes only. Held-out: "
                "data.is_heldout files of the same identities (never trained on).",
        "limits": "200 celebrities, 32x32 faces, minutes of CPU training: a coarse likeness signal to compare projections "
                  "and edits against the same-person / different-people baselines in heldout_verification; not a face "
                  "recognition system, never to be used to identify anyone; biased towards CelebA's demographics.",
        "command": "python " + " ".join(sys.argv),
    })
    save_identity(a.out, net, card)
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
