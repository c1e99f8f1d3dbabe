"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A nested state (model and optimizer ``state_dict``, counters, RNG state) is split into a flat dict of
tensors, saved with safetensors, and a JSON tree in which each tensor is replaced by a reference. The JSON
file is written last and records the SHA-256 of the tensor file, so a checkpoint cut short by a killed run
is recognised and skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

_TENSOR = "__tensor__"


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(obj, dict):
        if not all(isinstance(k, str | int) for k in obj):
            raise TypeError(f"{path}: checkpoint dict keys must be str or int")
        return {"__dict__": [[k, _flatten(v, f"{path}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {"__list__": [_flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"{path}: cannot store a {type(obj).__name__} in a checkpoint")


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if _TENSOR in node:
            return tensors[node[_TENSOR]]
        if "__dict__" in node:
            return {k: _unflatten(v, tensors) for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_unflatten(v, tensors) for v in node["__list__"]]
    return node


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``path.safetensors`` and ``path.json`` (the JSON last, as the commit marker)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "s", tensors)
    tensor_file = path.with_suffix(".safetensors")
    tmp = tensor_file.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, tensor_file)
    meta = {"format": "mmdx-checkpoint-1", "sha256": _sha256(tensor_file), "state": tree}
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_json, path.with_suffix(".json"))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state saved at ``path``, or ``None`` when it is incomplete or damaged."""
    json_file, tensor_file = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not json_file.is_file() or not tensor_file.is_file():
        return None
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if meta.get("format") != "mmdx-checkpoint-1" or meta.get("sha256") != _sha256(tensor_file):
        return None
    return _unflatten(meta["state"], load_file(str(tensor_file)))
