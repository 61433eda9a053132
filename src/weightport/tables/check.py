"""Check a mapping table against both twins, without any checkpoint.

A table is right when every torch key is either dropped or paired with exactly one Paddle key,
every Paddle key is produced (or filled), the pairing survives the round trip, the transposes
fall exactly on the Linear weights of both twins, and shapes agree after transposing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..formats import dtypes
from ..frameworks import named_modules, quiet_paddle_import
from ..models.pair import TwinPair, resolve
from .layouts import model_layout
from .rules import Table

MHA_PROJECTIONS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def linear_weights(model, framework: str) -> set[str]:
    """State-dict keys of the weights of every Linear layer in a model (a layer registered under two
    names, as the state dict lists it, under each), nn.MultiheadAttention's projections included. A
    model that is a program rather than layers (a ported program's Paddle twin) says which of its
    parameters it multiplies by as a Linear does."""
    if hasattr(model, "linear_weights"):
        return model.linear_weights()
    if framework == "torch":
        import torch

        linear, modules = torch.nn.Linear, list(model.named_modules(remove_duplicate=False))
        # nn.MultiheadAttention applies its q, k, v projections as Linear layers do (F.linear), packed or not.
        packed = {f"{name}.{weight}" if name else weight for name, module in modules
                  if isinstance(module, torch.nn.MultiheadAttention)
                  for weight in MHA_PROJECTIONS if getattr(module, weight, None) is not None}
    else:
        linear, modules, packed = quiet_paddle_import().nn.Linear, named_modules(model, framework), set()
    return packed | {f"{name}.weight" if name else "weight" for name, module in modules if isinstance(module, linear)}


def table_problems(model: TwinPair | str | Path, **model_kwargs: Any) -> list[str]:
    """Everything wrong with the table of `model` (anything `models.pair.resolve` takes; another table:
    `TwinPair.with_table`) against its twins built with `model_kwargs` (an empty list when it is right)."""
    pair = resolve(model)
    table = pair.table()
    twins = (pair.create_to_overwrite(framework, **model_kwargs) for framework in ("torch", "paddle"))
    return twin_problems(table, *twins)


def twin_problems(table: Table, torch_model, paddle_model) -> list[str]:
    """Everything wrong with `table` against two built twins (an empty list when it is right)."""
    torch_layout, paddle_layout = model_layout(torch_model, "torch"), model_layout(paddle_model, "paddle")
    problems = []

    forward = table.plan(torch_layout, "paddle")
    produced: dict[str, str] = {}
    for step in forward.steps:
        if step.target in produced:
            problems.append(f"{step.source} and {produced[step.target]} both map to {step.target}")
        produced[step.target] = step.source
        if step.target not in paddle_layout:
            problems.append(f"{step.source} -> {step.target}: no such Paddle key")
            continue
        whole = torch_layout[step.source][0]
        shape = step.part_shape(whole)
        if step.split is not None and whole[step.split.axis % len(whole)] % len(step.split.paddle):
            problems.append(f"{step.source}: shape {list(whole)} does not split into "
                            f"{len(step.split.paddle)} equal parts along axis {step.split.axis}")
            continue
        shape = tuple(reversed(shape)) if step.transpose else shape
        if shape != paddle_layout[step.target][0]:
            problems.append(
                f"{step.source} -> {step.target}: shape {list(shape)} after the table, Paddle has {list(paddle_layout[step.target][0])}"
            )
        if torch_layout[step.source][1] != paddle_layout[step.target][1]:
            problems.append(
                f"{step.source} -> {step.target}: dtype {torch_layout[step.source][1]} vs {paddle_layout[step.target][1]}"
            )
    fills = forward.fills(paddle_layout, table)
    problems += [f"{k}: Paddle key not produced from any torch key" for k in paddle_layout if k not in produced and k not in fills]

    backward = table.plan(paddle_layout, "torch")
    for step in backward.steps:
        if step.target not in torch_layout:
            problems.append(f"{step.source} -> {step.target}: no such torch key on the way back")
        for source in step.parts or (step.source,):
            if produced.get(source) not in (None, step.target):
                problems.append(f"{source}: maps back to {step.target}, not to {produced[source]}")
    back_fills = backward.fills(torch_layout, table)
    problems += [
        f"{k}: torch key neither produced on the way back nor created by a drop rule"
        for k in torch_layout
        if k not in {s.target for s in backward.steps} and k not in back_fills
    ]

    for side, layout in (("torch", torch_layout), ("paddle", paddle_layout)):
        problems += [f"{key}: folded into {into}, which the {side} twin lacks or holds in another shape"
                     for into, folded in table.folds(layout, side).items() for key, _ in folded
                     if layout.get(into, (None,))[0] != layout[key][0]]
    for side, layout in (("torch", torch_layout), ("paddle", paddle_layout)):
        problems += [f"{key}: the same tensor as {rule.same_as_key(key)}, which the {side} twin lacks or holds in another shape"
                     for key in layout if (rule := table.drop_rule(key, side)) is not None and rule.same_as is not None
                     and layout.get(rule.same_as_key(key)) != layout[key]]
    for rule in table.adjusts:
        matched = [k for k in torch_layout if rule.torch.match(k) is not None]
        if not matched:
            problems.append(f"adjust rule {rule.torch.text!r}: matches no torch key")
        problems += [f"{k}: adjusted by the table, but holds {torch_layout[k][1]}" for k in matched
                     if torch_layout[k][1] not in dtypes.FLOATING]

    torch_linear = linear_weights(torch_model, "torch")
    paddle_linear = linear_weights(paddle_model, "paddle")
    transposed = {s.source for s in forward.steps if s.transpose}
    problems += [f"{k}: Linear weight left untransposed" for k in sorted(torch_linear - transposed)]
    problems += [f"{k}: transposed but not a Linear weight" for k in sorted(transposed - torch_linear)]
    problems += [
        f"{s.source} -> {s.target}: the Paddle side is {'a' if s.target in paddle_linear else 'not a'} Linear weight"
        for s in forward.steps
        if s.target in paddle_layout and (s.target in paddle_linear) != (s.source in torch_linear)
    ]
    return problems
