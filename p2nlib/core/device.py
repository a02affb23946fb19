"""The compute device (``auto``: cuda when present) and seeding of every random generator."""
from __future__ import annotations

import random

import numpy as np
import torch

from p2nlib.core.errors import InputError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means cuda when present, else cpu. An unavailable device is a clear error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
