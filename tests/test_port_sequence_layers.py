"""Layers whose Paddle counterparts store their weights otherwise: nn.MultiheadAttention (its packed
q, k, v projection split by the table) and the recurrent layers (listed twice in Paddle's state dict).

Each is ported inside a one-layer module through the real path, called as torch code calls it, and
run at the size it was ported for and at another; whole models go through `weightport port` and
the converter, both ways, bit for bit.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_port import run
from tests.test_port_translations import _compare, _port
from weightport.conversion import convert_tensors
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.weights import randomize_torch, torch_state
from weightport.tables.loading import load_table

paddle = quiet_paddle_import()


def _randomised(module: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.5)
    return module.eval()


def _padding(batch: int, length: int, g) -> torch.Tensor:
    mask = torch.rand(batch, length, generator=g) > 0.6
    mask[:, 0] = False  # every query keeps a key: an all-hidden row is NaN in both
    return mask


class SelfAttention(nn.Module):
    """Batch-first self-attention with a key padding mask; torch's default weights, averaged over heads."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x, padding):
        return self.attention(x, x, x, key_padding_mask=padding)

    @staticmethod
    def inputs(length, source, g):
        return torch.randn(3, length, 8, generator=g), _padding(3, length, g)


class CrossAttention(nn.Module):
    """Sequence-first cross-attention with an additive mask, each head's weights."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 4, dropout=0.1)

    def forward(self, query, memory, mask):
        return self.attention(query, memory, memory, attn_mask=mask, average_attn_weights=False)

    @staticmethod
    def inputs(length, source, g):
        return torch.randn(length, 2, 8, generator=g), torch.randn(source, 2, 8, generator=g), torch.randn(length, source, generator=g)


class OtherWidths(nn.Module):
    """Keys and values of their own widths (torch keeps three projection weights, no packed one),
    no biases, a boolean mask per head, no weights returned."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, kdim=6, vdim=4, bias=False, batch_first=True)

    def forward(self, query, key, value, mask):
        return self.attention(query, key, value, attn_mask=mask, need_weights=False)[0]

    @staticmethod
    def inputs(length, source, g):
        mask = torch.rand(2 * 2, length, source, generator=g) > 0.6
        mask[..., 0] = False
        return (torch.randn(2, length, 8, generator=g), torch.randn(2, source, 6, generator=g),
                torch.randn(2, source, 4, generator=g), mask)


def _twin_agrees_at_two_sizes(module: nn.Module, inputs, tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    paddle_model, _ = _port(module, inputs(5, 7, g), tmp_path)
    for length, source in ((5, 7), (9, 4)):
        example = inputs(length, source, g)
        with torch.no_grad():
            reference = module(*example)
        _compare(reference, paddle_model(*(paddle.to_tensor(t.numpy()) for t in example)))


@pytest.mark.parametrize("cls", [SelfAttention, CrossAttention, OtherWidths])
def test_multihead_attention_is_called_as_torch_calls_it(cls, tmp_path):
    module = _randomised(cls())
    _twin_agrees_at_two_sizes(module, module.inputs, tmp_path)


class Recurrent(nn.Module):
    def __init__(self, rnn: nn.Module, states: bool):
        super().__init__()
        self.rnn, self.states = rnn, states

    def forward(self, x, h0, c0):
        if not self.states:
            return self.rnn(x)
        return self.rnn(x, (h0, c0) if isinstance(self.rnn, nn.LSTM) else h0)

    def inputs(self, length, _, g):
        rnn = self.rnn
        batch = 3 if length == 5 else 2
        x = torch.randn(*((batch, length) if rnn.batch_first else (length, batch)), rnn.input_size, generator=g)
        state = [(2 if rnn.bidirectional else 1) * rnn.num_layers, batch, rnn.hidden_size]
        return x, torch.randn(*state, generator=g), torch.randn(*state, generator=g)


@pytest.mark.parametrize(("rnn", "states"), [
    pytest.param(nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True), True, id="lstm-bidirectional-batch-first"),
    pytest.param(nn.LSTM(6, 5), False, id="lstm-sequence-first"),
    pytest.param(nn.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True), True, id="gru-bidirectional-batch-first"),
    pytest.param(nn.RNN(6, 5, num_layers=2, nonlinearity="relu"), True, id="rnn-relu"),
])
def test_recurrent_layers_return_torchs_structure(rnn, states, tmp_path):
    module = _randomised(Recurrent(rnn, states))
    _twin_agrees_at_two_sizes(module, module.inputs, tmp_path)


