"""Every entry of the port's translation tables, checked on its own against torch.

Each example (a torch expression, or a layer's constructor call) is wrapped in a one-line module,
ported through the real path (trace, emit, the generated file imported), loaded with the module's
own weights through its drafted table, and run on the same inputs as torch (random ops drawing
from one shared stream, as `verify --train` runs them).
"""
from __future__ import annotations

import ast
import importlib.util

import einops
import numpy as np
import pytest
import timm
import torch

from weightport.frameworks import quiet_paddle_import
from weightport.parity.random_draws import shared_draws
from weightport.port.torch_to_paddle.emit import generate
from weightport.port.torch_to_paddle.tables import mapping_table
from weightport.port.torch_to_paddle.translations import functions, layers, methods

paddle = quiet_paddle_import()


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(2, 4, 6, 6, generator=g),
        "y": torch.randn(2, 4, 6, 6, generator=g),
        "s": torch.randn(2, 6, 8, generator=g),
        "q": torch.randn(2, 2, 5, 8, generator=g),
        "k": torch.randn(2, 2, 5, 8, generator=g),
        "v": torch.randn(2, 2, 5, 8, generator=g),
        "i": torch.tensor([0, 3, 1]),
        "b": torch.randn(2, 4, 6, 6, generator=g) > 0,
    }


def _unique(table) -> dict:
    return {entry.key: entry for entry in table.values()}


def _cases(table, kind):
    for entry in _unique(table).values():
        for n, example in enumerate(entry.examples):
            yield pytest.param(entry, example, id=f"{kind}:{entry.key}:{n}")


def _port(module: torch.nn.Module, example: tuple, tmp_path):
    examples = example if isinstance(example, list) else [example]  # several: traced at each size
    generated = generate(module, [(e, {}) for e in examples], "test twin")
    path = tmp_path / "modeling_paddle.py"
    path.write_text(generated.source)
    if generated.constants:
        np.savez(tmp_path / "constants.npz", **generated.constants)
    spec = importlib.util.spec_from_file_location(f"twin_{abs(hash(str(tmp_path)))}", path)
    twin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twin)
    paddle_model = twin.create_model()
    from weightport.tables.loading import load_table

    (tmp_path / "mapping.toml").write_text(mapping_table("test", module, paddle_model))
    table = load_table(tmp_path / "mapping.toml")
    state = module.state_dict()
    plan = table.plan({k: v for k, v in state.items()}, "paddle")
    weights = {}
    for step in plan.steps:
        array = step.part_of(state[step.source].detach().numpy())
        weights[step.target] = np.ascontiguousarray(array.T if step.transpose else array)
    for key, rule in plan.fills(paddle_model.state_dict(), table).items():  # a Paddle RNN's second names
        weights[key] = weights[rule.same_as_key(key)]
    assert set(weights) == set(paddle_model.state_dict()), "the table must fill every Paddle tensor"
    paddle_model.set_state_dict(weights)
    return paddle_model, generated


def _flat(value) -> list:
    return [t for v in value for t in _flat(v)] if isinstance(value, (tuple, list)) else [value]


def _compare(reference, output) -> None:
    flat_ref, flat_out = _flat(reference), _flat(output)
    assert len(flat_ref) == len(flat_out)
    for r, o in zip(flat_ref, flat_out, strict=True):
        r = r.detach().double().numpy()
        o = np.asarray(o.numpy(), dtype=np.float64)
        assert r.shape == o.shape
        np.testing.assert_allclose(o, r, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("entry", "example"), [*_cases(functions(), "function"), *_cases(methods(), "method")])
def test_function_and_method_translations(entry, example, tmp_path):
    inputs = _inputs()
    statements = example.split("; ") if "return " in example else [f"return {example}"]  # statements, then what to return
    used = {node.id for s in statements for node in ast.walk(ast.parse(s.removeprefix("return "))) if isinstance(node, ast.Name)}
    names = [n for n in inputs if n in used]
    namespace = {"torch": torch, "F": torch.nn.functional, "nn": torch.nn, "timm": timm, "einops": einops}
    body = "".join(f"        {s}\n" for s in statements)
    exec(f"class Example(torch.nn.Module):\n    def forward(self, {', '.join(names)}):\n{body}", namespace)
    module = namespace["Example"]().eval()
    example_inputs = tuple(inputs[n] for n in names)
    paddle_model, _ = _port(module, example_inputs, tmp_path)
    with shared_draws("torch", seed=0) as torch_draws, torch.no_grad():  # random ops: both draw the same numbers
        reference = module(*example_inputs)
    with shared_draws("paddle", seed=0) as paddle_draws:
        output = paddle_model(*(paddle.to_tensor(t.numpy()) for t in example_inputs))
    assert sum(torch_draws.values()) == sum(paddle_draws.values()), (torch_draws, paddle_draws)
    _compare(reference, output)


