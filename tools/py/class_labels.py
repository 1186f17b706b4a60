"""Class labels for export.json: a JSON list, an {index: name} map, or cat_to_name.json with class_to_idx."""

import json

from export_errors import UserError


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{what} file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} file {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} file {path} is not valid UTF-8 JSON: {e}") from None


def check_class_to_idx(mapping, source):
    """A {folder name: index} dict as torchvision's ImageFolder builds it."""
    if not isinstance(mapping, dict) or not mapping or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in mapping.items()):
        raise UserError(f"class_to_idx from {source} must map class folder names (strings) to indices (integers)")
    return mapping


def _check_names(names, path):
    bad = next((n for n in names if not isinstance(n, str) or not n.strip()), None)
    if bad is not None:
        raise UserError(f"labels file {path}: every label must be a non-empty string, found {json.dumps(bad)}")
    return names


def resolve_labels(raw, path, num_classes, class_to_idx):
    """Returns the list of `num_classes` label strings, label i naming output i of the model.

    `raw` is the parsed labels file; a dict keyed by class folder names is mapped through `class_to_idx`
    (checkpoint or --class-to-idx), a dict keyed "0".."C-1" is read as {index: name}.
    """
    if isinstance(raw, list):
        if len(raw) != num_classes:
            raise UserError(f"labels file {path} lists {len(raw)} labels but the model has {num_classes} classes")
        return _check_names(raw, path)
    if not isinstance(raw, dict):
        raise UserError(f"labels file {path} must hold a JSON list of names or an object, not {type(raw).__name__}")
    if not raw:
        raise UserError(f"labels file {path} is an empty JSON object")
    if class_to_idx is not None and set(raw) == set(class_to_idx):
        indices = sorted(class_to_idx.values())
        if indices != list(range(num_classes)):
            raise UserError(f"class_to_idx maps {len(class_to_idx)} folders to indices {indices[0]}..{indices[-1]}"
                            f" but the model has {num_classes} classes (0..{num_classes - 1})")
        names = [None] * num_classes
        for folder, index in class_to_idx.items():
            names[index] = raw[folder]
        return _check_names(names, path)
    if set(raw) == {str(i) for i in range(num_classes)}:
        return _check_names([raw[str(i)] for i in range(num_classes)], path)
    keys = sorted(raw, key=lambda k: (len(k), k))
    hint = ("; if they are class folder names (cat_to_name.json), give the training set's class_to_idx with "
            "--class-to-idx FILE or save it in the checkpoint" if class_to_idx is None else
            f"; nor do they match the {len(class_to_idx)} folder names of class_to_idx")
    raise UserError(f"labels file {path} has {len(raw)} keys ({keys[0]}..{keys[-1]}) that are not the model's "
                    f"class indices 0..{num_classes - 1}{hint}")
