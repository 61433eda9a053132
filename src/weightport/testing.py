"""Assertions the test suite uses for every model family: table checks and twin parity."""
from __future__ import annotations

from typing import Any

from .comparison import Metrics
from .layout import count_trainable  # noqa: F401  (the families' tests count parameters through here)
from .pair import resolve
from .tablecheck import table_problems
from .verification import verify_model


def check_table(model, **model_kwargs: Any) -> None:
    """Fail with a full listing unless the table of `model` (anything `pair.resolve` takes) pairs its two twins exactly."""
    pair = resolve(model)
    problems = table_problems(pair, **model_kwargs)
    assert not problems, f"mapping table of {pair.name} does not fit its twins:\n  " + "\n  ".join(problems)


def parity(model, batch_size: int = 1, seed: int = 0, **model_kwargs: Any) -> Metrics:
    """Both twins with the same non-trivial weights (converted through the real file path) on one
    seeded batch, on the CPU: the metrics of their worst-agreeing output."""
    result = verify_model(model, batch_size=batch_size, seed=seed, device="cpu", model_kwargs=model_kwargs)
    return result.worst.metrics