@pytest.mark.parametrize(("entry", "example"), list(_cases(layers(), "layer")))
def test_layer_translations(entry, example, tmp_path):
    namespace = {"torch": torch, "nn": torch.nn, "timm": timm}
    layer = eval(example, namespace)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in layer.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5 if "var" in name else torch.randn(tensor.shape, generator=g) * 0.5)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x)

    class Attending(Wrapped):
        def forward(self, query, key, value):
            return self.layer(query, key, value)

    module = (Attending if isinstance(entry.input, list) and isinstance(entry.input[0], list) else Wrapped)().eval()
    if isinstance(entry.input, dict):  # integer indices: {shape, high}
        inputs = (torch.randint(0, entry.input["high"], entry.input["shape"], generator=g),)
    elif isinstance(entry.input[0], list):  # several inputs (attention's query, key, value)
        inputs = tuple(torch.randn(*shape, generator=g) for shape in entry.input)
    else:
        inputs = (torch.randn(*entry.input, generator=g),)
    paddle_model, _ = _port(module, inputs, tmp_path)
    with torch.no_grad():
        reference = module(*inputs)
    _compare(reference, paddle_model(*(paddle.to_tensor(x.numpy()) for x in inputs)))


def test_every_entry_has_examples():
    for table in (functions(), methods(), layers()):
        for entry in _unique(table).values():
            assert entry.examples or entry.paddle == "", f"{entry.key} has no example to test it by"


def test_every_runtime_helper_is_used_by_an_entry():
    import inspect

    from weightport.port.torch_to_paddle import runtime

    defined = {n for n, v in vars(runtime).items() if (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == runtime.__name__}
    used = {h for table in (functions(), methods(), layers()) for e in table.values() for h in e.helpers}
    assert defined == used


def test_one_hot_sized_by_the_data_is_refused_with_the_remedy():
    from weightport.errors import PortError

    class OneHot(torch.nn.Module):
        def forward(self, i):
            return torch.nn.functional.one_hot(i)

    with pytest.raises(PortError, match="sizes its output by the data; give num_classes"):
        generate(OneHot().eval(), [((_inputs()["i"],), {})], "test twin")


def test_an_in_place_op_on_a_slice_changes_the_tensor_sliced(tmp_path):
    """torchvision's Swin V2 zeroes the key third of a cloned qkv bias through a slice; the twin
    computes out of place and must assign the result back into the tensor sliced."""

    class ZeroedThird(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.randn(12, generator=torch.Generator().manual_seed(1)))

        def forward(self, x):
            bias = self.bias.clone()
            third = bias.numel() // 3
            bias[third : 2 * third].zero_()
            grid = x.clone()
            grid[:, 1][:, 2:4].mul_(3.0)  # a slice of a slice: written back twice
            return grid.flatten(1)[:, :12] + bias

    model = ZeroedThird().eval()
    x = _inputs()["x"]
    paddle_model, _ = _port(model, (x,), tmp_path)
    with torch.no_grad():
        reference = model(x)
    _compare(reference, paddle_model(paddle.to_tensor(x.numpy())))


def test_numbers_equal_as_int_and_float_stay_two_constructor_arguments(tmp_path):
    """timm's NestLevel: instances differing in a shape (16) and a float equal to it (16.0); one
    argument for both gave create_parameter a float shape."""

    class Scaled(torch.nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(dim))
            self.scale = float(dim)

        def forward(self, x):
            return x[:, :1] * self.scale + self.weight.sum()

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.small, self.large = Scaled(4), Scaled(8)

        def forward(self, x):
            return self.small(x) + self.large(x)

    model = Both().eval()
    x = _inputs()["x"]
    paddle_model, _ = _port(model, (x,), tmp_path)
    with torch.no_grad():
        reference = model(x)
    _compare(reference, paddle_model(paddle.to_tensor(x.numpy())))
