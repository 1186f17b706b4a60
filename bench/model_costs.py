"""Model-only costs for the benchmark: FLOPs per image counted from the ONNX graph, and PyTorch's forward time.

Usage: model_costs.py MODEL.onnx ARCH NUM_CLASSES SIZE   (prints JSON)
FLOPs: 2 x multiply-adds of Conv, Gemm and MatMul nodes, from ONNX's shape inference at batch 1. PyTorch: the
torchvision architecture (random weights: time does not depend on them) in eval mode under no_grad, one thread,
milliseconds per image at batch 1, 8 and 32, best of several runs.
"""
import json
import sys
import time

import onnx
import torch
import torchvision
from onnx import shape_inference


def dims(value_info):
    return [d.dim_value if d.HasField('dim_value') else 1 for d in value_info.type.tensor_type.shape.dim]


def onnx_flops(path):
    model = onnx.load(path)
    # Batch 1 everywhere: the exported batch dimension is symbolic.
    for tensor in list(model.graph.input) + list(model.graph.output):
        tensor.type.tensor_type.shape.dim[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: dims(v) for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    flops = 0
    for node in model.graph.node:
        if node.op_type == 'Conv':
            out = shapes[node.output[0]]
            kernel = shapes[node.input[1]]  # [out, in/groups, kh, kw]
            flops += 2 * out[1] * out[2] * out[3] * kernel[1] * kernel[2] * kernel[3]
        elif node.op_type in ('Gemm', 'MatMul'):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            transposed = any(attr.name == 'transB' and attr.i for attr in node.attribute)
            k = a[-1]
            n = b[0] if transposed else b[-1]
            m = 1
            for d in a[:-1]:
                m *= d
            flops += 2 * m * k * n
    return flops


def torch_ms(arch, classes, size):
    torch.set_num_threads(1)
    model = getattr(torchvision.models, arch)(num_classes=classes).eval()
    out = {}
    with torch.no_grad():
        for batch in (1, 8, 32):
            x = torch.randn(batch, 3, size, size)
            model(x)
            runs = max(3, 64 // batch)
            best = float('inf')
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(runs):
                    model(x)
                best = min(best, (time.perf_counter() - start) / runs / batch * 1000)
            out[str(batch)] = best
    return out


if __name__ == '__main__':
    onnx_path, arch, classes, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps({'flops': onnx_flops(onnx_path), 'torch_ms': torch_ms(arch, classes, size)}))
