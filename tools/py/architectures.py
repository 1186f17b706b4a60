"""Rebuilds a torchvision classifier around a state dict: class count and head form come from the checkpoint."""

import difflib
import warnings

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


def _construct(arch, state_dict, num_classes=None, shapes_only=False):
    kwargs = {"weights": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if arch in _AUX_PREFIXES:
        kwargs["aux_logits"] = any(k.startswith(_AUX_PREFIXES[arch]) for k in state_dict)
        # The weights are overwritten by the checkpoint; skipping torchvision's init also silences its warning.
        kwargs["init_weights"] = False
    if not shapes_only:
        return models.get_model(arch, **kwargs)
    with warnings.catch_warnings(), _MetaParameters():
        # Constructors warn about their own internals (e.g. swin's meshgrid): noise for a shapes-only build.
        warnings.simplefilter("ignore")
        return models.get_model(arch, **kwargs)


def _head_name(model):
    """The classifier: the last Linear, or the last Conv2d for convolutional heads (SqueezeNet)."""
    modules = list(model.named_modules())
    for kind in (nn.Linear, nn.Conv2d):
        names = [name for name, m in modules if isinstance(m, kind) and not name.lower().startswith("aux")]
        if names:
            return names[-1]
    raise UserError("cannot find a classifier layer (Linear or Conv2d) in this architecture")


def _head_form(head, state_dict):
    """Where and how the checkpoint stores its classifier: (prefix, "plain" | "sequential", weight) or None.

    Looked for at the arch's head, then at each enclosing module, as users replace either: `fc.weight` is a
    plain layer, `fc.0.weight` alone the original demo's Sequential(Linear), and `classifier.weight` in an
    EfficientNet (whose head is classifier.1) a Linear put in place of the whole classifier.
    """
    parts = head.split(".")
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[:depth])
        layers = sorted({k[len(prefix) + 1:].split(".")[0] for k in state_dict if k.startswith(prefix + ".")})
        if f"{prefix}.weight" in state_dict:
            return prefix, "plain", state_dict[f"{prefix}.weight"]
        if layers == ["0"] and f"{prefix}.0.weight" in state_dict:
            return prefix, "sequential", state_dict[f"{prefix}.0.weight"]
        if prefix == head and len(layers) > 1 and all(layer.isdigit() for layer in layers):
            names = ", ".join(f"{head}.{n}" for n in layers)
            raise UserError(f"the checkpoint's head {head} has several layers ({names}): a state dict does not "
                            f"record the activations between them, so it cannot be rebuilt; only a single-layer "
                            f"head ({head}.weight or {head}.0.weight) is supported")
    return None


def _build(arch, state_dict, head, form, shapes_only=False):
    """The arch with the checkpoint's class count (aux heads included) and its classifier laid out as saved."""
    if form is None:
        return _construct(arch, state_dict, shapes_only=shapes_only)
    prefix, kind, weight = form
    model = _construct(arch, state_dict, weight.shape[0], shapes_only)
    if prefix == head and kind == "plain":
        return model
    parent_name, _, attr = prefix.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if prefix == head:
        layer = getattr(parent, attr)
    elif weight.dim() == 2:
        bias = f"{prefix}.0.bias" if kind == "sequential" else f"{prefix}.bias"
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias in state_dict)
    else:
        return model
    setattr(parent, attr, nn.Sequential(layer) if kind == "sequential" else layer)
    return model


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
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("shape mismatch (checkpoint vs arch)", shapes)):
        if items:
            more = f", ... {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
    return "; ".join(parts)


def _suggest(arch, state_dict):
    """The archs whose layers fit the checkpoint, heads aside: cheap, as they are built on the meta device."""
    fitting = []
    for candidate in classification_archs():
        if candidate != arch:
            model = _construct(candidate, state_dict, shapes_only=True)
            # The whole top-level module holding the head is left out: users replace it as often as the head.
            if not any(_mismatches(model, state_dict, skip_prefix=_head_name(model).split(".")[0] + ".")):
                fitting.append(candidate)
    if fitting:
        return "it fits --arch " + " or --arch ".join(fitting)
    return "no torchvision classification model fits it (is it a classifier's state dict?)"


def build_model(arch, state_dict):
    """Builds `arch` with the checkpoint's head and class count and loads the state dict strictly.

    Returns (model in eval mode, num_classes, head description such as "fc: Sequential(Linear)").
    """
    archs = classification_archs()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UserError(f"unknown --arch {arch!r}; {hint}torchvision classification models: {', '.join(archs)}")
    # Shapes-only builds check the fit first: a wrong --arch then costs no weight initialisation.
    head = _head_name(_construct(arch, state_dict, shapes_only=True))
    form = _head_form(head, state_dict)
    probe = _build(arch, state_dict, head, form, shapes_only=True)
    missing, unexpected, shapes = _mismatches(probe, state_dict)
    if missing or unexpected or shapes:
        top = head.split(".")[0] + "."
        if not any(_mismatches(probe, state_dict, skip_prefix=top)):
            found = [k for k in state_dict if k.startswith(top)][:_SHOWN]
            raise UserError(f"the checkpoint fits --arch {arch} except its classifier: expected {head}.weight or "
                            f"{head}.0.weight, found {', '.join(found) or f'nothing under {top[:-1]}'}")
        raise UserError(f"the checkpoint does not fit --arch {arch}: {_describe(missing, unexpected, shapes)}; "
                        f"{_suggest(arch, state_dict)}")
    model = _build(arch, state_dict, head, form)
    state_dict = dict(state_dict)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state_dict.setdefault(key, value)
    model.load_state_dict(state_dict, strict=True)
    prefix, kind, weight = form
    layer = type(model.get_submodule(prefix if kind == "plain" else f"{prefix}.0")).__name__
    return model.eval(), weight.shape[0], f"{prefix}: {layer if kind == 'plain' else f'Sequential({layer})'}"
