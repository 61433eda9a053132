"""Reusable layers for the hand-written twins, apart from the model definitions (as timm keeps them):
`torch_layers` for the torch twins (so that they need not import timm), `paddle_layers` for the Paddle
twins. What needs neither framework lives here."""
from __future__ import annotations


def to_2tuple(value):
    """(v, v) for a scalar, the value itself for a pair, as timm's to_2tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)
