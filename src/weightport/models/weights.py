"""Moving weights in and out of live twins, strictly, and giving a twin non-trivial weights.

Paddle's `set_state_dict` only warns on a missing or misshaped key (and keeps the random
init), so `load_paddle` checks names, shapes and dtypes itself before loading anything.
"""
from __future__ import annotations

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._compat import torch_dispatch_mode
from ..errors import LayoutError
from ..formats import dtypes
from ..formats.checkpoint import LazyTensor
from ..tables.layouts import model_layout


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


# `randomize_torch` reads a weight's scale from its first SCALE_SAMPLE elements, the only ones
# `overwrite_only` lets the torch initialisation compute.
SCALE_SAMPLE = 4096
# Each weight is drawn from its own generator, seeded from the main one, so that weights of this
# many elements or more can fill on several threads with values that do not depend on how many.
THREADED_DRAW = 1 << 16


def randomize_torch(model, seed: int = 0) -> None:
    """Give every floating parameter and buffer deterministic, non-trivial values.

    Weights (2-D and up) are drawn from N(0, s), s the std of the model's own initial values over
    their first SCALE_SAMPLE elements: each keeps its initialisation's scale, so activations stay
    O(1) in every family and the per-layer report's thresholds, measured on such weights, hold. No
    rule from shapes gives that scale (fan-in or fan-out, gains, fixed stds differ by family), and
    initialisations draw all elements alike, so a sample is enough; it is all that a twin built by
    `TwinPair.create_to_overwrite` computes, deterministically. A weight the init leaves constant gets
    1/sqrt(fan-in). Tensors up to 1-D (biases, norm affines, layer scales) get their init (often 0
    or 1) plus N(0, 0.2), BatchNorm statistics random values: default ones hide bugs. The draws come
    from torch's CPU generators seeded from `seed`, in float32, then cast to each tensor's dtype;
    a tensor tied to another is drawn once.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    seen, copies, pending = set(), [], []
    with torch.no_grad(), ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        for key, value in model.state_dict().items():
            if not value.is_floating_point() or value.numel() == 0 or value.data_ptr() in seen:
                continue
            seen.add(value.data_ptr())
            # Drawn in place where possible: through a copy, a tensor's memory would be written twice.
            in_place = value.dtype == torch.float32 and value.device.type == "cpu" and value.is_contiguous()
            new = value if in_place else torch.empty(value.shape)
            if key.endswith("running_var"):
                new.uniform_(0.5, 1.5, generator=generator)
            elif key.endswith("running_mean"):
                new.normal_(0.0, 0.2, generator=generator)
            elif value.ndim <= 1:
                new.copy_(torch.empty(value.shape).normal_(0.0, 0.2, generator=generator).add_(value.cpu()))
            else:
                sample = value.reshape(-1)[:SCALE_SAMPLE]
                std = float(sample.double().std()) if sample.numel() > 1 else 0.0
                std = std if std > 0 else max(1, value.numel() // value.shape[0]) ** -0.5
                own = torch.Generator().manual_seed(int(torch.randint(2**62, (), generator=generator)))
                if value.numel() >= THREADED_DRAW:
                    pending.append(pool.submit(new.normal_, 0.0, std, generator=own))
                else:
                    new.normal_(0.0, std, generator=own)
            if new is not value:
                copies.append((value, new))
        for future in pending:
            future.result()
    for value, new in copies:
        value.copy_(new)


def fill_lossless_drops(model, table) -> None:
    """Give the torch tensors that `table` drops losslessly on the way to Paddle their fill, so that
    random weights are weights the Paddle twin can hold (conversion refuses anything else)."""
    import torch

    with torch.no_grad():
        for key, value in model.state_dict().items():
            rule = table.drop_rule(key, "torch")
            if rule is not None and rule.lossless:
                value.fill_(rule.fill)


@contextlib.contextmanager
def without_weights(framework: str):
    """Build a twin's structure alone, for its layout: on torch's meta device, under Paddle's
    `LazyGuard`. No tensor gets memory, so the layout of an 8B-parameter twin costs what a small one's does."""
    if framework == "paddle":
        from ..frameworks import quiet_paddle_import

        with quiet_paddle_import().LazyGuard():
            yield
        return
    import torch

    with torch.device("meta"):
        yield


@contextlib.contextmanager
def overwrite_only(framework: str):
    """Build a twin whose weights are overwritten before anyone reads them, skipping most of its
    initialisation (the bulk of building one).

    Paddle: under `paddle.LazyGuard` parameters get no memory until `set_state_dict` fills them.
    torch: in-place initialisation (random draws, fills, elementwise arithmetic with scalars) of a
    parameter of 2-D and up over SCALE_SAMPLE elements runs on its first SCALE_SAMPLE only, so that
    `randomize_torch` still finds each weight's scale; the rest stays uninitialised memory. Buffers,
    other parameters and anything else __init__ computes are computed in full, and torch's generator
    is seeded (then restored) so that the sample, hence the random weights, do not depend on the
    caller's state.
    """
    if framework == "paddle":
        with without_weights(framework):
            yield
        return
    import torch

    storages = {}  # data_ptr -> storage of each large parameter (held, so no address is reused)

    def registered(module, name, param):
        if param is not None and param.ndim >= 2 and param.numel() > SCALE_SAMPLE:
            storage = param.untyped_storage()
            storages[storage.data_ptr()] = storage

    handle = torch.nn.modules.module.register_module_parameter_registration_hook(registered)
    threads = torch.get_num_threads()
    # What is left is small ops, which a thread pool only slows down: on a loaded machine its
    # synchronisation alone tripled the build.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), _sampled_init_mode()(storages):
            torch.default_generator.manual_seed(0)
            yield
    finally:
        torch.set_num_threads(threads)
        handle.remove()


@functools.cache
def _sampled_init_mode():
    """The torch dispatch mode behind `overwrite_only`, defined on first use (torch imported then)."""
    import torch

    TorchDispatchMode = torch_dispatch_mode()
    aten = torch.ops.aten
    fills = {aten.fill_, aten.zero_}
    elementwise = {torch.Tag.pointwise, torch.Tag.nondeterministic_seeded}

    class SampledInit(TorchDispatchMode):
        """Runs an in-place elementwise op on a large parameter over its first SCALE_SAMPLE elements."""

        def __init__(self, storages):
            super().__init__()
            self.storages = storages

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # nothing is compiled here; wrapping the handler would import torch._dynamo (2 s)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            target = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if (
                target is not None
                and torch.Tag.inplace in func.tags
                and (func.overloadpacket in fills or elementwise.intersection(func.tags))
                and target.numel() > SCALE_SAMPLE
                and target.is_contiguous()
                and target.untyped_storage().data_ptr() in self.storages
                and all(not isinstance(a, torch.Tensor) or a.ndim == 0 for a in (*args[1:], *kwargs.values()))
            ):
                func(target.view(-1)[:SCALE_SAMPLE], *args[1:], **kwargs)
                return target
            return func(*args, **kwargs)

    return SampledInit

