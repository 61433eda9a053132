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
