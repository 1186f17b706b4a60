#!/usr/bin/python3
"""Exporter: a PyTorch checkpoint -> model.onnx, export.json and a PyTorch reference batch (docs/architecture.md).

Loads the checkpoint in any common form with weights_only (no pickled code runs unless --trust-checkpoint),
rebuilds the torchvision architecture with the checkpoint's own head, exports ONNX in eval mode and records
PyTorch's logits for a fixed seeded batch, against which the TF.js conversion is checked.
Errors are one line on stderr with exit status 1, and leave the output folder as it was.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "py"))

from checkpoints import check_checkpoint_file, sha256_file  # noqa: E402
from class_labels import check_class_to_idx, read_json, resolve_labels  # noqa: E402
from export_errors import UserError  # noqa: E402

# ImageNet statistics, as torchvision's pretrained models and the original demo normalise.
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
REFERENCE_BATCH = 3
REFERENCE_SEED = 0
OUTPUTS = ("model.onnx", "export.json", "reference.json", "reference_input.f32", "reference_logits.f32")


def image_size(text):
    """"64" or "HxW" (e.g. "224x192") -> [H, W]."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 224x192, got {text!r}")
    sizes = [int(p) for p in parts]
    return sizes * 2 if len(sizes) == 1 else sizes


def parse_args(argv):
    p = argparse.ArgumentParser(prog="export_onnx.py", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="the torch.save file (best.pth)")
    p.add_argument("--arch", default="resnet18", help="torchvision classification model name (default resnet18)")
    p.add_argument("--image-size", type=image_size, default=[64, 64], help="input size: 64 or HxW (default 64)")
    p.add_argument("--labels", help="JSON list of names, {index: name} map, or cat_to_name.json")
    p.add_argument("--class-to-idx", help="JSON {class folder name: index} (overrides the checkpoint's)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow full unpickling (runs code from the file): only for checkpoints you trust")
    p.add_argument("--opset", type=int, default=14, choices=range(13, 18), metavar="13..17",
                   help="ONNX opset (default 14)")
    p.add_argument("--demo", action="store_true", help="mark the export as the untrained demo model")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    return p.parse_args(argv)


def open_staging(out):
    """A temp folder inside `out`: outputs appear in `out` only once all are written.

    Returns (staging folder, whether `out` was created here and so should go if the export fails).
    """
    created = not os.path.isdir(out)
    try:
        os.makedirs(out, exist_ok=True)
        return tempfile.mkdtemp(prefix=".export-", dir=out), created
    except OSError as e:
        raise UserError(f"cannot write to output folder {out}: {e.strerror} ({e.filename})") from None


def reference_input(size):
    """The fixed reference batch: seeded uniform pixels in [0, 1], normalised; float32 [3, 3, H, W] NCHW."""
    import torch

    pixels = torch.rand(REFERENCE_BATCH, 3, *size, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    return (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def run_reference(model, x, arch, num_classes):
    import torch

    try:
        with torch.no_grad():
            logits = model(x)
    except RuntimeError as e:
        raise UserError(f"--arch {arch} cannot run on a {list(x.shape)} input ({str(e).splitlines()[0]}); "
                        f"try a larger --image-size such as 224") from None
    if not isinstance(logits, torch.Tensor) or list(logits.shape) != [x.shape[0], num_classes]:
        raise UserError(f"--arch {arch} returned {type(logits).__name__} instead of logits [N, {num_classes}]")
    return logits


def export(args, staging, raw_labels, class_to_idx):
    import onnx
    import torch

    from architectures import build_model
    from checkpoints import read_checkpoint

    state_dict, checkpoint_class_to_idx, where = read_checkpoint(args.checkpoint, args.trust_checkpoint)
    model, num_classes, head = build_model(args.arch, state_dict)
    labels = None
    if raw_labels is not None:
        if class_to_idx is None and checkpoint_class_to_idx is not None:
            class_to_idx = check_class_to_idx(checkpoint_class_to_idx, f"checkpoint {args.checkpoint}")
        labels = resolve_labels(raw_labels, args.labels, num_classes, class_to_idx)

    x = reference_input(args.image_size)
    logits = run_reference(model, x, args.arch, num_classes)
    onnx_path = os.path.join(staging, "model.onnx")
    try:
        torch.onnx.export(model, x, onnx_path, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=args.opset,
                          do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    except RuntimeError as e:  # torch.onnx.errors.OnnxExporterError included
        raise UserError(f"torch {torch.__version__} cannot export --arch {args.arch} at opset {args.opset} "
                        f"({str(e).strip().splitlines()[0]}); try another --opset (13..17)") from None
    onnx.checker.check_model(onnx_path)

    x.numpy().astype("<f4").tofile(os.path.join(staging, "reference_input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(staging, "reference_logits.f32"))
    write_json(os.path.join(staging, "reference.json"), {
        "input": {"shape": list(x.shape), "layout": "NCHW", "file": "reference_input.f32"},
        "logits": {"shape": list(logits.shape), "file": "reference_logits.f32"},
    })
    write_json(os.path.join(staging, "export.json"), {
        "arch": args.arch, "num_classes": num_classes, "image_size": args.image_size, "mean": MEAN, "std": STD,
        "labels": labels, "checkpoint": {"path": args.checkpoint, "sha256": sha256_file(args.checkpoint)},
        "demo": args.demo, "opset": args.opset,
    })
    return f"{args.arch}, {num_classes} classes, head {head}, state dict {where or '(bare)'}"


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    try:
        # Cheap checks first: each is a clear error before the seconds torch takes to import.
        check_checkpoint_file(args.checkpoint)
        raw_labels = read_json(args.labels, "labels") if args.labels else None
        class_to_idx = (check_class_to_idx(read_json(args.class_to_idx, "class_to_idx"), args.class_to_idx)
                        if args.class_to_idx else None)
        staging, created = open_staging(args.out)
        try:
            summary = export(args, staging, raw_labels, class_to_idx)
            for name in OUTPUTS:
                os.replace(os.path.join(staging, name), os.path.join(args.out, name))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if created:
                shutil.rmtree(args.out, ignore_errors=True)
            raise
        os.rmdir(staging)
    except UserError as e:
        print(f"export_onnx: error: {e}", file=sys.stderr)
        return 1
    if args.demo:
        rule = "export_onnx: " + "*" * 88
        print(f"{rule}\nexport_onnx: UNTRAINED DEMO MODEL: seeded random weights, its predictions are meaningless."
              f"\nexport_onnx: Convert your own model with: make convert CHECKPOINT=path/to/best.pth\n{rule}",
              file=sys.stderr)
    print(f"export_onnx: {args.checkpoint} -> {args.out}/model.onnx ({summary}, opset {args.opset}) "
          f"in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
