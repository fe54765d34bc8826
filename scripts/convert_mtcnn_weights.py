"""Convert facenet-pytorch's MTCNN weights (pnet.pt, rnet.pt, onet.pt: plain state dicts inside its wheel) into the
one safetensors file + config.json that dgf_core.faces.mtcnn loads (weights/mtcnn). Run once, where facenet-pytorch 2.6.0
is installed (`pip install --no-deps facenet-pytorch==2.6.0`; nothing of it is imported, its files are read with
torch.load(weights_only=True)):

    python scripts/convert_mtcnn_weights.py --out weights/mtcnn
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dgf_core.checkpoint import save_net  # noqa: E402
from dgf_core.faces.mtcnn import MTCNN_FORMAT  # noqa: E402
from dgf_core.models.mtcnn import MTCNN, MTCNNConfig  # noqa: E402

CARD = {
    "description": "MTCNN face detector with five landmarks (P-, R- and O-Net), run by dgf_core.faces.mtcnn.detect, a port of "
                   "facenet-pytorch's detect_face that gives its boxes, probabilities and landmarks.",
    "paper": "K. Zhang, Z. Zhang, Z. Li, Y. Qiao. Joint Face Detection and Alignment Using Multitask Cascaded "
             "Convolutional Networks. IEEE Signal Processing Letters 23(10), 2016.",
    "source": "facenet-pytorch 2.6.0 (PyPI; github.com/timesler/facenet-pytorch), files facenet_pytorch/data/"
              "{pnet,rnet,onet}.pt, converted by its author from davidsandberg/facenet (src/align/det1-3.npy), "
              "which were converted from the authors' Caffe release (kpzhang93/MTCNN_face_detection_alignment).",
    "licence": "MIT, at every step: Copyright (c) 2016 Kaipeng Zhang (original models); Copyright (c) 2016 David "
               "Sandberg (TensorFlow port); Copyright (c) 2019 Timothy Esler (PyTorch port). Full texts in LICENSE "
               "beside this file.",
    "training_data": "WIDER FACE (detection) and CelebA (landmarks), per the paper.",
    "limits": "Detects faces from 20 px up (min_face_size); landmarks are misplaced for faces filling the frame "
              "(dgf_core.faces.alignment pads the photo first); like any face detector, its rates differ across ages, "
              "skin tones and poses.",
    "command": "python scripts/convert_mtcnn_weights.py --out weights/mtcnn",
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="weights/mtcnn")
    p.add_argument("--facenet-data", default=None, help="folder with pnet.pt, rnet.pt, onet.pt (default: the installed wheel's)")
    a = p.parse_args(argv)
    if a.facenet_data:
        data = Path(a.facenet_data)
    else:
        spec = importlib.util.find_spec("facenet_pytorch")
        if spec is None or not spec.submodule_search_locations:
            p.error("facenet-pytorch is not installed; pass --facenet-data")
        data = Path(list(spec.submodule_search_locations)[0]) / "data"
    net = MTCNN(MTCNNConfig())
    sources = {}
    for name in ("pnet", "rnet", "onet"):
        path = data / f"{name}.pt"
        getattr(net, name).load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        sources[f"{name}.pt"] = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"read {sorted(sources)} from {data}; writing {a.out}")
    save_net(a.out, net, MTCNN_FORMAT, {**CARD, "source_sha256": sources})


if __name__ == "__main__":
    main()
