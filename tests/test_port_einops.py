"""einops in a ported model: each kind of pattern, ported at one input size, against einops in torch
at that size and at another (the twin sizes the pattern from its input), and vit-pytorch's ViTs
through `weightport port`."""
from __future__ import annotations

import json

import einops
import pytest
import torch
from einops.layers.torch import Rearrange, Reduce

from tests.test_port import _imports, run
from tests.test_port_translations import _compare, _port, paddle


def _pack_unpack(x):
    packed, shapes = einops.pack([x, x.mean(2)], "b c *")
    a, b = einops.unpack(packed * 2, shapes, "b c *")
    return a + b[..., None, :]


CASES = {
    "composition": lambda x: einops.rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=2, p2=2),
    "decomposition": lambda x: einops.rearrange(x.flatten(2), "b c (h w) -> b h c w", h=x.shape[2]),
    "given sizes": lambda x: einops.rearrange(x, "b (g c) h w -> (b g) h w c", g=2),
    "repeat, new axis": lambda x: einops.repeat(x, "b c h w -> b c h w r", r=3),
    "repeat, merged": lambda x: einops.repeat(x, "b c h w -> (r b) c h (w k)", r=2, k=2),
    "reduce mean": lambda x: einops.reduce(x, "b c h w -> b c", "mean"),
    "reduce max, pooling": lambda x: einops.reduce(x, "b c (h h2) (w w2) -> b c h w", "max", h2=2, w2=2),
    "reduce sum, kept axes": lambda x: einops.reduce(x, "b c h w -> b 1 h w", "sum"),
    "ellipsis": lambda x: einops.rearrange(x, "b ... -> b (...)"),
    "ellipsis in the middle": lambda x: einops.reduce(x, "b c ... -> b ... c", "min"),
    "einsum": lambda x: einops.einsum(x, x, "b c h w, b d h w -> b c d"),
    "pack and unpack": _pack_unpack,
}


class Applied(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def _at_two_sizes(module: torch.nn.Module, tmp_path) -> None:
    """Traced at 8 x 8 and 16 x 16, checked at 8 x 8 and at 12 x 16."""
    g = torch.Generator().manual_seed(0)
    examples = [(torch.randn(2, 4, 8, 8, generator=g),), (torch.randn(2, 4, 16, 16, generator=g),)]
    paddle_model, generated = _port(module.eval(), examples, tmp_path)
    assert _imports(generated.source) <= {"paddle", "numpy", "os", "math"}
    for shape in ((2, 4, 8, 8), (3, 4, 12, 16)):
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            reference = module(x)
        _compare(reference, paddle_model(paddle.to_tensor(x.numpy())))


@pytest.mark.parametrize("kind", list(CASES))
def test_each_pattern_kind_at_two_sizes(kind, tmp_path):
    _at_two_sizes(Applied(CASES[kind]), tmp_path)


def test_the_layers_at_two_sizes(tmp_path):
    model = torch.nn.Sequential(
        Rearrange("b c (h p1) (w p2) -> b h w (p1 p2 c)", p1=2, p2=2),
        torch.nn.Linear(16, 6),
        Reduce("b h w c -> b c h", "max"),
        Rearrange("b c h -> b h c"),
        Reduce("b h c -> b c", "mean"),
    )
    _at_two_sizes(model, tmp_path)


def test_einmix_ports(tmp_path):
    """einops' EinMix: its Rearrange layers and torch.einsum, its weight and bias kept by name."""
    from einops.layers.torch import EinMix

    model = torch.nn.Sequential(
        Rearrange("b c h w -> b (h w) c"),
        EinMix("b t c -> b t c_out", weight_shape="c c_out", bias_shape="c_out", c=4, c_out=6),
    ).eval()
    x = torch.randn(2, 4, 8, 8)
    paddle_model, _ = _port(model, (x,), tmp_path)
    assert {"1.weight", "1.bias"} <= set(paddle_model.state_dict())
    with torch.no_grad():
        reference = model(x)
    _compare(reference, paddle_model(paddle.to_tensor(x.numpy())))


def test_a_pattern_that_does_not_fit_is_refused(tmp_path):
    from weightport.errors import PortError

    module = Applied(lambda x: einops.rearrange(x, "b c (h w) -> b c h w", h=2))  # h w on a 4-D input
    with pytest.raises(PortError, match="cannot trace the model .*EinopsError"):
        _port(module.eval(), (torch.randn(2, 4, 8, 8),), tmp_path)


VIT_PYTORCH = ["vit", "simple_vit", "simple_vit_with_register_tokens", "cait", "mobile_vit", "max_vit", "cross_vit", "pit"]


@pytest.mark.slow
@pytest.mark.parametrize("factory", VIT_PYTORCH)
def test_vit_pytorch_models_port_and_verify(factory, tmp_path):
    result = run("port", f"tests.port_library_models:{factory}", "--out", tmp_path / factory, "--input-size", "64", "--json", check_rc=0)
    report = json.loads(result.stdout)
    assert report["verify"]["passed"]
    assert _imports((tmp_path / factory / "modeling_paddle.py").read_text()) <= {"paddle", "numpy", "os", "math"}

