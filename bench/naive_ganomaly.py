"""The naive GANomaly baseline of issue 3: a trained GANomaly scored as the original repos do it —
BatchNorm left in train mode (batch statistics of shuffled test batches), the latent score, and
min–max normalisation over the test set — to compare with our scoring of the same weights.

    python bench/naive_ganomaly.py MODEL_FILE [--data bench/out/elpv]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from inspector.data.datasets import open_dataset
from inspector.data.images import read_image
from inspector.engine import metrics
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.preprocess import to_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a GANomaly model file (e.g. from bench/quality.py --save-models)")
    parser.add_argument("--data", default="bench/out/elpv")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = ModelBundle.load(args.model)
    if bundle.info.method != "ganomaly":
        parser.error(f"{args.model} is a {bundle.info.method} model, not ganomaly")
    dataset = open_dataset(args.data)
    labels = np.array([s.label for s in dataset.test])
    images = [read_image(s.path) for s in dataset.test]

    ours = np.array([p.score for p in Predictor(bundle, "cpu").predict_batch(images)])
    model = bundle.model.train()  # the naive part: BatchNorm uses each test batch's statistics
    order = np.random.default_rng(0).permutation(len(images))
    naive = np.zeros(len(images))
    with torch.no_grad():
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            _, z, z_hat = model.generator(to_batch([images[j] for j in idx], bundle.info.image_size, bundle.info.channels))
            naive[idx] = (z - z_hat).pow(2).flatten(1).mean(dim=1).numpy()
    naive = (naive - naive.min()) / (naive.max() - naive.min())  # needs the whole test set: impossible on a line
    print(f"{'scoring':55s} image AUROC")
    print(f"{'naive: train-mode BatchNorm, latent score, min-max':55s} {metrics.auroc(labels, naive):.3f}")
    print(f"{'ours: eval mode, score_mode=' + bundle.info.config.get('score_mode', '?'):55s} {metrics.auroc(labels, ours):.3f}")


if __name__ == "__main__":
    main()
