"""Moving weights in and out of live twins, strictly, and giving a twin non-trivial weights.

Paddle's `set_state_dict` only warns on a missing or misshaped key (and keeps the random
init), so `load_paddle` checks names, shapes and dtypes itself before loading anything.
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from .errors import LayoutError
from .formats.checkpoint import LazyTensor
from .layout import model_layout


def torch_state(model) -> dict[str, LazyTensor]:
    """A torch model's state dict as lazy numpy tensors (bfloat16 as its bits)."""
    import torch

    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            out[key] = LazyTensor.of(value.view(torch.int16).numpy().view(np.uint16), "bfloat16")
        else:
            array = value.numpy()
            out[key] = LazyTensor.of(array, dtypes.name_of(array.dtype))
    return out


def _fitted_arrays(model, framework: str, tensors: dict[str, LazyTensor]) -> dict[str, np.ndarray]:
    """Check every name and shape against the model, then cast floats to the model's own dtypes."""
    layout = model_layout(model, framework)
    tensors = {k: t.fitted_to(layout[k][0]) if k in layout else t for k, t in tensors.items()}
    problems = [f"{k}: missing" for k in layout if k not in tensors]
    problems += [f"{k}: not in the model" for k in tensors if k not in layout]
    problems += [
        f"{k}: shape {list(t.shape)}, model has {list(layout[k][0])}"
        for k, t in tensors.items()
        if k in layout and tuple(t.shape) != layout[k][0]
    ]
    if problems:
        raise LayoutError(f"weights do not fit the {framework} model: " + "; ".join(problems[:20]))
    return {
        key: np.array(dtypes.cast(t.load(), t.dtype, layout[key][1]) if t.dtype in dtypes.FLOATING else t.load())
        for key, t in tensors.items()
    }


def load_torch(model, tensors: dict[str, LazyTensor]) -> None:
    """Load into a torch model strictly, casting each float tensor to the dtype of the model's own."""
    import torch

    arrays = _fitted_arrays(model, "torch", tensors)
    model.load_state_dict({key: torch.from_numpy(array) for key, array in arrays.items()}, strict=True)


def load_paddle(model, tensors: dict[str, LazyTensor]) -> None:
    """Load into a Paddle layer after checking every name and shape, casting floats to the layer's dtype."""
    model.set_state_dict(_fitted_arrays(model, "paddle", tensors))


def randomize_torch(model, seed: int = 0) -> None:
    """Give every floating parameter and buffer deterministic, non-trivial values.

    Weights keep the scale of the model's own initialisation (so activations stay O(1)); tensors
    the initialisation leaves constant (biases, norm affines, zero-initialised layers, layer
    scales) and BatchNorm statistics get random values, since default ones hide bugs.
    """
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            shape = tuple(value.shape)
            if key.endswith("running_var"):
                new = rng.uniform(0.5, 1.5, shape)
            elif key.endswith("running_mean"):
                new = rng.normal(0.0, 0.2, shape)
            elif value.ndim <= 1:
                # biases and norm weights: their init (often 0 or 1) plus a perturbation
                new = value.cpu().double().numpy() + rng.normal(0.0, 0.2, shape)
            else:
                std = float(value.double().std()) if value.numel() > 1 else 0.0
                fan_in = max(1, value.numel() // shape[0])
                new = rng.normal(0.0, std if std > 0 else 1.0 / np.sqrt(fan_in), shape)
            value.copy_(torch.from_numpy(np.asarray(new)).to(value.dtype))
