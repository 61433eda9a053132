"""Legacy (pre-1.6) PyTorch checkpoints, read through torch.load(weights_only=True).

That format interleaves pickles and raw storages in one stream; torch's own restricted
loader is the safe way to read it, so this is the one reader that needs torch installed.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import name_of
from ..errors import CheckpointError
from .checkpoint import LazyTensor


def read(path: str) -> object:
    try:
        import torch
    except ImportError:
        raise CheckpointError(path, "is a legacy PyTorch checkpoint; reading it needs torch installed") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"refused or unreadable legacy checkpoint ({message})") from None
    return _to_lazy(obj, torch)


def _to_lazy(obj, torch):
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            return LazyTensor.of(tensor.view(torch.int16).numpy().view(np.uint16), "bfloat16")
        array = tensor.numpy()
        return LazyTensor.of(array, name_of(array.dtype))
    if isinstance(obj, dict):
        return {k: _to_lazy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_lazy(v, torch) for v in obj)
    return obj
