"""Bring your own twins: factories on the command line, entry-point models, `map draft` and `map check`.

`torch_nested` / `paddle_nested` below are a second pair of hand-written twins, nested this time
(blocks of attention and MLP under differently named containers, a parameter on the root, a PReLU,
a Linear used twice); the drafted table must convert and verify them without edits, like
the flat pair in tests/tiny_twins.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from weightport.cli.options import parse_model_args
from weightport.errors import UserError
from weightport.models.pair import TwinPair

REPO = Path(__file__).resolve().parent.parent
TINY = ("--torch-model", "tests.tiny_twins:torch_tiny", "--paddle-model", "tests.tiny_twins:paddle_tiny")
NESTED = ("--torch-model", "tests.test_byo:torch_nested", "--paddle-model", "tests.test_byo:paddle_nested")


def torch_nested(dim: int = 8, depth: int = 2, num_classes: int = 3):
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            weights = torch.softmax(q @ k.transpose(1, 2) / dim**0.5, dim=-1)
            return self.proj(weights @ v)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class Nested(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Sequential(nn.Conv2d(3, dim, 2, stride=2), nn.BatchNorm2d(dim), nn.PReLU())
            self.pos_embed = nn.Parameter(torch.zeros(1, 16, dim))
            self.blocks = nn.Sequential(*(Block() for _ in range(depth)))
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.patch_embed(x).flatten(2).transpose(1, 2)
            x = self.blocks(x + self.pos_embed[:, : x.shape[1]])
            return self.head(self.norm(x).mean(1))

    return Nested()


def paddle_nested(dim: int = 8, depth: int = 2, num_classes: int = 3):
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    nn = paddle.nn

    class Attention(nn.Layer):
        def __init__(self):
            super().__init__()
            self.to_qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)

        def forward(self, x):
            q, k, v = self.to_qkv(x).chunk(3, axis=-1)
            weights = nn.functional.softmax(q @ k.transpose([0, 2, 1]) / dim**0.5, axis=-1)
            return self.out(weights @ v)

    class FeedForward(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(dim, 2 * dim)
            self.fc2 = nn.Linear(2 * dim, dim)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    class Layer(nn.Layer):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.attention = Attention()
            self.ln2 = nn.LayerNorm(dim)
            self.ffn = FeedForward()

        def forward(self, x):
            x = x + self.attention(self.ln1(x))
            return x + self.ffn(self.ln2(x))

    class Nested(nn.Layer):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2D(3, dim, 2, stride=2), nn.BatchNorm2D(dim), nn.PReLU())
            self.pos_embed = self.create_parameter([1, 16, dim], default_initializer=nn.initializer.Constant(0.0))
            self.layers = nn.LayerList([Layer() for _ in range(depth)])
            self.final_norm = nn.LayerNorm(dim)
            self.classifier = nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.stem(x).flatten(2).transpose([0, 2, 1])
            x = x + self.pos_embed[:, : x.shape[1]]
            for layer in self.layers:
                x = layer(x)
            return self.classifier(self.final_norm(x).mean(1))

    return Nested()


def run(*args, env=None):
    """The CLI in a subprocess from the repository root (so that `tests` is importable)."""
    return subprocess.run(
        [sys.executable, "-m", "weightport", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=env
    )


def assert_rc(result, rc: int):
    assert result.returncode == rc, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("twins", [TINY, NESTED], ids=["flat", "nested"])
@pytest.mark.slow
def test_drafted_table_converts_and_verifies_without_edits(twins, tmp_path):
    drafted = run("map", "draft", *twins, "--input-size", "8")
    assert_rc(drafted, 0)
    table = tmp_path / "table.toml"
    table.write_text(drafted.stdout)
    assert "Not paired" not in drafted.stdout and "map check` finds" not in drafted.stdout
    assert_rc(run("map", "check", *twins, "--mapping", table), 0)
    if twins == NESTED:  # general patterns: the table drafted for two blocks fits three
        assert_rc(run("map", "check", *twins, "--mapping", table, "--model-arg", "depth=3"), 0)

    # A torch checkpoint with non-trivial weights, converted by the CLI and verified against it.
    import torch

    from weightport import create_model
    from weightport.models.weights import randomize_torch

    model = create_model(TwinPair.from_factories(twins[1], twins[3], table), "torch")
    randomize_torch(model, seed=3)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "twin.pth")
    converted = run("convert", tmp_path / "twin.pth", tmp_path / "twin.pdparams", *twins, "--mapping", table, "--json")
    assert_rc(converted, 0)
    summary = json.loads(converted.stdout)
    assert summary["transposed"] == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    report = tmp_path / "parity.json"
    verified = run("verify", *twins, "--mapping", table, "--torch", tmp_path / "twin.pth",
                   "--paddle", tmp_path / "twin.pdparams", "--input-size", "8", "--batch-size", "1",
                   "--device", "cpu", "--json-file", report)
    assert_rc(verified, 0)
    result = json.loads(report.read_text())["models"][0]
    assert result["outputs"][0]["metrics"]["max_abs"] < 1e-5


def paddle_tiny_wide_head(num_classes: int = 5):
    """The tiny Paddle twin with two classes more than its torch twin: the heads cannot pair."""
    from tests.tiny_twins import paddle_tiny

    return paddle_tiny(num_classes + 2)


@pytest.mark.slow
def test_draft_comments_on_what_it_cannot_pair():
    drafted = run("map", "draft", "--torch-model", "tests.tiny_twins:torch_tiny",
                  "--paddle-model", "tests.test_byo:paddle_tiny_wide_head", "--input-size", "8")
    assert_rc(drafted, 1)
    assert "torch module head (Linear): weight [5, 6], bias [5]" in drafted.stdout
    assert "paddle module classifier (Linear): weight [6, 7], bias [7]" in drafted.stdout
    assert "head.weight: Linear weight left untransposed" not in drafted.stdout  # drafted by layer class
    assert "things to fix by hand" in drafted.stderr
    # What could be paired is drafted: the table still reads, with the other four renames.
    import tomllib

    table = tomllib.loads(drafted.stdout)
    assert [r["paddle"] for r in table["rename"]] == ["conv.{rest}", "bn.{rest}", "mix.{rest}", "ln.{rest}"]


@pytest.mark.slow
def test_map_check_lists_an_untransposed_linear_and_an_unpaired_key(tmp_path):
    text = (REPO / "tests" / "tiny_twins.toml").read_text()
    broken = text.replace('transpose = ["square.weight", "head.weight"]', 'transpose = ["head.weight"]')
    broken = broken.replace('[[rename]]\ntorch = "norm.{param}"\npaddle = "ln.{param}"\n', "")
    assert broken.count("[[rename]]") == 4
    (tmp_path / "broken.toml").write_text(broken)
    result = run("map", "check", *TINY, "--mapping", tmp_path / "broken.toml")
    assert_rc(result, 1)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torch_tiny+paddle_tiny: ") and " problems with mapping table " in lines[0]
    assert "  square.weight: Linear weight left untransposed" in lines
    assert "  ln.weight: Paddle key not produced from any torch key" in lines
    assert "  norm.weight -> norm.weight: no such Paddle key" in lines


@pytest.mark.parametrize("name", ["resnet18", "cmt_ti"])
@pytest.mark.slow
def test_map_check_registered_models(name):
    result = run("map", "check", name)
    assert_rc(result, 0)
    assert "fits both twins" in result.stdout


@pytest.mark.slow
def test_map_check_a_registered_model_against_another_table(tmp_path):
    (tmp_path / "no_transpose.toml").write_text('include = ["shared/batchnorm"]\n')
    result = run("map", "check", "resnet18", "--mapping", tmp_path / "no_transpose.toml")
    assert_rc(result, 1)
    assert "  fc.weight: Linear weight left untransposed" in result.stdout.splitlines()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("convert", "a.pth", "b.pdparams", "--torch-model", "tests.tiny_twins:torch_tiny"), "go together"),
        (("convert", "a.pth", "b.pdparams", *TINY), "--mapping TABLE.toml is needed"),
        (("convert", "resnet18", "a.pth", "b.pdparams", *TINY, "--mapping", "tests/tiny_twins.toml"), "expected MODEL SRC DST"),
        (("convert", "resnet18", "a.pth", "b.pdparams", "--mapping", "tests/tiny_twins.toml"), "--mapping goes with"),
        (("verify", "resnet18", *TINY, "--mapping", "tests/tiny_twins.toml"), "not both"),
        (("map", "check", "--torch-model", "nosuch_module:build", "--paddle-model", "tests.tiny_twins:paddle_tiny",
          "--mapping", "tests/tiny_twins.toml"), "cannot import the torch twin's factory 'nosuch_module:build'"),
        (("map", "check", "--torch-model", "tests.tiny_twins:nosuch", "--paddle-model", "tests.tiny_twins:paddle_tiny",
          "--mapping", "tests/tiny_twins.toml"), "'tests.tiny_twins' has no torch twin factory 'nosuch'"),
        (("map", "draft", "--torch-model", "tests/tiny_twins.py", "--paddle-model", "tests.tiny_twins:paddle_tiny"),
         "write the factory as module:function"),
        (("map", "check", *TINY, "--mapping", "absent.toml"), "--mapping 'absent.toml': no such mapping table file"),
        (("map", "draft", *TINY, "--model-arg", "num_classes"), "write it as name=value"),
        (("map", "draft", *TINY, "--model-arg", "depth=3"), "cannot be built with {'depth': 3}"),
        (("map", "draft"), "name a registered model"),
    ],
)
def test_mistakes_give_one_line_and_exit_2(args, fragment):
    result = run(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.stderr


def test_model_args_are_python_literals_or_words():
    assert parse_model_args(["img_size=256", "drop= 0.1", "act=gelu", "depths=[2, 2]", "bias=False"]) == {
        "img_size": 256, "drop": 0.1, "act": "gelu", "depths": [2, 2], "bias": False,
    }
    with pytest.raises(UserError, match="given twice"):
        parse_model_args(["a=1", "a=2"])
    with pytest.raises(UserError, match="name=value"):
        parse_model_args(["2a=1"])


def test_factory_pairs_are_named_by_their_factories_and_known_by_no_name():
    from weightport.models.pair import resolve
    from weightport.models.registry import list_models

    table = REPO / "tests" / "tiny_twins.toml"
    pair = TwinPair.from_factories("tests.tiny_twins:torch_tiny", "tests.tiny_twins:paddle_tiny", table, input_size=8)
    assert pair.name == "torch_tiny+paddle_tiny" and pair.family == "custom" and pair.kind == "factories"
    assert pair.table_name == str(table) and pair.table().name == "tiny_twins" and pair.input_size == 8
    assert pair.sources == {"torch": "tests.tiny_twins:torch_tiny", "paddle": "tests.tiny_twins:paddle_tiny"}
    assert pair.parameter_count() is None and pair.classifier_dims("paddle") == {}  # no manifest
    assert resolve(pair) is pair
    # Nothing is registered on the way: the name is the pair's only, not the process's.
    assert pair.name not in list_models()
    with pytest.raises(UserError, match="unknown model 'torch_tiny\\+paddle_tiny'"):
        resolve(pair.name)
    assert TwinPair.from_factories("tests.tiny_twins:torch_tiny", "tests.tiny_twins:torch_tiny").name == "torch_tiny"
    with pytest.raises(UserError, match="has no mapping table; .* drafts one from the twins \\(pass table='TABLE.toml' to give it one\\)"):
        TwinPair.from_factories("tests.tiny_twins:torch_tiny", "tests.tiny_twins:paddle_tiny").table()


def test_help_of_the_map_commands_does_not_import_the_frameworks():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from weightport.cli import cli\n"
        "for args in ([\"map\", \"--help\"], [\"map\", \"draft\", \"--help\"], [\"map\", \"check\", \"--help\"]):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('torch', 'paddle', 'timm') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.slow
def test_entry_point_packages_add_their_models(tmp_path):
    """A package registering the tiny twins through the `weightport.models` entry point group."""
    import os

    (tmp_path / "tiny_plugin.py").write_text(textwrap.dedent(f"""
        from weightport.models.registry import ModelSpec

        def models():
            return [ModelSpec(name="plugin_tiny", family="plugin", table={str(REPO / "tests" / "tiny_twins.toml")!r},
                              torch_factory="tests.tiny_twins:torch_tiny",
                              paddle_factory="tests.tiny_twins:paddle_tiny", input_size=8)]
    """))
    dist = tmp_path / "tiny_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[weightport.models]\ntiny = tiny_plugin:models\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    listed = run("list", "--json", env=env)
    assert_rc(listed, 0)
    plugin = next(m for m in json.loads(listed.stdout) if m["name"] == "plugin_tiny")
    assert plugin["family"] == "plugin" and plugin["parameters"] is None
    assert_rc(run("map", "check", "plugin_tiny", env=env), 0)

    (dist / "entry_points.txt").write_text("[weightport.models]\ntiny = tiny_plugin:absent\n")
    broken = run("list", env=env)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "entry point 'tiny' (tiny_plugin:absent) of group weightport.models failed to load" in broken.stderr


def test_draft_of_a_registered_model_pairs_by_name():
    """timm's and paddle.vision's ResNet-18 share their module names: nothing to rename."""
    from weightport.tables.draft import draft_table

    draft = draft_table("resnet18", input_size=32)
    assert draft.modules == 41 and draft.pairs == 102 and not draft.unpaired and not draft.problems
    body = draft.text.split("description = ")[1]
    assert 'include = ["shared/batchnorm"]' in body and 'transpose = ["fc.weight"]' in body
    assert "[[rename]]" not in body
