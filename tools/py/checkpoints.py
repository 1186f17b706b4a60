"""Checkpoint reading: every form users save, loaded without running pickled code unless they trust the file."""

import hashlib
import inspect
import pickle
import types
import zipfile
from collections import OrderedDict
from unittest import mock

from export_errors import UserError

# torch.save's legacy (pre-1.6) format opens with a pickled magic number; the zip format holds <name>/data.pkl.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# DataParallel/DistributedDataParallel, torch.compile and LightningModule's `self.model` prefix every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_checkpoint_file(path):
    """Refuses a missing, unreadable or non-PyTorch file before torch is imported (cheap, clear errors)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path} (pass CHECKPOINT=path/to/best.pth)") from None
    except IsADirectoryError:
        raise UserError(f"checkpoint is a directory, not a file: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if head.startswith(_LEGACY_MAGIC):
        return
    names = _zip_names(path, head)
    if any(name.endswith("/constants.pkl") for name in names):
        raise UserError(f"{path} is a TorchScript archive (torch.jit.save), not a checkpoint: save the weights "
                        f"with torch.save(model.state_dict(), path)")
    if any(name.endswith("/data.pkl") for name in names):
        return
    raise UserError(f"not a PyTorch checkpoint: {path} (expected a file written by torch.save)")


def _zip_names(path, head):
    """The member names of a zip file; of a truncated one, the first (torch.save writes <name>/data.pkl first)."""
    if not head.startswith(b"PK\x03\x04"):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except zipfile.BadZipFile:
        # Let torch.load report the damage of what was a checkpoint, rather than call it something else.
        name_length = int.from_bytes(head[26:28], "little")
        return [head[30:30 + name_length].decode("utf-8", "replace")]


def _torch_load(path, trust):
    import torch

    safe_supported = "weights_only" in inspect.signature(torch.load).parameters
    if not trust and not safe_supported:
        raise UserError(f"torch {torch.__version__} cannot load checkpoints safely (no weights_only); "
                        f"pass --trust-checkpoint if you trust {path}")
    try:
        if trust:
            return torch.load(path, map_location="cpu", **({"weights_only": False} if safe_supported else {}))
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            # torch < 2.0's weights_only reader refuses plain opcodes such as BINFLOAT (a float like lr=0.1 in
            # an optimizer state); the same allow-list of classes over the full opcode set reads those safely.
            if "Unsupported operand" not in str(e):
                raise
            return _load_allow_listed(path)
    except pickle.UnpicklingError as e:
        if trust:
            raise UserError(f"corrupt checkpoint {path}: {_first_line(e)}") from None
        # torch names the first object it refused, e.g. "Unsupported class torchvision.models.resnet.ResNet".
        reason = _first_line(e).split("WeightsUnpickler error: ")[-1]
        raise UserError(f"checkpoint {path} holds pickled Python objects ({reason}); loading it runs code from "
                        f"the file: pass --trust-checkpoint only if you trust its source, or re-save it with "
                        f"torch.save(model.state_dict(), path)") from None
    except (ModuleNotFoundError, AttributeError) as e:
        raise UserError(f"checkpoint {path} needs Python code that is not installed ({_first_line(e)}); "
                        f"re-save it with torch.save(model.state_dict(), path)") from None
    except (RuntimeError, EOFError, KeyError, ValueError) as e:
        raise UserError(f"corrupt or truncated checkpoint {path}: {_first_line(e) or type(e).__name__}") from None


def _load_allow_listed(path):
    """torch.load(weights_only=True) with an unpickler that resolves only the globals torch's weights_only allows.

    Python's documented way to restrict unpickling: every class or function a pickle names or calls goes through
    find_class, so refusing all but tensors, storages, dtypes and OrderedDict runs no foreign code. torch 1.13
    ignores torch.load's pickle_module argument, so the weights_only reader it uses is swapped for the call.
    """
    import torch
    from torch._weights_only_unpickler import _get_allowed_globals

    used = []

    class AllowListUnpickler(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            used.append(True)

        def find_class(self, module, name):
            allowed = _get_allowed_globals().get(f"{module}.{name}")
            if allowed is None:
                raise pickle.UnpicklingError(f"Unsupported class {module}.{name}")
            return allowed

    reader = types.ModuleType("allow_listed_pickle")
    reader.Unpickler = AllowListUnpickler
    reader.load = lambda file, **kwargs: AllowListUnpickler(file, **kwargs).load()
    with mock.patch.object(torch.serialization, "_weights_only_unpickler", reader):
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not used:
        # This torch reads weights_only files some other way: refuse rather than trust an unknown path.
        raise pickle.UnpicklingError("Unsupported operand (torch's safe loader cannot read this file)")
    return loaded


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _is_state_dict(obj):
    import torch

    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefixes(state_dict):
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items())
                changed = True
    return state_dict


def _find_state_dict(obj, path):
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), ""
    if _is_state_dict(obj):
        return obj, ""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return inner.state_dict(), f"['{key}']"
            if _is_state_dict(inner):
                return inner, f"['{key}']"
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        held = "".join(f" ('{k}' holds a {type(obj[k]).__name__})" for k in _WRAPPER_KEYS if k in obj)
        raise UserError(f"no state dict in checkpoint {path}: its top-level keys are {keys}{held}; expected "
                        f"'state_dict', 'model_state_dict' or 'model' holding a dict of tensors, or such a dict")
    raise UserError(f"no state dict in checkpoint {path}: it holds a {type(obj).__name__}; expected a dict "
                    f"of tensors, a dict with 'state_dict', 'model_state_dict' or 'model', or an nn.Module")


def _class_to_idx(obj):
    """What ImageFolder users save beside the weights ({folder name: index}); checked only if labels need it."""
    return obj.get("class_to_idx") if isinstance(obj, dict) else getattr(obj, "class_to_idx", None)


def read_checkpoint(path, trust=False):
    """Loads a checkpoint file on the CPU.

    Returns (state_dict, class_to_idx or None, where): `where` names the key the state dict came from
    ("['state_dict']", "" for a bare one), with wrapper prefixes such as `module.` already stripped.
    """
    check_checkpoint_file(path)
    obj = _torch_load(path, trust)
    state_dict, where = _find_state_dict(obj, path)
    return _strip_prefixes(state_dict), _class_to_idx(obj), where
