"""Paddle running an inference program itself: the reference a ported program is verified against.

Paddle runs the program in a worker process of its own (`python -m` this module, started once per
`ProgramRunner`, exchanging pickled frames with it over its standard input and output): a
legacy ProgramDesc loads only with `FLAGS_enable_pir_api=0` set before Paddle is imported, and
Paddle's static mode is process-wide, so neither may touch the caller's Paddle. The worker loads
the program with `paddle.static.load_inference_model`, puts the given weights into its scope (so
that converted or random weights are checked, not only the file's), feeds the inputs and fetches
the outputs or any values named by their program key (a PIR value's "%N", a legacy variable's
name): every variable of a program can be compared.

`ProgramLayer` is the Paddle twin of a ported program: a `paddle.nn.Layer` whose parameters carry
the program's names as their state-dict keys and whose forward asks the runner.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...errors import UserError

_WORKER: dict = {}


def _start(program: str, legacy: bool) -> None:
    os.environ["FLAGS_enable_pir_api"] = "0" if legacy else "1"
    os.environ.setdefault("GLOG_minloglevel", "2")
    from ...frameworks import quiet_paddle_import

    quiet_paddle_import()
    import paddle

    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    loaded, feeds, fetches = paddle.static.load_inference_model(str(Path(program).with_suffix("")), executor)
    values = {}
    if not legacy:
        block = loaded.global_block()
        for op in list(block.ops):
            if op.name() == "pd_op.fetch":
                block.remove_op(op)
        values = _pir_values(program, block.ops)
    _WORKER.update(paddle=paddle, executor=executor, program=loaded, feeds=feeds, fetches=fetches,
                   values=values, legacy=legacy, scope=paddle.static.global_scope())


def _pir_values(program: str, ops) -> dict:
    """The JSON program's value numbers -> the loaded program's values (both list the ops in order)."""
    document = json.loads(Path(program).read_text())
    raw_ops = [op for op in document["program"]["regions"][0]["blocks"][0]["ops"] if op["#"] != "1.fetch"]
    if len(raw_ops) != len(ops):
        raise RuntimeError(f"Paddle loaded {len(ops)} ops where the program lists {len(raw_ops)}")
    values = {}
    for raw, op in zip(raw_ops, ops):
        results = [raw["O"]] if isinstance(raw["O"], dict) else raw.get("O", [])
        for position, result in enumerate(results):
            values[f"%{result['%']}"] = op.result(position)
    return values


def _run(weights: Mapping[str, np.ndarray] | None, inputs: Sequence[np.ndarray], keys: Sequence[str] | None):
    worker = _WORKER
    paddle = worker["paddle"]
    if weights:
        for name, array in weights.items():
            worker["scope"].find_var(name).get_tensor().set(np.ascontiguousarray(array), paddle.CPUPlace())
    feed = dict(zip(worker["feeds"], inputs))
    if keys is None:
        fetch = list(worker["fetches"])
    elif worker["legacy"]:
        fetch = list(keys)
    else:
        fetch = [worker["values"][k] for k in keys]
    return [np.asarray(a) for a in worker["executor"].run(worker["program"], feed=feed, fetch_list=fetch)]


class ProgramRunner:
    """A worker process running one inference program with Paddle (see the module docstring)."""

    def __init__(self, program: str | os.PathLike):
        self.program = str(program)
        self.legacy = not self.program.endswith(".json")
        self._process: subprocess.Popen | None = None

    def run(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray] | None = None,
            keys: Sequence[str] | None = None) -> list[np.ndarray]:
        """The program's outputs (or the values `keys` names) for `inputs`, with `weights` put in first."""
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, self._loadable(), "legacy" if self.legacy else "pir"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _send(self._process.stdin, (dict(weights) if weights else None, [np.asarray(x) for x in inputs], keys))
            status, answer = _receive(self._process.stdout)
        except (OSError, EOFError, struct.error):
            error = self._process.stderr.read().decode(errors="replace").strip().splitlines() if self._process.poll() is not None else []
            self.close()
            raise UserError(f"Paddle could not run {self.program}: {error[-1] if error else 'its worker stopped'}") from None
        if status != "ok":
            raise UserError(f"Paddle could not run {self.program}: {answer}")
        return answer

    def _loadable(self) -> str:
        """The program beside a parameter file Paddle can load it with: a copy in a folder of its
        own with zeros for every parameter (each run puts the weights to check into the scope)."""
        from ...formats import paddle_inference

        self._folder = tempfile.TemporaryDirectory(prefix="weightport-program-")
        program = Path(self._folder.name) / f"inference{Path(self.program).suffix}"
        shutil.copyfile(self.program, program)
        read = paddle_inference.read_program(program)
        paddle_inference.write_params(program.with_suffix(paddle_inference.PARAMS),
                                      {name: np.zeros(v.shape, v.dtype) for name, v in read.parameters.items()})
        return str(program)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
                stream.close()
            self._process = None

    def __del__(self):
        self.close()


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    header = stream.read(8)
    if len(header) != 8:
        raise EOFError
    (size,) = struct.unpack("<Q", header)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - frames from our own worker process


