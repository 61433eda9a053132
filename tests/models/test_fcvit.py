"""FCViT twins: parameter counts, mapping table, parity, and the official checkpoint layout.

The official layout below is written out from the reference code (ma-xu/FCViT
`models/fcvit.py`) independently of the twins; its key counts were checked
against an instance of the reference itself.
"""
from __future__ import annotations

from functools import cache

import pytest
import torch

from weightport.models.fcvit import MODELS, modeling_torch
from weightport.testing import check_table, count_trainable, parity

# name -> (depths, embed_dims, mlp_ratios) of the reference's factories
CONFIGS = {
    "fcvit_tiny": ((3, 3, 5, 2), (32, 64, 160, 320), (8, 8, 4, 4)),
    "fcvit_b12": ((2, 2, 6, 2), (64, 128, 320, 512), (8, 8, 4, 4)),
    "fcvit_b24": ((4, 4, 12, 4), (64, 128, 320, 512), (8, 8, 4, 4)),
    "fcvit_b48": ((8, 8, 24, 8), (64, 128, 320, 512), (8, 8, 4, 4)),
}
# Trainable parameters and state-dict entries of the reference models (counted on the reference code).
PARAMETERS = {"fcvit_tiny": 4_784_752, "fcvit_b12": 14_701_832, "fcvit_b24": 26_960_232, "fcvit_b48": 51_477_032}
STATE_DICT_ENTRIES = {"fcvit_tiny": 500, "fcvit_b12": 464, "fcvit_b24": 896, "fcvit_b48": 1760}
# fp32 twins agree to ~1e-6 on O(1) logits; the published hand conversion reported 2.24e-5 for b12.
PARITY_TOLERANCE = 2e-5

NAMES = list(CONFIGS)


