"""Trained parts and cached results on disk, with provenance.

Every expensive thing the book makes (a trained VAE or aligner, a batch of optimisation runs, a set
of evaluation renders) is stored as safetensors next to a JSON record of what produced it: the
profile, the config, the SHA-256 of the weights, and the checksums of its *inputs* (the dataset,
the embedding cache, another part). Writes are atomic (temporary file, then rename), so a crash
never leaves half a file. Loading compares the recorded inputs with the current ones and refuses a
part made from other inputs, naming the notebook that rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from p2nlib.core.errors import ArtifactError

FORMAT = 1


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (checksums in manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key_digest(key: Any) -> str:
    """Short stable digest of a JSON-able key (sorted keys), used to name cache files."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tensor_digest(*tensors) -> str:
    """Short digest of tensors' exact contents (or of a dict of them, by sorted key)."""
    h = hashlib.sha256()
    for t in tensors:
        items = sorted(t.items()) if isinstance(t, dict) else [("", t)]
        for k, v in items:
            v = torch.as_tensor(v).detach().cpu().contiguous()
            h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
            h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


def code_digest(*modules) -> str:
    """Short digest of the source of modules: results cached under it are recomputed when that code changes."""
    import inspect

    h = hashlib.sha256()
    for m in modules:
        h.update(inspect.getsource(m).encode())
    return h.hexdigest()[:16]


def write_json_atomic(path: Path, data, indent: int = 1) -> None:
    """Write JSON to a temporary file, then rename: a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Atomically write tensors as safetensors; returns the file's SHA-256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    return sha256(path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def save_part(folder: Path, name: str, state: dict[str, torch.Tensor], *, profile: str, config: dict,
              inputs: dict[str, str], extra: dict | None = None) -> dict:
    """Save a trained part ``<name>.safetensors`` + ``<name>.json`` (profile, config, weights and input
    checksums). Returns the record."""
    sha = save_tensors(folder / f"{name}.safetensors", state)
    record = {"format": FORMAT, "profile": profile, "config": config, "weights_sha256": sha,
              "inputs": dict(inputs), "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
    write_json_atomic(folder / f"{name}.json", record)
    return record


def load_part(folder: Path, name: str, *, profile: str, inputs: dict[str, str], what: str,
              rebuild: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a part saved by :func:`save_part`, refusing it when it is missing, damaged, made for another
    profile or made from other inputs. ``what`` names it in messages; ``rebuild`` is the command that
    makes it again (e.g. ``make book ONLY=03``). Returns ``(state, record)``."""
    meta_path, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not meta_path.exists() or not weights.exists():
        raise ArtifactError(f"no trained {what} in {folder}; train it with `{rebuild}`")
    try:
        record = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{meta_path} cannot be read ({err}); rebuild the {what} with `{rebuild}`") from None
    if record.get("profile") != profile:
        raise ArtifactError(f"{meta_path} was trained for profile {record.get('profile')!r}, not {profile!r}; "
                            f"use --profile {record.get('profile')} or rebuild it with `{rebuild}` "
                            f"(PROFILE={profile})")
    if sha256(weights) != record.get("weights_sha256"):
        raise ArtifactError(f"{weights} does not match its recorded checksum (changed or truncated); rebuild "
                            f"the {what} with `{rebuild}`")
    had = record.get("inputs", {})
    untracked = [k for k in inputs if k not in had]
    if untracked:
        raise ArtifactError(f"the {what} in {folder} was saved by an older version that did not record its "
                            f"{' and '.join(untracked)}; rebuild it with `{rebuild}`")
    stale = [k for k, v in inputs.items() if had.get(k) != v]
    if stale:
        raise ArtifactError(f"the {what} in {folder} was trained on another {' and '.join(stale)} than the one on "
                            f"disk now (the inputs were rebuilt since); rebuild it with `{rebuild}`")
    return load_tensors(weights), record


def cached(folder: Path, name: str, key: dict, compute: Callable[[], tuple[dict[str, torch.Tensor], dict]],
           refresh: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """Compute-once storage of an expensive result, keyed by what produced it.

    ``key`` holds everything the result depends on (profile, config, input checksums); the file is
    ``<name>-<digest(key)>.safetensors`` with a JSON record. ``compute()`` returns ``(tensors, data)``
    (``data`` JSON-able) and runs only when no file with this key exists, the file is damaged, or
    ``refresh``. A changed input gives another key, so it is computed afresh.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{key_digest(key)}"
    weights, meta_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    if not refresh and weights.exists() and meta_path.exists():
        try:
            record = json.loads(meta_path.read_text())
            if record.get("key") == json.loads(json.dumps(key, default=str)) and \
                    record.get("sha256") == sha256(weights):
                return load_tensors(weights), record["data"]
        except (OSError, json.JSONDecodeError, KeyError):
            pass
    tensors, data = compute()
    sha = save_tensors(weights, tensors)
    write_json_atomic(meta_path, {"format": FORMAT, "key": key, "sha256": sha, "data": data,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return tensors, data
