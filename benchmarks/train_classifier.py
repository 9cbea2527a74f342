"""Train the MNIST classifier behind diffusion_lib.metrics and ship it.

    DIFFUSION_LIB_DATA=/path/to/data python benchmarks/train_classifier.py --out diffusion_lib/weights/classifier.pt

Prints the test accuracy and the reference scores of real data (the test set's confident share,
the Frechet distance of 500 training images against the test set), and stores them in the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import torch

from diffusion_lib.data import load_mnist
from diffusion_lib.measure.metrics import (ClassifierConfig, classifier_accuracy, load_classifier, reference_scores,
                                   save_classifier, train_classifier)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=ClassifierConfig.epochs)
    p.add_argument("--width", type=int, default=ClassifierConfig.width)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default="diffusion_lib/weights/classifier.pt")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    config = ClassifierConfig(epochs=args.epochs, width=args.width, seed=args.seed)
    images, labels = load_mnist(train=True)
    test_images, test_labels = load_mnist(train=False)
    start = time.monotonic()
    model = train_classifier(images, labels, config)
    minutes = (time.monotonic() - start) / 60
    accuracy = classifier_accuracy(test_images, test_labels, model)
    record = {"config": dataclasses.asdict(config), "test_accuracy": accuracy, "train_minutes": minutes,
              "command": "python " + " ".join(sys.argv), "machine": f"{platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads", "torch": str(torch.__version__)}
    save_classifier(model, args.out, **record)
    reference = reference_scores(load_classifier(args.out))          # from the saved file, as users will load it
    save_classifier(model, args.out, **record, reference=reference)
    os.chmod(args.out, 0o644)                                      # save_checkpoint's temporary file is private
    print(json.dumps({**record, "reference": reference}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
