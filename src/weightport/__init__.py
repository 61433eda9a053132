"""weightport: move trained weights between PyTorch and PaddlePaddle, and prove nothing was lost.

The public API is imported lazily so that `import weightport` (and the CLI's start-up) stays light:
    weightport.list_models()
    weightport.create_model(name, framework="torch" | "paddle", **kwargs)
    weightport.convert(model, src, dst, **options) -> Summary
    weightport.verify(...) -> VerifyResult
"""
from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "list_models": "registry",
    "create_model": "registry",
    "convert": "conversion",
    "verify": "verification",
    "read_checkpoint": "formats",
    "write_checkpoint": "formats",
    "load_table": "mapping",
    "UserError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'weightport' has no attribute {name!r}")
