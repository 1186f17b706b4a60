"""Writes a seeded, untrained ResNet18 in the original demo's checkpoint format plus its ONNX export, for the baselines' smoke test."""
import argparse
import os

import torch
import torch.nn as nn
from torchvision import models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", help="folder that receives best.pth and model.onnx")
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--size", type=int, default=64, help="input height and width of the ONNX export")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = models.resnet18()
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, args.classes))
    model.eval()

    os.makedirs(args.out_dir, exist_ok=True)
    torch.save({"state_dict": model.state_dict()}, os.path.join(args.out_dir, "best.pth"))
    torch.onnx.export(
        model,
        torch.zeros(1, 3, args.size, args.size),
        os.path.join(args.out_dir, "model.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )


if __name__ == "__main__":
    main()
