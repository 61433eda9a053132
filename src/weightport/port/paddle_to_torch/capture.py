"""A Paddle Layer captured as an inference program, with its structured state-dict keys.

`paddle.jit.to_static` + `paddle.jit.save` give the program Paddle itself would deploy (the same
ops as an inference model, so one translator serves both sources), with a dynamic input spec so
that sizes stay computed. The program names each parameter by its generated name
(`conv2d_3.w_0`); in the live Layer, `param.name` is that same name, so `state_dict()` links it
back to the key training checkpoints use (`backbone.conv1._conv.weight`). The torch twin is then
named by those keys, and `.pdparams` checkpoints convert into it directly.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ...errors import PortError
from ...formats import paddle_inference
from ...models.factories import import_factory

INPUT_SPEC = [None, 3, None, None]  # NCHW with the batch and the spatial size left open


@contextlib.contextmanager
def capture(source: str) -> Iterator[tuple[Path, dict[str, str], dict[str, tuple[tuple[int, ...], str]]]]:
    """(program, {program parameter name: structured key}, the Layer's keys the program never uses,
    with their shapes and dtypes)
    of the Layer `source` ("paddle:module:function") builds, saved in a temporary folder for as long
    as the context lasts. The unused keys are what the eval-mode program leaves out (a training-only
    head, say): the twin has no place for them, and the table says so."""
    from ...frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    factory = import_factory(source.removeprefix("paddle:"), "paddle")
    try:
        layer = factory()
    except TypeError as exc:
        raise PortError(f"{source} cannot be built without arguments: {exc}") from None
    if not isinstance(layer, paddle.nn.Layer):
        raise PortError(f"{source} returned {type(layer).__name__}, not a paddle.nn.Layer")
    layer.eval()
    state = layer.state_dict()
    keys = {tensor.name: key for key, tensor in state.items()}
    with tempfile.TemporaryDirectory(prefix="weightport-capture-") as folder:
        prefix = Path(folder) / "inference"
        spec = [paddle.static.InputSpec(INPUT_SPEC, "float32", "x")]
        try:
            paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), str(prefix))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PortError(f"Paddle cannot capture {source} as a program: {first[:300]}") from None
        located = paddle_inference.locate(prefix)
        if located is None:
            raise PortError(f"Paddle saved no inference program for {source}")
        program, _ = located
        names = paddle_inference.read_program(program).parameters
        unnamed = sorted(set(names) - set(keys))
        if unnamed:
            raise PortError(f"{source}: the program's parameters {unnamed[:3]} are none of the Layer's state-dict entries")
        unused = {key: (tuple(state[key].shape), str(state[key].dtype).removeprefix("paddle."))
                  for name, key in sorted(keys.items(), key=lambda item: item[1]) if name not in names}
        yield program, {name: keys[name] for name in names}, unused
