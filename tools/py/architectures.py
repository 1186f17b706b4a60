"""Rebuilds a torchvision classifier around a state dict: class count and head form come from the checkpoint."""

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torchvision import models

from export_errors import UserError

# Auxiliary classifiers only run in training; build them only when the checkpoint carries their weights.
_AUX_PREFIXES = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
_SHOWN = 3


def classification_archs():
    return sorted(models.list_models(module=models))


class _MetaParameters(TorchFunctionMode):
    """Creates layer parameters (torch.empty) on the meta device: shapes without memory or init time."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _construct(arch, state_dict, shapes_only=False):
    kwargs = {"weights": None}
    if arch in _AUX_PREFIXES:
        kwargs["aux_logits"] = any(k.startswith(_AUX_PREFIXES[arch]) for k in state_dict)
        # The weights are overwritten by the checkpoint; skipping torchvision's init also silences its warning.
        kwargs["init_weights"] = False
    if not shapes_only:
        return models.get_model(arch, **kwargs)
    with _MetaParameters():
        return models.get_model(arch, **kwargs)


def _head_name(model):
    """The classifier: the last Linear, or the last Conv2d for convolutional heads (SqueezeNet)."""
    modules = list(model.named_modules())
    for kind in (nn.Linear, nn.Conv2d):
        names = [name for name, m in modules if isinstance(m, kind) and not name.lower().startswith("aux")]
        if names:
            return names[-1]
    raise UserError("cannot find a classifier layer (Linear or Conv2d) in this architecture")


def _new_layer(template, weight, has_bias):
    """A layer like `template` (the arch's own head) with the checkpoint's output count."""
    if isinstance(template, nn.Linear):
        return nn.Linear(template.in_features, weight.shape[0], bias=has_bias)
    return nn.Conv2d(template.in_channels, weight.shape[0], template.kernel_size, template.stride,
                     template.padding, bias=has_bias)


def _fit_head(model, head, state_dict):
    """Replaces the arch's head by the checkpoint's: `fc.weight` (plain) or `fc.0.weight` (Sequential(Linear)).

    Returns (num_classes, head form) or None when the checkpoint has no recognisable head for this arch.
    """
    parent_name, _, attr = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    template = getattr(parent, attr)
    layers = sorted({k[len(head) + 1:].split(".")[0] for k in state_dict if k.startswith(head + ".")})
    if f"{head}.weight" in state_dict:
        weight, prefix = state_dict[f"{head}.weight"], head
    elif layers == ["0"] and f"{head}.0.weight" in state_dict:
        weight, prefix = state_dict[f"{head}.0.weight"], f"{head}.0"
    elif len(layers) > 1 and all(layer.isdigit() for layer in layers):
        raise UserError(f"the checkpoint's head {head} has several layers ({', '.join(head + '.' + n for n in layers)}):"
                        f" the state dict does not record the activations between them, so it cannot be rebuilt;"
                        f" only a single Linear head ({head}.weight or {head}.0.weight) is supported")
    else:
        return None
    layer = _new_layer(template, weight, f"{prefix}.bias" in state_dict)
    setattr(parent, attr, layer if prefix == head else nn.Sequential(layer))
    form = f"{type(layer).__name__}" if prefix == head else f"Sequential({type(layer).__name__})"
    return weight.shape[0], f"{head}: {form}"


def _mismatches(model, state_dict, skip_prefix=None):
    expected = model.state_dict()

    def relevant(k):
        return skip_prefix is None or not k.startswith(skip_prefix)

    # num_batches_tracked only counts training steps; older checkpoints lack it and eval never reads it.
    missing = [k for k in expected if k not in state_dict and relevant(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected and relevant(k)]
    shapes = [f"{k} {list(state_dict[k].shape)} vs {list(expected[k].shape)}" for k in expected
              if k in state_dict and relevant(k) and state_dict[k].shape != expected[k].shape]
    return missing, unexpected, shapes


def _describe(missing, unexpected, shapes):
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch (checkpoint vs arch)",
                                                                                shapes)):
        if items:
            more = f", ... {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
    return "; ".join(parts)


def _suggest(arch, state_dict):
    """The archs whose layers (head aside) fit the checkpoint: cheap, as they are built on the meta device."""
    fitting = []
    for candidate in classification_archs():
        if candidate != arch:
            model = _construct(candidate, state_dict, shapes_only=True)
            if not any(_mismatches(model, state_dict, _head_name(model) + ".")):
                fitting.append(candidate)
    if fitting:
        return "it fits --arch " + " or --arch ".join(fitting)
    return "no torchvision classification model fits it (is it a classifier's state dict?)"


def build_model(arch, state_dict):
    """Builds `arch` with the checkpoint's head and loads the state dict strictly.

    Returns (model in eval mode, num_classes, head description such as "fc: Sequential(Linear)").
    """
    if arch not in classification_archs():
        raise UserError(f"unknown --arch {arch!r}; torchvision classification models: "
                        + ", ".join(classification_archs()))
    model = _construct(arch, state_dict)
    head = _head_name(model)
    fitted = _fit_head(model, head, state_dict)
    missing, unexpected, shapes = _mismatches(model, state_dict)
    if missing or unexpected or shapes:
        raise UserError(f"the checkpoint does not fit --arch {arch}: {_describe(missing, unexpected, shapes)}; "
                        f"{_suggest(arch, state_dict)}")
    state_dict = dict(state_dict)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state_dict.setdefault(key, value)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), fitted[0], fitted[1]
