"""Development fixture: a seeded, randomly initialised torchvision classifier exported to ONNX with a PyTorch reference.

Writes the same files as tools/export_onnx.py (model.onnx, export.json, reference.json and the raw .f32 tensors)
so the architecture matrix can run before, and independently of, the checkpoint exporter.
"""
import argparse
import json
import os

import torch
import torchvision

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def build(arch: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"weights": None, "num_classes": num_classes}
    if arch in ("googlenet", "inception_v3"):
        # Auxiliary heads only run in training mode; init_weights=True keeps torchvision's seeded init.
        kwargs.update(aux_logits=False, init_weights=True)
    model = torchvision.models.get_model(arch, **kwargs) if hasattr(torchvision.models, "get_model") \
        else getattr(torchvision.models, arch)(**kwargs)
    # Non-trivial BatchNorm statistics, or folding would be tested only on identity transforms.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


def gen_head() -> torch.Generator:
    return torch.Generator().manual_seed(3)


def last_linear(model: torch.nn.Module) -> torch.nn.Module:
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return layers[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--opset", type=int, default=14)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--classes", type=int, default=102)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    model = build(a.arch, a.classes)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        head = last_linear(model)
        if not head.weight.any():
            # Some archs (ViT) zero-initialise the head: random logits instead of all-zero ones.
            head.weight.normal_(0, 0.01, generator=gen_head())
        logits = model(x)
        # Scale the head so logits are O(10): a tolerance relative to tiny logits would accept anything.
        peak = float(logits.abs().max())
        if peak > 0:
            head.weight.mul_(10.0 / peak)
            if head.bias is not None:
                head.bias.mul_(10.0 / peak)
        logits = model(x)
    torch.onnx.export(model, x, os.path.join(a.out, "model.onnx"), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=a.opset,
                      do_constant_folding=True)
    x.numpy().astype("<f4").tofile(os.path.join(a.out, "reference_input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(a.out, "reference_logits.f32"))
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump({"input": {"shape": list(x.shape), "layout": "NCHW", "file": "reference_input.f32"},
                   "logits": {"shape": list(logits.shape), "file": "reference_logits.f32"}}, f)
    with open(os.path.join(a.out, "export.json"), "w") as f:
        json.dump({"arch": a.arch, "num_classes": a.classes, "image_size": [a.size, a.size], "mean": MEAN,
                   "std": STD, "labels": None, "checkpoint": {"path": f"torchvision:{a.arch}:seeded-random-init", "sha256": ""}, "demo": True,
                   "opset": a.opset}, f)


if __name__ == "__main__":
    main()