def official_layout(depths, embed_dims, mlp_ratios, num_classes=1000) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of the reference BaseFormer with the released configuration."""
    layout: dict[str, tuple[int, ...]] = {}

    def add(prefix, **shapes):
        layout.update({f"{prefix}.{name}": shape for name, shape in shapes.items()})

    def patch_embed(prefix, cin, cout, kernel):
        add(f"{prefix}.proj", weight=(cout, cin, kernel, kernel), bias=(cout,))
        add(f"{prefix}.norm", weight=(cout,), bias=(cout,), running_mean=(cout,), running_var=(cout,),
            num_batches_tracked=())

    patch_embed("patch_embed", 3, embed_dims[0], 7)
    index = 0
    for stage, (depth, dim, ratio) in enumerate(zip(depths, embed_dims, mlp_ratios)):
        token_hidden, channel_hidden = max(dim // 8, 16), int(dim * ratio)
        for block in range(depth):
            prefix = f"network.{index}.{block}"
            add(prefix, layer_scale_1=(dim,), layer_scale_2=(dim,))
            add(f"{prefix}.norm1", weight=(dim,), bias=(dim,))
            for round_ in (1, 2):
                mixer = f"{prefix}.token_mixer"
                add(f"{mixer}.gc{round_}", rescale_weight=(8,), rescale_bias=(8,))
                add(f"{mixer}.gc{round_}.fc1", weight=(2 * dim // 8, dim), bias=(2 * dim // 8,))
                add(f"{mixer}.gc{round_}.fc2", weight=(dim, dim // 8), bias=(dim,))
                add(f"{mixer}.dw{round_}", weight=(dim, 1, 11, 11), bias=(dim,))
                add(f"{mixer}.fc{round_}.0", weight=(token_hidden, dim, 1, 1), bias=(token_hidden,))
                add(f"{mixer}.fc{round_}.2", weight=(dim, token_hidden, 1, 1), bias=(dim,))
            add(f"{prefix}.norm2", weight=(dim,), bias=(dim,))
            add(f"{prefix}.channel_mixer.fc1", weight=(channel_hidden, dim, 1, 1), bias=(channel_hidden,))
            add(f"{prefix}.channel_mixer.dwconv", weight=(channel_hidden, 1, 3, 3), bias=(channel_hidden,))
            add(f"{prefix}.channel_mixer.fc2", weight=(dim, channel_hidden, 1, 1), bias=(dim,))
        index += 1
        if stage < len(depths) - 1:
            patch_embed(f"network.{index}", dim, embed_dims[stage + 1], 3)
            index += 1
    add("norm", weight=(embed_dims[-1],), bias=(embed_dims[-1],))
    add("head", weight=(num_classes, embed_dims[-1]), bias=(num_classes,))
    return layout


def official_checkpoint(name: str) -> dict:
    """A checkpoint as timm's CheckpointSaver writes the released `.pth.tar` files (random weights)."""
    generator = torch.Generator().manual_seed(0)
    state_dict = {}
    for key, shape in official_layout(*CONFIGS[name]).items():
        if key.endswith("num_batches_tracked"):
            state_dict[key] = torch.tensor(1000, dtype=torch.int64)
        elif key.endswith("running_var"):
            state_dict[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state_dict[key] = torch.randn(shape, generator=generator)
    return {"epoch": 299, "arch": name, "state_dict": state_dict, "version": 2,
            "state_dict_ema": {k: v.clone() for k, v in state_dict.items()}, "metric": 0.0}


@cache
def torch_twin(name: str):
    """One default-initialised torch twin per variant, shared by the read-only tests."""
    return getattr(modeling_torch, name)()


def test_registry_entries():
    specs = {spec.name: spec for spec in MODELS}
    assert list(specs) == NAMES
    for name, spec in specs.items():
        assert (spec.family, spec.table, spec.input_size, spec.num_classes) == ("fcvit", "fcvit", 224, 1000)
        assert spec.preprocessing.interpolation == "bicubic"
        assert spec.preprocessing.crop_pct == (0.9 if name in ("fcvit_tiny", "fcvit_b12") else 0.95)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_trainable_parameters(name):
    spec = next(spec for spec in MODELS if spec.name == name)
    assert count_trainable(torch_twin(name)) == PARAMETERS[name]
    assert count_trainable(spec.factory("paddle")()) == PARAMETERS[name]


@pytest.mark.parametrize("name", NAMES)
def test_table(name):
    check_table(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_parity(name):
    result = parity(name, batch_size=1, seed=0)
    assert result.ref_max > 0.1, "degenerate logits make the comparison meaningless"
    assert result.max_abs < PARITY_TOLERANCE, result


def test_parity_batch_of_two():
    """The global context normalises per sample: a batch must not mix statistics across samples."""
    result = parity("fcvit_tiny", batch_size=2, seed=1)
    assert result.max_abs < PARITY_TOLERANCE, result


@pytest.mark.parametrize("name", NAMES)
def test_official_layout_matches_twin(name):
    layout = official_layout(*CONFIGS[name])
    assert len(layout) == STATE_DICT_ENTRIES[name]
    assert {k: tuple(v.shape) for k, v in torch_twin(name).state_dict().items()} == layout


@pytest.mark.parametrize("name", ["fcvit_tiny", "fcvit_b12"])
def test_official_checkpoint_loads_strictly(name, tmp_path):
    path = tmp_path / f"{name}.pth.tar"
    torch.save(official_checkpoint(name), path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = getattr(modeling_torch, name)()
    for entry in ("state_dict", "state_dict_ema"):
        model.load_state_dict(checkpoint[entry], strict=True)
    assert torch.equal(model.head.weight, checkpoint["state_dict"]["head.weight"])


def test_official_checkpoint_converts(tmp_path):
    """A released-layout `.pth.tar` converts with the table as it is; the head arrives transposed."""
    from weightport.conversion import convert
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    source, destination = tmp_path / "fcvit_tiny.pth.tar", tmp_path / "fcvit_tiny.pdparams"
    checkpoint = official_checkpoint("fcvit_tiny")
    torch.save(checkpoint, source)
    summary = convert("fcvit_tiny", source, destination)
    # 53 Linear weights (2 per global context, 2 contexts per block, 13 blocks, + head); 4 BatchNorm counters
    assert (summary.wrapper, summary.transposed, summary.dropped) == ("state_dict", 53, 4), summary
    model = MODELS[0].factory("paddle")()
    state_dict = paddle.load(str(destination))
    assert set(state_dict) == set(model.state_dict())
    model.set_state_dict(state_dict)
    expected = checkpoint["state_dict"]["head.weight"].numpy().T
    assert (model.head.weight.numpy() == expected).all()
