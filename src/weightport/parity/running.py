"""Running a twin on a batch: where each framework runs, and its outputs as named float64 arrays."""
from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidArgument
from ..frameworks import quiet_paddle_import
from .inputs import Batch, paddle_inputs, torch_inputs
from .metrics import flatten_outputs

DEVICES = ("auto", "cpu", "gpu")


def choose_devices(device: str) -> dict[str, str]:
    """Where each framework runs: its GPU when it has one (auto/gpu), else the CPU."""
    if device not in DEVICES:
        raise InvalidArgument("device", device, f"expected one of {', '.join(DEVICES)}")
    if device == "cpu":
        return {"torch": "cpu", "paddle": "cpu"}
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # TF32 off in both frameworks
    import torch

    paddle = quiet_paddle_import()
    devices = {
        "torch": "cuda" if torch.cuda.is_available() else "cpu",
        "paddle": "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu",
    }
    if device == "gpu" and set(devices.values()) == {"cpu"}:
        raise InvalidArgument("device", device, "neither torch nor paddle sees a GPU here")
    if devices["torch"] == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return devices


def use_paddle_device(device: str) -> None:
    quiet_paddle_import().set_device(device)


def torch_forward(model, batch: np.ndarray | Batch, device: str = "cpu", dtype=None) -> list[tuple[str, np.ndarray]]:
    import torch

    args, kwargs = torch_inputs(batch, device, dtype)
    with torch.no_grad():
        return [(n, t.detach().cpu().double().numpy()) for n, t in flatten_outputs(model(*args, **kwargs))]


def paddle_forward(model, batch: np.ndarray | Batch) -> list[tuple[str, np.ndarray]]:
    paddle = quiet_paddle_import()
    args, kwargs = paddle_inputs(batch)
    with paddle.no_grad():
        return [(n, t.numpy().astype(np.float64)) for n, t in flatten_outputs(model(*args, **kwargs))]
