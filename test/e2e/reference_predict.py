"""The original demo's prediction path in PyTorch (the reference of test/e2e/fidelity.test.ts).

Builds the model exactly as the original flask_server.py did (ResNet18, fc = Sequential(Linear(512, C)),
torch.load(...)['state_dict']) and preprocesses as its prepare_image (convert('RGB'), Resize((64, 64)), ToTensor,
Normalize with ImageNet mean/std). Prints JSON: {"files": [{"file", "probabilities": [C floats]}]}.
"""
import argparse
import json

import torch
import torch.nn as nn
from PIL import Image
from torchvision import models, transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    state = torch.load(args.checkpoint, weights_only=True)["state_dict"]
    model = models.resnet18()
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, state["fc.0.weight"].shape[0]))
    model.load_state_dict(state)
    model.eval()
    prepare = transforms.Compose([
        transforms.Resize((args.size, args.size)),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    out = []
    with torch.no_grad():
        for path in args.files:
            image = Image.open(path)
            if image.mode != "RGB":
                image = image.convert("RGB")
            probabilities = torch.softmax(model(prepare(image)[None]), dim=1)[0]
            out.append({"file": path, "probabilities": probabilities.tolist()})
    print(json.dumps({"files": out}))


if __name__ == "__main__":
    main()
