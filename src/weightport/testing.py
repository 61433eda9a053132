"""Assertions the test suite uses for every model family: table checks, twin parity, checkpoint round trips."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models.pair import resolve
from .parity.metrics import Metrics
from .parity.verification import verify_model
from .tables.check import table_problems
from .tables.layouts import count_trainable  # noqa: F401  (the families' tests count parameters through here)


def check_table(model, **model_kwargs: Any) -> None:
    """Fail with a full listing unless the table of `model` (anything `models.pair.resolve` takes) pairs its two twins exactly."""
    pair = resolve(model)
    problems = table_problems(pair, **model_kwargs)
    assert not problems, f"mapping table of {pair.name} does not fit its twins:\n  " + "\n  ".join(problems)


def parity(model, batch_size: int = 1, seed: int = 0, **model_kwargs: Any) -> Metrics:
    """Both twins with the same non-trivial weights (converted through the real file path) on one
    seeded batch, on the CPU: the metrics of their worst-agreeing output."""
    result = verify_model(model, batch_size=batch_size, seed=seed, device="cpu", model_kwargs=model_kwargs)
    return result.worst.metrics


def load_paddle_strictly(model, state: dict) -> None:
    """Load `state` (what `paddle.load` returned) into a Paddle layer after checking every name and
    shape (`models.weights.load_paddle`): Paddle's set_state_dict only warns on a missing or misshaped key."""
    import numpy as np

    from .formats.checkpoint import paddle_array_tensor
    from .models.weights import load_paddle

    load_paddle(model, {key: paddle_array_tensor(np.asarray(value.numpy() if hasattr(value, "numpy") else value))
                        for key, value in state.items()})


@dataclass
class RoundTrip:
    """How far the Paddle twin (after conversion) and torch twin (after the way back) are from the
    torch twin's outputs, worst output first; `summary` is the conversion to Paddle's."""

    there: Metrics
    back: Metrics
    summary: Any
    shapes: list[tuple[int, ...]]  # of the torch twin's outputs


def checkpoint_round_trip(model, folder: Path, input_size: int, batch_size: int = 2, seed: int = 3,
                          **model_kwargs: Any) -> RoundTrip:
    """A torch-saved checkpoint of the torch twin (random non-trivial weights) converts and loads
    strictly into the Paddle twin; a `paddle.save`d checkpoint of that twin converts back and loads
    strictly into the torch twin; both are run on one seeded batch against the original.
    Each file is removed once read: zoo checkpoints reach hundreds of MB."""
    import torch

    from .conversion import convert
    from .frameworks import quiet_paddle_import
    from .models.weights import fill_lossless_drops, randomize_torch
    from .parity.inputs import random_batch
    from .parity.running import paddle_forward, torch_forward

    paddle = quiet_paddle_import()
    pair = resolve(model)
    folder = Path(folder)
    original = pair.create_to_overwrite("torch", **model_kwargs)
    randomize_torch(original, seed=seed)
    fill_lossless_drops(original, pair.table())
    original.eval()
    torch.save(original.state_dict(), folder / "torch.pth")
    summary = convert(pair, folder / "torch.pth", folder / "paddle.pdparams", model_kwargs=model_kwargs)
    (folder / "torch.pth").unlink()
    paddle_twin = pair.create("paddle", **model_kwargs)
    load_paddle_strictly(paddle_twin, paddle.load(str(folder / "paddle.pdparams")))
    (folder / "paddle.pdparams").unlink()
    paddle_twin.eval()
    batch = random_batch(batch_size, input_size, seed=1)
    reference = [array for _, array in torch_forward(original, batch)]

    def worst(outputs) -> Metrics:
        arrays = [array for _, array in outputs]
        assert len(arrays) == len(reference)
        return max((Metrics.compare(r, a) for r, a in zip(reference, arrays)), key=lambda m: m.max_rel)

    there = worst(paddle_forward(paddle_twin, batch))
    paddle.save(paddle_twin.state_dict(), str(folder / "saved.pdparams"))
    convert(pair, folder / "saved.pdparams", folder / "back.pth", model_kwargs=model_kwargs)
    (folder / "saved.pdparams").unlink()
    back_twin = pair.create("torch", **model_kwargs)
    back_twin.load_state_dict(torch.load(folder / "back.pth", weights_only=True), strict=True)
    (folder / "back.pth").unlink()
    back_twin.eval()
    return RoundTrip(there, worst(torch_forward(back_twin, batch)), summary, [r.shape for r in reference])