def test_paddle_lists_rnn_weights_twice_and_the_table_copies_the_second(tmp_path):
    """Paddle 3.3.1's LSTM lists `weight_ih_l0` and its cell's `0.cell_fw.weight_ih` (one tensor):
    the written table makes the second a copy of the first, so the converted file loads as Paddle's own."""
    module = _randomised(Recurrent(nn.LSTM(6, 5, bidirectional=True), False))
    g = torch.Generator().manual_seed(0)
    paddle_model, _ = _port(module, module.inputs(5, 5, g), tmp_path)
    keys = list(paddle_model.state_dict())
    assert "rnn.weight_ih_l0_reverse" in keys and "rnn.0.cell_bw.weight_ih" in keys
    table = load_table(tmp_path / "mapping.toml")
    assert table.drop_rule("rnn.0.cell_bw.weight_ih", "paddle").same_as_key("rnn.0.cell_bw.weight_ih") == "rnn.weight_ih_l0_reverse"
    assert table.drop_rule("rnn.weight_ih_l0", "paddle") is None


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    """Ported folders, each once per module: `weightport port` exits 0 only when the twin verifies."""
    folders = {}

    def port(factory: str):
        if factory not in folders:
            folder = tmp_path_factory.mktemp("port") / factory
            result = run("port", f"tests.port_models:{factory}", "--out", folder, "--input-size", "32", "--json", check_rc=0)
            folders[factory] = folder, json.loads(result.stdout)
        return folders[factory]

    return port


@pytest.mark.parametrize("factory", ["small_vit", "lstm_reader", "gru_reader"])
def test_ported_model_verifies_and_converts_both_ways_bit_for_bit(factory, ported):
    folder, report = ported(factory)
    (output,) = report["verify"]["models"][0]["outputs"]
    assert report["verify"]["passed"] and output["metrics"]["max_abs"] < 1e-4 * output["metrics"]["ref_max"]
    model = resolve(str(folder)).create("torch")
    randomize_torch(model, seed=3)
    state = torch_state(model)
    as_paddle, summary = convert_tensors(str(folder), state, "paddle")
    paddle_model = resolve(str(folder)).create("paddle")
    assert set(as_paddle) == set(paddle_model.state_dict())  # every Paddle key produced, each RNN weight under both names
    back, _ = convert_tensors(str(folder), as_paddle, "torch")
    assert list(back) == list(state)
    for key, tensor in state.items():
        original, returned = np.asarray(tensor.load()), np.asarray(back[key].load())
        assert original.dtype == returned.dtype and np.array_equal(original, returned), key


def test_vit_attention_weights_are_split_into_paddles_projections(ported):
    folder, _ = ported("small_vit")
    model = resolve(str(folder)).create("torch")
    randomize_torch(model, seed=3)
    state = torch_state(model)
    as_paddle, _ = convert_tensors(str(folder), state, "paddle")
    layer = "encoder.layers.encoder_layer_1.self_attention"
    packed, bias = state[f"{layer}.in_proj_weight"].load(), state[f"{layer}.in_proj_bias"].load()
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        assert np.array_equal(as_paddle[f"{layer}.{name}.weight"].load(), packed[32 * i : 32 * (i + 1)].T)
        assert np.array_equal(as_paddle[f"{layer}.{name}.bias"].load(), bias[32 * i : 32 * (i + 1)])
    assert f"{layer}.in_proj_weight" not in as_paddle
