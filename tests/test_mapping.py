"""The table engine: patterns, reversibility, includes, transposes decided by rule not shape."""
from __future__ import annotations

import pytest

from weightport.errors import TableError
from weightport.tables.loading import load_table
from weightport.tables.rules import Pattern


def _table(tmp_path, text, name="t"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_table(path)


def test_pattern_placeholders():
    p = Pattern.parse("blocks.{i:\\d+}.{part}.weight", "test")
    assert p.match("blocks.12.attn.weight") == {"i": "12", "part": "attn"}
    assert p.match("blocks.x.attn.weight") is None
    assert p.match("blocks.1.attn.proj.weight") is None  # {part} is one segment
    assert p.format({"i": "3", "part": "mlp"}) == "blocks.3.mlp.weight"


def test_integer_offsets_and_repeated_placeholders_are_reversible(tmp_path):
    table = _table(tmp_path, '[[rename]]\ntorch = "features.denseblock{b}.denselayer{l}.{rest:.+}"\n'
                             'paddle = "db_conv_{b+1}.conv{b+1}_{l}.{rest}"\n')
    assert table.rename("features.denseblock1.denselayer12.norm1.weight", "paddle") == "db_conv_2.conv2_12.norm1.weight"
    assert table.rename("db_conv_2.conv2_12.norm1.weight", "torch") == "features.denseblock1.denselayer12.norm1.weight"
    assert table.rename("db_conv_2.conv3_12.norm1.weight", "torch") == "db_conv_2.conv3_12.norm1.weight"  # the two disagree
    shifted = Pattern.parse("blocks.{i-1}.conv", "t")
    assert shifted.match("blocks.0.conv") == {"i": "1"} and shifted.format({"i": "5"}) == "blocks.4.conv"
    only = _table(tmp_path, '[[rename]]\ntorch = "features.{i:2|3}.block.2.{m}"\npaddle = "blocks.{i-1}.project.{m}"\n', "only")
    assert only.rename("blocks.1.project.weight", "torch") == "features.2.block.2.weight"
    assert only.rename("blocks.5.project.weight", "torch") == "blocks.5.project.weight"  # 6 is not 2 or 3


def test_adjusted_values_go_there_and_back(tmp_path):
    import numpy as np

    table = _table(tmp_path, '[[adjust]]\ntorch = "{m:.+}.running_var"\noffset = 0.25\nscale = 2.0\nwhy = "eps"\n')
    rule = table.plan(["bn.running_var", "bn.weight"], "paddle").steps[0].adjust
    assert rule.why == "eps" and table.plan(["bn.weight"], "paddle").steps[0].adjust is None
    values = np.array([1.0, 3.0])
    assert rule.apply(values, "paddle").tolist() == [2.25, 6.25]
    assert rule.apply(rule.apply(values, "paddle"), "torch").tolist() == values.tolist()


def test_dots_are_literal():
    assert Pattern.parse("fc.weight", "t").match("fcXweight") is None


def test_rename_rules_apply_in_order_and_reverse(tmp_path):
    table = _table(
        tmp_path,
        """
include = ["shared/batchnorm"]
[[rename]]
torch = "stem.{rest:.+}"
paddle = "stem_layer.{rest}"
[[rename]]
torch = "head.fc.{param}"
paddle = "fc.{param}"
""",
    )
    cases = {
        "stem.bn.running_mean": "stem_layer.bn._mean",
        "stem.conv.weight": "stem_layer.conv.weight",
        "head.fc.bias": "fc.bias",
        "layer1.0.bn1.running_var": "layer1.0.bn1._variance",
        "untouched.weight": "untouched.weight",
    }
    for torch_key, paddle_key in cases.items():
        assert table.rename(torch_key, "paddle") == paddle_key
        assert table.rename(paddle_key, "torch") == torch_key


def test_placeholder_expression_declared_on_one_side_holds_for_both(tmp_path):
    table = _table(tmp_path, '[[rename]]\ntorch = "{m:.+}.gamma"\npaddle = "{m}.weight"\n')
    assert table.rename("a.b.c.weight", "torch") == "a.b.c.gamma"


def test_drops_and_fills(tmp_path):
    table = _table(tmp_path, 'include = ["shared/batchnorm"]\n')
    plan = table.plan(["bn.weight", "bn.num_batches_tracked"], "paddle")
    assert plan.dropped == ("bn.num_batches_tracked",)
    back = table.plan(["bn.weight", "bn._mean"], "torch")
    fills = back.fills(["bn.weight", "bn.running_mean", "bn.num_batches_tracked"], table)
    assert list(fills) == ["bn.num_batches_tracked"] and fills["bn.num_batches_tracked"].fill == 0


def test_transposes_follow_the_rule_even_for_square_weights(tmp_path):
    table = _table(tmp_path, 'transpose = ["{block:.+}.q.weight"]\n')
    plan = table.plan(["blocks.0.attn.q.weight", "blocks.0.attn.q.bias", "blocks.0.conv.weight"], "paddle")
    assert [s.transpose for s in plan.steps] == [True, False, False]
    # The rule is keyed by torch names, so the way back transposes the same tensors.
    back = table.plan([s.target for s in plan.steps], "torch")
    assert [s.transpose for s in back.steps] == [True, False, False]


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[rename]]\ntorch = "a.{x}"\npaddle = "b.{y}"\n', "same placeholders"),
        ('[[rename]]\ntorch = "a.{x}"\n', "missing paddle"),
        ('[[rename]]\ntorch = "a.{x"\npaddle = "b"\n', "unbalanced brace"),
        ('[[adjust]]\ntorch = "a"\nscale = 2.0\n', "missing why"),
        ('[[adjust]]\ntorch = "a"\nscale = -1.0\nwhy = "w"\n', "scale must be positive"),
        ('[[adjust]]\ntorch = "a"\nscale = "2"\nwhy = "w"\n', "must be numbers"),
        ('[[rename]]\ntorch = "a.{x:(}"\npaddle = "b.{x}"\n', "bad regular expression"),
        ('[[drop]]\ntorch = "a"\npaddle = "b"\n', "exactly one"),
        ('[[drop]]\ntorch = "a"\nfill = "zero"\n', "fill and scale must be numbers"),
        ('[[drop]]\ntorch = "a.{x}"\nfill = 0\ninto = "b.{y}"\nwhy = "w"\n', "only the dropped key's placeholders"),
        ('[[drop]]\ntorch = "a.{x}"\ninto = "b.{x}"\nwhy = "w"\n', "needs the fill"),
        ('transposes = ["a"]\n', "unknown entries transposes"),
        ('include = ["nope/nothing"]\n', "not found"),
        ("this is not toml", "cannot read"),
    ],
)
def test_bad_tables_are_refused_clearly(tmp_path, text, message):
    with pytest.raises(TableError, match=message):
        _table(tmp_path, text)


def test_unknown_table():
    with pytest.raises(TableError, match="not found"):
        load_table("no_such_family")


def test_include_cycles_are_read_once(tmp_path):
    (tmp_path / "a.toml").write_text('include = ["b"]\ntranspose = ["x.weight"]\n')
    (tmp_path / "b.toml").write_text('include = ["a"]\ntranspose = ["y.weight"]\n')
    table = load_table(tmp_path / "a.toml")
    assert [p.text for p in table.transposes] == ["y.weight", "x.weight"]
