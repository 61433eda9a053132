"""Draft a mapping table for a twin pair from the twins themselves.

Both twins are built and run once on the same batch to learn the order in which their modules
execute. The modules that own state-dict entries are paired by layer class and shapes (a Linear
weight compared transposed, BatchNorm statistics through the shared BatchNorm rules): under the
same name where both twins have it, else in execution order. The tensor pairs then yield a few
general rename rules, chosen greedily (see `_rename_rules`) and checked both ways; Linear
weights get transpose rules by layer class, never by shape. The drafted table is checked with
`table_problems`, and anything unpaired or still wrong is written into it as comments.
"""
from __future__ import annotations

import itertools
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..frameworks import named_modules
from ..models.pair import TwinPair, resolve
from .check import linear_weights, twin_problems
from .layouts import model_layout
from .loading import load_table
from .rules import Pattern, Rename, Table

# Layer classes both frameworks have, by their names in torch.nn and paddle.nn. Pairing never
# crosses kinds; a module of any other class is "custom" and pairs with another custom one.
LAYER_KINDS = (
    ("Linear", ("Linear",), ("Linear",)),
    ("Conv1d", ("Conv1d",), ("Conv1D",)),
    ("Conv2d", ("Conv2d",), ("Conv2D",)),
    ("Conv3d", ("Conv3d",), ("Conv3D",)),
    ("ConvTranspose1d", ("ConvTranspose1d",), ("Conv1DTranspose",)),
    ("ConvTranspose2d", ("ConvTranspose2d",), ("Conv2DTranspose",)),
    ("ConvTranspose3d", ("ConvTranspose3d",), ("Conv3DTranspose",)),
    (
        "BatchNorm",
        ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"),
        ("BatchNorm", "BatchNorm1D", "BatchNorm2D", "BatchNorm3D", "SyncBatchNorm"),
    ),
    ("LayerNorm", ("LayerNorm",), ("LayerNorm",)),
    ("GroupNorm", ("GroupNorm",), ("GroupNorm",)),
    ("InstanceNorm", ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"), ("InstanceNorm1D", "InstanceNorm2D", "InstanceNorm3D")),
    ("Embedding", ("Embedding",), ("Embedding",)),
    ("PReLU", ("PReLU",), ("PReLU",)),
)
CUSTOM_KIND = "custom"
# Rules every table may include: BatchNorm statistics renamed, torch's batch counter dropped.
BATCHNORM_RULES = "shared/batchnorm"


@dataclass
class Owner:
    """A module owning state-dict entries directly: the unit the drafter pairs."""

    path: str
    kind: str
    class_name: str
    shapes: dict[str, tuple[int, ...]]  # local name -> shape, as compared (torch Linear weights transposed)
    keys: dict[str, str]  # local name -> state-dict key
    stored: dict[str, tuple[int, ...]]  # local name -> shape in the state dict

    def signature(self) -> tuple:
        return self.kind, tuple(sorted(self.shapes.values()))

    def describe(self) -> str:
        return f"{self.path or '(root)'} ({self.class_name}): " + ", ".join(f"{n} {list(s)}" for n, s in self.stored.items())


@dataclass
class Draft:
    """A drafted table: its TOML text, and what it leaves to be done by hand."""

    text: str
    pairs: int = 0  # tensors paired
    modules: int = 0  # modules paired
    unpaired: list[str] = field(default_factory=list)  # one line per module or tensor left out
    problems: list[str] = field(default_factory=list)  # what `map check` says about the draft


def draft_table(model: TwinPair | str | Path, input_size: int | None = None, **model_kwargs: Any) -> Draft:
    """Draft the mapping table of `model` (anything `models.pair.resolve` takes; it needs no table) from its two twins."""
    from ..parity.inputs import random_batch

    pair = resolve(model)
    size = input_size or pair.input_size_for(model_kwargs)
    batch = random_batch(1, size, seed=0)
    base = load_table(BATCHNORM_RULES)
    owners, notes, models = {}, [], {}
    for framework in ("torch", "paddle"):
        model = models[framework] = pair.create(framework, **model_kwargs)
        order, failure = _execution_order(model, framework, batch)
        if failure:
            notes.append(f"the {framework} twin failed on a 1x3x{size}x{size} batch ({failure}): paired by structure only")
        owners[framework] = _owners(model, framework, order, base)
    module_pairs, unpaired = _pair_modules(owners["torch"], owners["paddle"])
    key_pairs = [pair for t, p in module_pairs for pair in _pair_keys(t, p)]
    # Composing partial renames gives the shortest tables, but can paint itself into a corner
    # (e.g. when the two sides number their blocks differently): then whole renames do better.
    renames, unresolved = min(
        (_rename_rules(key_pairs, base, compose) for compose in (True, False)), key=lambda r: (len(r[1]), len(r[0]))
    )
    torch_keys = [key for owner in owners["torch"] for key in owner.keys.values()]
    uses_base = any(base.rename(k, "paddle") != k or base.drop_rule(k, "torch") for k in torch_keys)
    linear = [owner.keys["weight"] for owner in owners["torch"] if owner.kind == "Linear" and "weight" in owner.keys]
    transposes = _transpose_patterns(linear, torch_keys)
    lines = unpaired + [f"tensor {t} -> {p}: no rename rule found" for t, p in unresolved]
    body = _toml(pair, renames, transposes, uses_base)
    with tempfile.TemporaryDirectory(prefix="weightport-draft-") as folder:
        path = Path(folder) / "draft.toml"
        path.write_text(body)
        problems = twin_problems(load_table(path), models["torch"], models["paddle"])
    header = [
        f"Drafted by `weightport map draft` from {pair.sources['torch']} and {pair.sources['paddle']}:",
        f"{len(module_pairs)} modules paired by layer class and shape (by name, else in execution order), {len(key_pairs)} tensors.",
        *notes,
    ]
    if lines:
        header += ["Not paired (write rules for these by hand):", *(f"  {line}" for line in lines)]
    if problems:
        header += ["`weightport map check` finds:", *(f"  {p}" for p in problems)]
    text = "".join(f"# {line}\n" for line in header) + body
    return Draft(text, len(key_pairs), len(module_pairs), lines, problems)


# --- the twins --------------------------------------------------------------------------------


def _execution_order(model, framework: str, batch) -> tuple[dict[str, int], str | None]:
    """Module paths in the order one forward pass first enters them, and why the pass failed (if it did)."""
    from ..parity.layerwise import hook_modules
    from ..parity.running import paddle_forward, torch_forward

    order: dict[str, int] = {}
    handles = hook_modules(model, framework, lambda path, _inputs: order.setdefault(path, len(order)))
    try:
        if framework == "torch":
            torch_forward(model, batch)
        else:
            paddle_forward(model, batch)
    except Exception as exc:  # the user's twin: any failure only costs the execution order
        return {}, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    finally:
        for handle in handles:
            handle.remove()
    return order, None


def _layer_kind(module, framework: str) -> str:
    if framework == "torch":
        import torch

        namespace = torch.nn
    else:
        from ..frameworks import quiet_paddle_import

        namespace = quiet_paddle_import().nn
    for kind, torch_names, paddle_names in LAYER_KINDS:
        names = torch_names if framework == "torch" else paddle_names
        classes = tuple(c for c in (getattr(namespace, n, None) for n in names) if c is not None)
        if isinstance(module, classes):
            return kind
    return CUSTOM_KIND


def _owners(model, framework: str, order: dict[str, int], base: Table) -> list[Owner]:
    """The modules owning state-dict entries, in execution order (modules that never ran last, by structure)."""
    modules = dict(named_modules(model, framework))
    linear = linear_weights(model, framework) if framework == "torch" else set()
    owners: dict[str, Owner] = {}
    for key, (shape, _dtype) in model_layout(model, framework).items():
        if framework == "torch" and base.drop_rule(key, "torch"):
            continue  # torch-only entries (BatchNorm's batch counter): the shared rules drop them
        path, _, local = (base.rename(key, "paddle") if framework == "torch" else key).rpartition(".")
        if path not in owners:
            module = modules[path]
            owners[path] = Owner(path, _layer_kind(module, framework), type(module).__name__, {}, {}, {})
        owners[path].shapes[local] = tuple(reversed(shape)) if key in linear else shape
        owners[path].keys[local] = key
        owners[path].stored[key.rpartition(".")[2]] = shape
    structural = {path: k for k, path in enumerate(owners)}
    return sorted(owners.values(), key=lambda o: (o.path not in order, order.get(o.path, 0), structural[o.path]))


def _pair_modules(torch_owners: list[Owner], paddle_owners: list[Owner]) -> tuple[list[tuple[Owner, Owner]], list[str]]:
    """Modules of the same path and signature (kind, shapes) first; then the k-th remaining torch
    module of each signature with the k-th remaining Paddle one, in execution order."""
    by_path = {owner.path: owner for owner in paddle_owners}
    same = {
        owner.path: by_path[owner.path]
        for owner in torch_owners
        if owner.path in by_path and by_path[owner.path].signature() == owner.signature()
    }
    taken = {id(owner) for owner in same.values()}
    waiting: dict[tuple, list[Owner]] = {}
    for owner in paddle_owners:
        if id(owner) not in taken:
            waiting.setdefault(owner.signature(), []).append(owner)
    pairs, unpaired = [], []
    for owner in torch_owners:
        candidates = waiting.get(owner.signature())
        if owner.path in same:
            pairs.append((owner, same[owner.path]))
        elif candidates:
            pairs.append((owner, candidates.pop(0)))
        else:
            unpaired.append(f"torch module {owner.describe()}")
    unpaired += [f"paddle module {owner.describe()}" for rest in waiting.values() for owner in rest]
    return pairs, unpaired


def _pair_keys(torch_owner: Owner, paddle_owner: Owner) -> list[tuple[str, str]]:
    """Tensors of two paired modules: the same local name first, then the remaining ones by shape in order."""
    left = dict(paddle_owner.shapes)
    matched = {n: n for n, s in torch_owner.shapes.items() if left.get(n) == s}
    for n in matched:
        del left[n]
    for name, shape in torch_owner.shapes.items():
        if name not in matched:
            other = next(p for p, s in left.items() if s == shape)  # the signatures agree, so one is left
            matched[name] = other
            del left[other]
    return [(torch_owner.keys[t], paddle_owner.keys[p]) for t, p in matched.items()]


# --- rename rules -----------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")
_NUMBER_NAMES = ("i", "j", "k", "l", "m", "n")


def _rename_rules(
    pairs: list[tuple[str, str]], base: Table, compose: bool
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Rename rules (torch, paddle pattern texts) taking each torch key of `pairs` to its Paddle
    key and back, and the pairs they could not.

    Pairs are taken in order; the first one the rules so far do not map right gets a new rule,
    which must keep every pair already right both ways. A pair's distance counts the segments in
    which its torch key, as the rules so far rename it, still differs from its Paddle key.
    Composing (`compose`), a rule may rename part of a key: it must bring its pair closer, and
    every key it changes must come out no further from its Paddle key and aligned with it (what
    the rule writes already stands at the Paddle key's head or tail); the candidate (see
    `_candidates`) leaving the least total distance wins, then the one putting the most pairs
    right. Otherwise a rule must put its pair right and may change other keys only to their
    Paddle names; the one putting the most pairs right wins. Ties go to the most general.
    """
    texts: list[tuple[str, str]] = []
    rules: list[Rename] = []

    def table(candidate_rules: list[Rename]) -> Table:
        return Table("draft", "", base.renames + tuple(candidate_rules), (), base.drops, ())

    def outcome(rule: Rename) -> tuple[list[str], set[int]]:
        """Where `rules` + `rule` take every key, and which pairs they put right. A new rule runs
        last on the way to Paddle and first on the way back, so only what it matches is redone."""
        images = [_apply(rule, image) for image in forward]
        with_rule = table(rules + [rule])
        back = [with_rule.rename(p, "torch") if rule.paddle.match(p) is not None else b for b, (_, p) in zip(backward, pairs)]
        return images, {k for k, (t, p) in enumerate(pairs) if images[k] == p and back[k] == t}

    forward = [table(rules).rename(t, "paddle") for t, _ in pairs]
    backward = [table(rules).rename(p, "torch") for _, p in pairs]
    good = {k for k, (t, p) in enumerate(pairs) if forward[k] == p and backward[k] == t}
    unresolved: list[tuple[str, str]] = []
    while (i := next((k for k in range(len(pairs)) if k not in good and pairs[k] not in unresolved), None)) is not None:
        distances = [_distance(image, p) for image, (_, p) in zip(forward, pairs)]
        best = None
        for torch_text, paddle_text in _candidates(forward[i], pairs[i][1]):
            rule = _rule(torch_text, paddle_text)
            new_images, right = outcome(rule)
            new_distances = [_distance(image, p) for image, (_, p) in zip(new_images, pairs)]
            if compose:
                stray = any(
                    new != old and (new_d > old_d or not _aligned(rule, old, p))
                    for new, old, new_d, old_d, (_, p) in zip(new_images, forward, new_distances, distances, pairs)
                )
                progress = new_distances[i] < distances[i]
            else:
                stray = any(new != old and new != p for new, old, (_, p) in zip(new_images, forward, pairs))
                progress = i in right
            if stray or not progress or not good <= right:
                continue
            score = (sum(new_distances), -len(right)) if compose else (-len(right),)
            if best is None or score < best[0]:
                best = (score, (torch_text, paddle_text), rule, new_images, right)
        if best is None:
            unresolved.append(pairs[i])
            continue
        _, text, rule, forward, good = best
        texts.append(text)
        rules.append(rule)
        backward = [table(rules).rename(p, "torch") for _, p in pairs]
    return texts, unresolved


def _apply(rule: Rename, key: str) -> str:
    """One rename rule on one key, torch -> Paddle."""
    values = rule.torch.match(key)
    return key if values is None else rule.paddle.format(values)


def _aligned(rule: Rename, old: str, target: str) -> bool:
    """Whether what `rule` writes into `old` already stands where it belongs in `target`: up to
    its `{rest}` at the head of the target, or from its `{pre}` on at the tail."""
    values = rule.torch.match(old)
    new = rule.paddle.format(values)
    head = new[: len(new) - len(values["rest"]) - 1] if "rest" in values else new
    tail = new[len(values["pre"]) + 1 :] if "pre" in values else new
    return target in (head, tail) or target.startswith(head + ".") or target.endswith("." + tail)


def _rule(torch_text: str, paddle_text: str) -> Rename:
    where = f"drafted rule {torch_text!r}"
    shared = dict(re.findall(r"\{(\w+):([^{}]+)\}", torch_text))  # the drafter writes expressions on the torch side
    return Rename(Pattern.parse(torch_text, where), Pattern.parse(paddle_text, where, shared))


def _common_ends(a: list[str], b: list[str]) -> tuple[int, int]:
    """How many leading and (then) trailing segments two keys share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    m = 0
    while m < min(len(a), len(b)) - n and a[-1 - m] == b[-1 - m]:
        m += 1
    return n, m


def _distance(current: str, target: str) -> int:
    c, p = current.split("."), target.split(".")
    n, m = _common_ends(c, p)
    return max(len(c), len(p)) - n - m


def _candidates(current: str, target: str) -> list[tuple[str, str]]:
    """Rules rewriting (part of) `current` towards `target`. The spans: all the segments that
    differ, and, when both keys have as many segments, each differing segment alone. Each span
    in any context, in its context with the numbers free, in its literal context; with the
    numbers appearing once on either side free, then literally; the whole key last."""
    if current == target:
        return []
    c, p = current.split("."), target.split(".")
    n, m = _common_ends(c, p)
    spans = [(n, len(c) - m, c[n : len(c) - m], p[n : len(p) - m])]
    if len(c) == len(p):
        spans += [(j, j + 1, [c[j]], [p[j]]) for j in range(n, len(c) - m) if c[j] != p[j]]
    candidates: list[tuple[str, str]] = []
    for start, stop, old_segments, new_segments in spans:
        before, old, new = ".".join(c[:start]), ".".join(old_segments), ".".join(new_segments)
        contexts = [("{pre:.+}", "{pre}")] if before else []
        if _DIGITS.search(before):
            contexts.append(_number_fields(before, before, None, ""))
        contexts.append((before, before))
        old_numbers, new_numbers = _DIGITS.findall(old), _DIGITS.findall(new)
        shared = [v for v in set(old_numbers) if old_numbers.count(v) == 1 == new_numbers.count(v)]
        middles = ([_number_fields(old, new, shared, "n")] if shared else []) + [(old, new)]
        after = ("{rest:.+}", "{rest}") if stop < len(c) else ("", "")
        for torch_context, paddle_context in contexts:
            for torch_middle, paddle_middle in middles:
                candidate = (_join(torch_context, torch_middle, after[0]), _join(paddle_context, paddle_middle, after[1]))
                if all(candidate) and candidate not in candidates:
                    candidates.append(candidate)
    if (current, target) not in candidates:
        candidates.append((current, target))
    return candidates


def _join(*pieces: str) -> str:
    return ".".join(piece for piece in pieces if piece)


def _number_fields(torch_text: str, paddle_text: str, values: list[str] | None, prefix: str) -> tuple[str, str]:
    """Numbers as placeholders: every run of digits when the two texts are the same (`values` None),
    else the runs whose value is in `values` (each occurs once on either side)."""
    names = (f"{prefix}{_NUMBER_NAMES[k]}" if k < len(_NUMBER_NAMES) else f"{prefix}i{k}" for k in itertools.count())
    if values is None:
        torch_out, paddle_out = [], []
        pieces = _DIGITS.split(torch_text)
        for k, literal in enumerate(pieces):
            torch_out.append(literal)
            paddle_out.append(literal)
            if k < len(pieces) - 1:
                name = next(names)
                torch_out.append(f"{{{name}:\\d+}}")
                paddle_out.append(f"{{{name}}}")
        return "".join(torch_out), "".join(paddle_out)
    named = {value: next(names) for value in sorted(values)}
    torch_out = _DIGITS.sub(lambda m: f"{{{named[m[0]]}:\\d+}}" if m[0] in named else m[0], torch_text)
    paddle_out = _DIGITS.sub(lambda m: f"{{{named[m[0]]}}}" if m[0] in named else m[0], paddle_text)
    return torch_out, paddle_out


# --- transposes and the TOML text -------------------------------------------------------------


def _transpose_patterns(linear_weights: list[str], torch_keys: list[str]) -> list[str]:
    """Patterns covering exactly the torch Linear weights: by the shortest tail of the key (layer
    name, then its parents) in any context where that is exact, else with the numbers free, else
    the key itself."""
    others = [k for k in torch_keys if k not in set(linear_weights)]
    patterns: list[Pattern] = []
    for key in linear_weights:
        if any(p.match(key) is not None for p in patterns):
            continue
        segments = key.split(".")
        candidates = ["{module:.+}." + ".".join(segments[-k:]) for k in range(2, len(segments))]
        if _DIGITS.search(key):
            candidates.append(_number_fields(key, key, None, "")[0])
        for text in candidates + [key]:
            pattern = Pattern.parse(text, f"drafted transpose {text!r}")
            if not any(pattern.match(other) is not None for other in others):
                patterns.append(pattern)
                break
    return [p.text for p in patterns]


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml(pair: TwinPair, renames: list[tuple[str, str]], transposes: list[str], uses_base: bool) -> str:
    torch_factory, paddle_factory = pair.sources["torch"], pair.sources["paddle"]
    out = [f"description = {_toml_string(f'{torch_factory} <-> {paddle_factory} (drafted)')}"]
    if uses_base:
        out.append(f"include = [{_toml_string(BATCHNORM_RULES)}]")
    if len(transposes) <= 2:
        out.append(f"transpose = [{', '.join(map(_toml_string, transposes))}]")
    else:
        out += ["transpose = [", *(f"    {_toml_string(t)}," for t in transposes), "]"]
    for torch_text, paddle_text in renames:
        out += ["", "[[rename]]", f"torch = {_toml_string(torch_text)}", f"paddle = {_toml_string(paddle_text)}"]
    return "\n".join(out) + "\n"
