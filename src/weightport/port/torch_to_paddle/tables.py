"""The ported folder's mapping table and layout manifest.

The generated twin keeps torch's names, so its table is what every twin pair shares (BatchNorm's
statistics) plus what Paddle's layers store differently, as layers.toml's `attributes` say: the
Linear weights transposed (patterns found by `map draft`'s drafter), PReLU's and InstanceNorm's
weights renamed, nn.MultiheadAttention's packed projection split, the second names of
Paddle's RNN weights (`0.cell_fw.weight_ih` beside `weight_ih_l0`) copies of the first. `map check`'s checker then proves the
table against both twins before the folder is complete.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...errors import PortError
from ...tables.check import twin_problems
from ...tables.draft import BATCHNORM_RULES, _toml_string, _transpose_patterns
from ...tables.layouts import count_trainable, manifest_text, model_layout
from ...tables.loading import load_table
from ...tables.rules import Pattern
from .emit import base_translation, class_name, layer_translation

BATCHNORM_STATISTICS = ("running_mean", "running_var")  # renamed by the shared BatchNorm rules
ALIAS_WHY = "Paddle's layer lists this tensor a second time, under its sublayer's name"


def mapping_table(source: str, torch_model: torch.nn.Module, paddle_model) -> str:
    torch_keys = list(torch_model.state_dict())
    transposed, renames, splits, aliases = [], [], [], []
    paddle_keys = list(paddle_model.state_dict())
    for path, module in torch_model.named_modules(remove_duplicate=False):
        entry = layer_translation(module) or base_translation(module)
        prefix = f"{path}." if path else ""
        for second, first in (entry.aliases.items() if entry is not None else ()):
            pattern = Pattern.parse(prefix + second, f"{class_name(module)} alias")
            if any(pattern.match(k) is not None for k in paddle_keys):
                aliases.append((prefix + second, prefix + first))
        for name, spelled in (entry.attributes.items() if entry is not None else ()):
            if getattr(module, name, None) is None or name in BATCHNORM_STATISTICS:
                continue
            parts = spelled if isinstance(spelled, list) else [spelled]
            if all(part.endswith(".T") for part in parts):
                transposed.append(prefix + name)
            parts = [prefix + part.removesuffix(".T") for part in parts]
            if isinstance(spelled, list):
                splits.append((prefix + name, parts))
            elif parts[0] != prefix + name:
                renames.append((prefix + name, parts[0]))
    uses_batchnorm = any(k.endswith(".running_mean") or k == "running_mean" for k in torch_keys)
    out = [f"description = {_toml_string(f'{source} <-> its generated Paddle twin (weightport port)')}"]
    if uses_batchnorm:
        out.append(f"include = [{_toml_string(BATCHNORM_RULES)}]")
    transposes = _transpose_patterns(transposed, torch_keys)
    out += ["transpose = [", *(f"    {_toml_string(t)}," for t in transposes), "]"]
    for torch_key, paddle_key in renames:
        out += ["", "[[rename]]", f"torch = {_toml_string(torch_key)}", f"paddle = {_toml_string(paddle_key)}"]
    for second, first in aliases:
        out += ["", "[[drop]]", f"paddle = {_toml_string(second)}", f"same_as = {_toml_string(first)}", f"why = {_toml_string(ALIAS_WHY)}"]
    for torch_key, parts in _split_patterns(splits, torch_keys):
        out += ["", "[[split]]", f"torch = {_toml_string(torch_key)}", f"paddle = [{', '.join(map(_toml_string, parts))}]"]
    return "\n".join(out) + "\n"


def _split_patterns(splits: list[tuple[str, list[str]]], torch_keys: list[str]) -> list[tuple[str, list[str]]]:
    """One rule for the splits that differ only in the layer's path ({layer:.+}.in_proj_weight),
    where that pattern claims no other key; the others key by key."""
    rules, by_tail = [], {}
    for key, parts in splits:
        layer, _, name = key.rpartition(".")
        tails = tuple(part.removeprefix(f"{layer}.") for part in parts) if layer else None
        by_tail.setdefault((name, tails), []).append((key, parts))
    for (name, tails), group in by_tail.items():
        matched = [k for k in torch_keys if k.endswith(f".{name}")]
        if tails is not None and sorted(matched) == sorted(key for key, _ in group):
            rules.append((f"{{layer:.+}}.{name}", [f"{{layer}}.{tail}" for tail in tails]))
        else:
            rules += group
    return rules


def layout_manifest(name: str, torch_model: torch.nn.Module, paddle_model) -> str:
    """The layout manifest (the schema of each family's layouts/<model>.json). No classifier probe: a
    ported twin is generated for one class count; port again for another."""
    layouts = {"torch": model_layout(torch_model, "torch"), "paddle": model_layout(paddle_model, "paddle")}
    return manifest_text(name, count_trainable(torch_model), {}, layouts)


def check_table(path: Path, torch_model: torch.nn.Module, paddle_model) -> None:
    problems = twin_problems(load_table(path), torch_model, paddle_model)
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise PortError(f"the generated twin's keys do not match torch's: {shown}")
