#!/usr/bin/python3
"""Demo checkpoint: a seeded, untrained ResNet18 in the original demo's format, so a fresh clone can serve.

Saved exactly as the demo's best.pth: torch.save({'state_dict': model.state_dict()}) of a torchvision ResNet18
whose head is fc = Sequential(Linear(512, 102)). Random weights alone give nearly the same top classes for
every image, which would make parity tests blind; so the BatchNorm statistics are calibrated on seeded
synthetic images and the head is centred and scaled on their features, making predictions vary by image.
The same bytes (same sha256) come out every time.
"""

import argparse
import io
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

NUM_CLASSES = 102
SEED = 0
CALIBRATION_IMAGES = 32
SIZE = 64
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def synthetic_images(generator):
    """Smooth random colour fields plus noise, normalised like photos: float32 [32, 3, 64, 64] NCHW."""
    coarse = torch.rand(CALIBRATION_IMAGES, 3, 4, 4, generator=generator)
    pixels = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    pixels = pixels + 0.1 * torch.randn(pixels.shape, generator=generator)
    return (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def demo_model():
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = models.resnet18(weights=None)
    model.fc = nn.Sequential(nn.Linear(512, NUM_CLASSES))
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batch_norms:
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.normal_(0.0, 0.2, generator=generator)
            # momentum None: running statistics become the plain average over the calibration pass.
            bn.momentum = None
            bn.reset_running_stats()
        images = synthetic_images(generator)
        model.train()
        model(images)
        model.eval()
        for bn in batch_norms:
            bn.momentum = 0.1
        # ResNet's children in order are its forward pass; all but fc give the pooled features.
        features = torch.flatten(nn.Sequential(*list(model.children())[:-1])(images), 1)
        head = model.fc[0]
        # Unit-variance features through a Gaussian head, centred so no class wins for every image.
        scale = features.std(0).clamp_min(1e-3) * features.shape[1] ** 0.5
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) / scale)
        head.bias.copy_(-(head.weight @ features.mean(0)))
    return model


def main(argv):
    p = argparse.ArgumentParser(prog="demo_checkpoint.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="where to write the checkpoint (e.g. .cache/demo/best.pth)")
    args = p.parse_args(argv)
    # One thread: the calibration pass then sums in a fixed order, so the bytes are reproducible.
    torch.set_num_threads(1)
    model = demo_model()
    # Saved through a buffer, torch names the archive "archive" rather than after the file: same bytes anywhere.
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict()}, buffer)
    partial = args.out + ".partial"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(partial, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(partial, args.out)
    except OSError as e:
        print(f"demo_checkpoint: error: cannot write {args.out}: {e.strerror} ({e.filename})", file=sys.stderr)
        return 1
    print(f"demo_checkpoint: wrote {args.out}: UNTRAINED DEMO MODEL (seeded ResNet18, {NUM_CLASSES} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
