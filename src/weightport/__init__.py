"""weightport: move trained weights between PyTorch and PaddlePaddle, and prove nothing was lost.

The public API is imported lazily so that `import weightport` (and the CLI's start-up) stays light.
A model is a registered name, a ported folder's path or a `TwinPair` (`resolve` makes one):
    weightport.list_models()
    weightport.resolve(model) -> TwinPair
    weightport.create_model(model, framework="torch" | "paddle", **kwargs)
    weightport.convert(model, src, dst, **options) -> Summary
    weightport.verify(model or models, VerifyOptions(...) or options by name) -> VerifyResult
"""
from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "list_models": "models.registry",
    "create_model": "models.pair",
    "resolve": "models.pair",
    "TwinPair": "models.pair",
    "convert": "conversion",
    "verify": "parity.verification",
    "VerifyOptions": "parity.verification",
    "read_checkpoint": "formats",
    "write_checkpoint": "formats",
    "load_table": "tables.loading",
    "UserError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'weightport' has no attribute {name!r}")
