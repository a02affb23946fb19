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


#: CPU flags of native bfloat16 arithmetic (x86: AVX512-BF16, AMX; Arm: the BF16 extension)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def native_bf16() -> bool:
    """Whether this machine computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with bfloat16
    instructions (read from ``/proc/cpuinfo``). Without them PyTorch emulates bfloat16 on the CPU, about 30x slower
    than float32 (AVX2-only CPUs), so the profiles' bfloat16 speed levers apply only where this is true."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith(("flags", "Features"))), [])
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_FLAGS)


def machine(device: str = "auto") -> str:
    """This machine in a few words, for the record of a run: the GPU when ``device`` resolves to CUDA, else the
    CPU's model, its cores and whether it computes bfloat16 natively (``"AMD EPYC, 2 cores, float32 (no native
    bfloat16)"``)."""
    import os
    import platform

    if resolve_device(device).type == "cuda":
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    bf16 = "native bfloat16" if native_bf16() else "no native bfloat16"
    return f"{model}, {os.cpu_count()} cores, {bf16}"
