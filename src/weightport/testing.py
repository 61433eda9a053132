"""Assertions the test suite uses for every model family: table checks and twin parity."""
from __future__ import annotations

from typing import Any

from .comparison import Metrics
from .layout import count_trainable  # noqa: F401  (the families' tests count parameters through here)
from .tablecheck import table_problems
from .verification import verify_model


def check_table(name: str, **model_kwargs: Any) -> None:
    """Fail with a full listing unless `name`'s table pairs its two twins exactly."""
    problems = table_problems(name, **model_kwargs)
    assert not problems, f"mapping table of {name} does not fit its twins:\n  " + "\n  ".join(problems)


def parity(name: str, batch_size: int = 1, seed: int = 0, **model_kwargs: Any) -> Metrics:
    """Both twins with the same non-trivial weights (converted through the real file path) on one
    seeded batch, on the CPU: the metrics of their worst-agreeing output."""
    result = verify_model(name, batch_size=batch_size, seed=seed, device="cpu", model_kwargs=model_kwargs)
    return result.worst.metrics
