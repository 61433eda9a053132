"""Paddle -> torch: read an inference program (program.py), write its torch twin from the op
translations (translations/), with runtime helpers copied into the generated code (runtime.py),
its mapping table and layout manifest, into a ported folder (`models.ported`) whose Paddle twin
is Paddle running that same program (reference.py). A Paddle Layer is captured as such a program
first (capture.py), and keeps its structured state-dict keys."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ...errors import PortError
from ...models import ported
from .emit import Emitter, Generated, Layer
from .program import Graph, read_graph


def generate(program: Path, folder: Path, *, source: str, keys: dict[str, str] | None = None,
             unused: dict[str, tuple[tuple[int, ...], str]] | None = None):
    """Write the torch twin of the inference program `program` into `folder` (an empty directory).

    `keys` renames the program's parameters to the structured keys they are known by (a captured
    Layer's); `unused` gives the Layer's keys its program never reads (with shapes and dtypes), which
    the table drops."""
    from .. import PortResult, versions

    started = time.perf_counter()
    graph = read_graph(program)
    if len(graph.inputs) != 1:
        raise PortError(f"{program.name}: the program has {len(graph.inputs)} inputs; weightport ports programs of one input")
    name = _name(program, source)
    generated = Emitter(graph, keys, class_name=_class_name(name)).emit()
    (folder / ported.TORCH_MODULE).write_text(generated.code)
    copied = folder / f"{ported.PROGRAM}{program.suffix}"
    shutil.copyfile(program, copied)
    parameters = {v.parameter: v for v in graph.parameters.values()}
    (folder / ported.TABLE).write_text(mapping_table(source, generated, keys or {}, list(unused or {})))
    torch_model = _build(folder)
    (folder / ported.LAYOUT).write_text(layout_manifest(name, torch_model, parameters, keys or {}, unused or {}))
    (folder / ported.VARIABLES).write_text(json.dumps(generated.variables, indent=1) + "\n")
    _, input_value = graph.inputs[0]
    dims = [int(d) for d in input_value.shape]
    ported.write_manifest(
        folder, name=name, versions=versions(),
        sides={"paddle": {"source": source, "program": copied.name},
               "torch": {"module": ported.TORCH_MODULE, "factory": ported.FACTORY}},
        input_size=_input_size(dims), input_dims=dims, num_classes=_class_count(graph),
        preprocessing={}, variables=ported.VARIABLES)
    _check_keys(torch_model, generated, parameters, keys or {})
    _check_runs(torch_model, dims)
    files = [ported.TORCH_MODULE, copied.name, ported.TABLE, ported.LAYOUT, ported.VARIABLES, ported.MANIFEST]
    return PortResult(
        source=source, folder=str(folder), classes=1, layers=len(generated.layers), lines=generated.lines,
        tensors=len(graph.parameters), parameters=sum(_count(v.shape) for v in graph.parameters.values()),
        input_size=_input_size(dims), seconds=round(time.perf_counter() - started, 2), files=files)


def torch_key(layer: Layer, attribute: str) -> str:
    return f"{layer.path}.{attribute}"


def mapping_table(source: str, generated: Generated, keys: dict[str, str], unused: list[str] = ()) -> str:
    """Every tensor's torch key <-> the Paddle key it came from, Linear weights transposed,
    BatchNorm's batch counter, which Paddle does not keep, and the Layer's tensors its eval program
    never reads, which the twin has no place for (a conversion drops them and says so)."""
    from ...tables.draft import _toml_string

    lines = [f"description = {_toml_string(f'{source} <-> its generated torch twin (weightport port)')}"]
    transposed = [torch_key(layer, a) for layer in generated.layers for a in sorted(layer.transposed)]
    lines += ["transpose = [", *(f"    {_toml_string(t)}," for t in transposed), "]"]
    for layer in generated.layers:
        for attribute, value in layer.parameters.items():
            paddle_key = keys.get(value.parameter, value.parameter)
            if paddle_key != torch_key(layer, attribute):
                lines += ["", "[[rename]]", f"torch = {_toml_string(torch_key(layer, attribute))}",
                          f"paddle = {_toml_string(paddle_key)}"]
    if any(layer.constructor.startswith("nn.BatchNorm") for layer in generated.layers):
        lines += ["", "[[drop]]", 'torch = "{module:.+}.num_batches_tracked"', "fill = 0"]
    for key in unused:
        lines += ["", "[[drop]]", f"paddle = {_toml_string(key)}", "fill = 0",
                  'why = "the Layer\'s eval-mode program never reads it (a training-only branch)"']
    return "\n".join(lines) + "\n"


def layout_manifest(name: str, torch_model, parameters, keys: dict[str, str], unused) -> str:
    """The layout manifest: torch's from the built twin, Paddle's from the program (and a captured
    Layer's tensors the program never reads)."""
    from ...tables.layouts import count_trainable, manifest_text, model_layout

    paddle = {**{keys.get(n, n): (tuple(v.shape), v.dtype) for n, v in sorted(parameters.items())}, **unused}
    layouts = {"torch": model_layout(torch_model, "torch"), "paddle": paddle}
    return manifest_text(name, count_trainable(torch_model), {}, layouts)


def _check_keys(torch_model, generated: Generated, parameters, keys: dict[str, str]) -> None:
    """Every program parameter is one torch tensor of the same size, and every torch tensor is one
    of them (BatchNorm's batch counter aside): checked before the folder is complete."""
    state = torch_model.state_dict()
    covered = {}
    for layer in generated.layers:
        for attribute, value in layer.parameters.items():
            covered[torch_key(layer, attribute)] = value
    held = {id(v) for v in covered.values()}
    loose = {keys.get(n, n): v for n, v in parameters.items() if id(v) not in held}
    problems = []
    for key, value in {**covered, **loose}.items():
        if key not in state:
            problems.append(f"{value.parameter} has no torch tensor {key}")
        elif _count(state[key].shape) != _count(value.shape):
            problems.append(f"{key} has shape {list(state[key].shape)}; {value.parameter} {list(value.shape)}")
    extra = [k for k in state if k not in covered and k not in loose and not k.endswith("num_batches_tracked")]
    problems += [f"torch tensor {k} comes from no Paddle parameter" for k in extra]
    if problems:
        raise PortError(f"the generated twin's tensors do not match the program's: {'; '.join(problems[:3])}")


def _check_runs(torch_model, dims: list[int]) -> None:
    """The twin runs on an input the program accepts (64 wherever it leaves a size open): a twin
    that cannot is refused before its folder exists."""
    import torch

    shape = [d if d > 0 else (1 if i == 0 else 64) for i, d in enumerate(dims)]
    try:
        with torch.no_grad():
            torch_model(torch.zeros(shape))
    except Exception as exc:  # the generated code's failure, whatever it is, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PortError(f"the generated torch twin fails on a {'x'.join(map(str, shape))} input: "
                        f"{type(exc).__name__}: {first[:200]}") from None


def _build(folder: Path):
    try:
        return ported.load_module(folder, folder / ported.TORCH_MODULE).create_model()
    except Exception as exc:
        raise PortError(f"the generated torch twin fails to build: {type(exc).__name__}: {exc}") from None


def _name(program: Path, source: str) -> str:
    if source.startswith("paddle:"):
        return source.rpartition(":")[2]
    stem = program.parent.name if program.stem == "inference" else program.stem
    return stem or "program"


def _class_name(name: str) -> str:
    words = [w for w in "".join(c if c.isalnum() else " " for c in name).split() if w]
    text = "".join(w[0].upper() + w[1:] for w in words) or "Ported"
    return text if text[0].isalpha() else f"Model{text}"


def _input_size(dims: list[int]) -> int:
    fixed = [d for d in dims[2:] if d > 0]
    return max(fixed) if len(fixed) == len(dims[2:]) and fixed else 224


def _class_count(graph: Graph) -> int:
    output = graph.outputs[0] if len(graph.outputs) == 1 else None
    return int(output.shape[-1]) if output is not None and len(output.shape) == 2 and output.shape[-1] > 0 else 0


def _count(shape) -> int:
    total = 1
    for d in shape:
        total *= int(d)
    return total
