"""What depends on the Python or framework version, or on their private internals, in one place,
with the versions it was checked on (docs/compatibility.md).

weightport declares Python 3.10 to 3.13, torch 2.14, timm 1.0 and paddlepaddle 3.3 (pyproject.toml).
The private torch internals below were checked on torch 2.14.1; a torch that lacks them fails here,
naming them, not somewhere deep in a trace. atexit._run_exitfuncs was checked on CPython 3.10 to 3.13.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

__all__ = ["tomllib", "exit_now", "torch_dispatch_mode", "fx_patches_reverted", "fx_wraps_suspended", "einops_ellipsis"]


def exit_now(code: int) -> None:
    """Leave the process at once with `code`, after what an exit must do: the atexit handlers
    (CPython's private atexit._run_exitfuncs, in 3.10 to 3.13) and flushing the standard streams.
    The interpreter's teardown is skipped; a stream that cannot be flushed (a closed pipe) makes it
    the ordinary exit, which reports it."""
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(code)
    os._exit(code)


def torch_dispatch_mode():
    """torch.utils._python_dispatch.TorchDispatchMode: intercepts every aten call of the ops run
    within it (models.weights.overwrite_only samples initialisations with it). Its class method
    `_should_skip_dynamo` is overridden there to keep torch._dynamo (2 s to import) out."""
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


def fx_patches_reverted():
    """torch.fx._symbolic_trace._maybe_revert_all_patches: a context in which the functions fx
    patches while tracing (math, torch) are their originals again, for the tracer's shadow run."""
    from torch.fx._symbolic_trace import _maybe_revert_all_patches

    return _maybe_revert_all_patches()


@contextlib.contextmanager
def fx_wraps_suspended():
    """Within the block, no function or method registered with `torch.fx.wrap` (timm's fx leaves) is
    patched by fx's tracer: torch.fx._symbolic_trace's _wrapped_fns_to_patch and
    _wrapped_methods_to_patch are emptied, then restored."""
    import torch.fx._symbolic_trace as fx_trace

    functions, methods = dict(fx_trace._wrapped_fns_to_patch), list(fx_trace._wrapped_methods_to_patch)
    fx_trace._wrapped_fns_to_patch.clear()
    fx_trace._wrapped_methods_to_patch.clear()
    try:
        yield
    finally:
        fx_trace._wrapped_fns_to_patch.update(functions)
        fx_trace._wrapped_methods_to_patch.extend(methods)


def einops_ellipsis() -> str:
    """einops.parsing._ellipsis: the one character that stands for `...` in a ParsedExpression's
    composition (checked on einops 0.8.2)."""
    from einops.parsing import _ellipsis

    return _ellipsis
