"""Every registered model: its table pairs the two twins exactly, and its manifest matches them."""
from __future__ import annotations

import json

import pytest

from weightport.models.pair import resolve
from weightport.models.registry import list_models
from weightport.tables.check import table_problems, twin_problems
from weightport.tables.layouts import model_layout


@pytest.mark.parametrize("name", list_models())
@pytest.mark.slow
def test_table_and_manifest_fit_both_twins(name):
    # Skeletons: the structure and the state dicts' names, shapes and dtypes, without initialising a weight.
    twins = {framework: resolve(name).skeleton(framework) for framework in ("torch", "paddle")}
    problems = twin_problems(resolve(name).table(), twins["torch"], twins["paddle"])
    assert not problems, "\n".join(problems)
    manifest_file = resolve(name).manifest_file
    manifest = json.loads(manifest_file.read_text())
    for framework, model in twins.items():
        layout = model_layout(model, framework)
        stored = {k: (tuple(shape), dtype) for k, (shape, dtype) in manifest[framework].items()}
        assert stored == layout, f"{manifest_file} is stale: run scripts/update_layouts.py {name}"
        # The tensors said to follow the class count hold it, and the table pairs them with each other.
        classifier, classes = manifest["classifier"][framework], resolve(name).num_classes
        if classes:
            assert classifier and all(layout[k][0][dim] == classes for k, dim in classifier.items())
        else:  # a backbone: no tensor follows a class count
            assert not classifier
    table = resolve(name).table()
    assert sorted(table.rename(k, "paddle") for k in manifest["classifier"]["torch"]) == sorted(manifest["classifier"]["paddle"])


def test_table_check_catches_a_missing_transpose_and_an_unpaired_key(tiny_model, tmp_path):
    from pathlib import Path

    text = (Path(__file__).parent / "tiny_twins.toml").read_text()
    broken = text.replace('transpose = ["square.weight", "head.weight"]', 'transpose = ["head.weight"]')
    broken = broken.replace('[[rename]]\ntorch = "norm.{param}"\npaddle = "ln.{param}"\n', "")
    (tmp_path / "broken.toml").write_text(broken)
    problems = table_problems(resolve(tiny_model).with_table(tmp_path / "broken.toml"))
    assert "square.weight: Linear weight left untransposed" in problems
    assert any(p.startswith("norm.weight -> norm.weight: no such Paddle key") for p in problems)
    assert "ln.weight: Paddle key not produced from any torch key" in problems


def test_table_check_refuses_an_adjust_rule_that_adjusts_nothing_or_integers(tiny_model, tmp_path):
    from pathlib import Path

    text = (Path(__file__).parent / "tiny_twins.toml").read_text()
    text += ('\n[[adjust]]\ntorch = "stem.gamma"\nscale = 2.0\nwhy = "a typo"\n'
             '\n[[adjust]]\ntorch = "stem_bn.num_batches_tracked"\noffset = 1.0\nwhy = "a counter"\n')
    (tmp_path / "adjusting.toml").write_text(text)
    problems = table_problems(resolve(tiny_model).with_table(tmp_path / "adjusting.toml"))
    assert "adjust rule 'stem.gamma': matches no torch key" in problems
    assert "stem_bn.num_batches_tracked: adjusted by the table, but holds int64" in problems


MHA_TABLE = '''
transpose = ["{m:.+}.in_proj_weight", "{m:.+}.out_proj.weight"]

[[split]]
torch = "{m:.+}.in_proj_weight"
paddle = ["{m}.q_proj.weight", "{m}.k_proj.weight", "{m}.v_proj.weight"]

[[split]]
torch = "{m:.+}.in_proj_bias"
paddle = ["{m}.q_proj.bias", "{m}.k_proj.bias", "{m}.v_proj.bias"]
'''


def _attention_twins():
    import torch

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    return torch.nn.Sequential(torch.nn.MultiheadAttention(8, 2)), paddle.nn.Sequential(paddle.nn.MultiHeadAttention(8, 2))


def test_a_split_rule_cuts_a_packed_tensor_and_joins_it_back_exactly(tmp_path):
    import numpy as np

    from weightport.tables.loading import load_table

    (tmp_path / "mha.toml").write_text(MHA_TABLE)
    table = load_table(tmp_path / "mha.toml")
    assert twin_problems(table, *_attention_twins()) == []
    packed = np.random.default_rng(0).standard_normal((24, 8)).astype(np.float32)
    forward = table.plan(["0.in_proj_weight"], "paddle")
    parts = {s.target: np.ascontiguousarray(s.part_of(packed).T) for s in forward.steps}
    assert list(parts) == ["0.q_proj.weight", "0.k_proj.weight", "0.v_proj.weight"]
    assert np.array_equal(parts["0.k_proj.weight"], packed[8:16].T)
    (back,) = table.plan(list(parts), "torch").steps  # the three parts make one step
    assert back.target == "0.in_proj_weight" and back.parts == tuple(parts)
    assert table.targets("0.in_proj_bias", "paddle") == ("0.q_proj.bias", "0.k_proj.bias", "0.v_proj.bias")
    assert table.targets("0.v_proj.bias", "torch") == ("0.in_proj_bias",)


def test_map_check_catches_a_split_that_does_not_fit(tmp_path):
    from weightport.tables.loading import load_table

    untransposed = MHA_TABLE.replace('"{m:.+}.in_proj_weight", ', "")
    (tmp_path / "untransposed.toml").write_text(untransposed)
    assert "0.in_proj_weight: Linear weight left untransposed" in twin_problems(load_table(tmp_path / "untransposed.toml"),
                                                                               *_attention_twins())
    two_parts = MHA_TABLE.replace('"{m}.q_proj.bias", "{m}.k_proj.bias", "{m}.v_proj.bias"', '"{m}.q_proj.bias", "{m}.k_proj.bias"')
    (tmp_path / "two.toml").write_text(two_parts)
    problems = twin_problems(load_table(tmp_path / "two.toml"), *_attention_twins())
    assert any(p.startswith("0.in_proj_bias -> 0.q_proj.bias: shape [12]") for p in problems)
    assert "0.v_proj.bias: Paddle key not produced from any torch key" in problems


@pytest.mark.parametrize(("rule", "message"), [
    ('torch = "a.w"\npaddle = ["b.w"]', "two or more parts"),
    ('torch = "{m:.+}.w"\npaddle = ["{m}.q", "{n}.k"]', "the torch pattern's placeholders"),
    ('torch = "a.w"\npaddle = ["a.q", "a.k"]\nfill = 0', "unknown fill"),
])
def test_a_malformed_split_rule_is_refused(rule, message, tmp_path):
    from weightport.errors import TableError
    from weightport.tables.loading import load_table

    (tmp_path / "bad.toml").write_text(f"[[split]]\n{rule}\n")
    with pytest.raises(TableError, match=message):
        load_table(tmp_path / "bad.toml")
