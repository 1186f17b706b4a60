"""Replica of the original demo's flask_server.py (ResNet18, 64x64, top-3), the baseline of the benchmark."""
import argparse
import io

import flask
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision import models, transforms

app = flask.Flask(__name__)
model = None


def load_model(checkpoint_path: str) -> None:
    global model
    model = models.resnet18()
    num_ftrs = model.fc.in_features
    model.fc = nn.Sequential(nn.Linear(num_ftrs, 102))
    checkpoint = torch.load(checkpoint_path)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()


def prepare_image(image, target_size):
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = transforms.Resize(target_size)(image)
    image = transforms.ToTensor()(image)
    image = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(image)
    # The original wrapped this in Variable(volatile=True), a no-op since torch 0.4: autograd stays on, as there.
    return image[None]


@app.route("/predict", methods=["POST"])
def predict():
    data = {"success": False}
    if flask.request.files.get("image"):
        image = flask.request.files["image"].read()
        image = Image.open(io.BytesIO(image))
        image = prepare_image(image, target_size=(64, 64))
        preds = F.softmax(model(image), dim=1)
        results = torch.topk(preds.cpu().data, k=3, dim=1)
        results = (results[0].cpu().numpy(), results[1].cpu().numpy())
        data["predictions"] = list()
        for prob, label in zip(results[0][0], results[1][0]):
            data["predictions"].append({"label": str(label), "probability": float(prob)})
        data["success"] = True
    return flask.jsonify(data)


def create_app(checkpoint_path: str) -> flask.Flask:
    """Application factory for gunicorn (`gunicorn 'flask_server:create_app("best.pth")'`), one model per worker."""
    load_model(checkpoint_path)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="best.pth", help="{'state_dict': ...} file, as the original loads")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5012)
    args = parser.parse_args()
    load_model(args.checkpoint)
    # Flask's built-in server, threaded (its default), exactly how the original ran.
    app.run(host=args.host, port=args.port)