def _serve(program: str, legacy: bool) -> None:
    """The worker's loop: one frame in, one frame out, until its input closes."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything Paddle prints goes to standard error, not into the frames
    requests = sys.stdin.buffer
    _start(program, legacy)
    while True:
        try:
            weights, inputs, keys = _receive(requests)
        except EOFError:
            return
        try:
            _send(answers, ("ok", _run(weights, inputs, keys)))
        except Exception as exc:  # reported to the caller, one line
            lines = str(exc).strip().splitlines()
            _send(answers, ("error", (lines[-1] if lines else type(exc).__name__)[:400]))


def program_layer(program: str | os.PathLike, params: str | os.PathLike | None = None):
    """The Paddle twin of a ported program: a Layer holding the program's parameters under their
    names (nested by their dots), with the parameter file's values (zeros without one), running
    the program with them."""
    from ...formats import paddle_inference
    from ...frameworks import quiet_paddle_import

    quiet_paddle_import()
    import paddle

    read = paddle_inference.read_program(program)
    if params is not None:
        arrays = {name: np.asarray(t.load()) for name, t in paddle_inference.read_params(str(params), read).items()}
    else:
        arrays = {name: np.zeros(v.shape, v.dtype) for name, v in read.parameters.items()}

    class ProgramLayer(paddle.nn.Layer):
        """An inference program as a Layer: its parameters named as in the program, run by Paddle."""

        def __init__(self):
            super().__init__()
            self.runner = ProgramRunner(program)
            self.names = {}
            for name, array in sorted(arrays.items()):
                holder, attribute = self._holder(name)
                parameter = paddle.create_parameter(list(array.shape), str(array.dtype))
                parameter.set_value(array)
                holder.add_parameter(attribute, parameter)
                self.names[name] = parameter

        def _holder(self, name: str):
            layer = self
            *path, attribute = name.split(".")
            for part in path:
                if part not in layer._sub_layers:
                    layer.add_sublayer(part, paddle.nn.Layer())
                layer = layer._sub_layers[part]
            return layer, attribute

        def weights(self) -> dict[str, np.ndarray]:
            return {name: p.numpy() for name, p in self.names.items()}

        def forward(self, *inputs):
            arrays = [np.asarray(x.numpy() if hasattr(x, "numpy") else x) for x in inputs]
            outputs = [paddle.to_tensor(a) for a in self.runner.run(arrays, self.weights())]
            return outputs[0] if len(outputs) == 1 else tuple(outputs)

        def linear_weights(self) -> set[str]:
            """The parameters the program multiplies by as a Linear layer does (x @ W, W of [in, out])."""
            from .program import linear_weight, read_graph

            return {weight.parameter for weight in map(linear_weight, read_graph(program).ops) if weight is not None}

        def values(self, inputs: Sequence[np.ndarray], keys: Sequence[str]) -> list[np.ndarray]:
            """The program's values named by `keys`, for `inputs` (layer-by-layer comparison)."""
            return self.runner.run(list(inputs), self.weights(), keys)

    return ProgramLayer()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2] == "legacy")
