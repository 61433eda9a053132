"""Conversion between the twins' state dicts, driven by the mapping tables.

`convert_tensors` is the single code path: it plans every tensor through the pair's table,
checks the result against the target twin's layout (every source tensor consumed, every
target tensor produced, shapes and dtypes agreeing) and returns lazy tensors, so nothing is
read before the plan is known to be right. `convert` adds the files around it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConflictingArguments, InvalidArgument, LayoutError, Remedy, UserError
from ..formats import FORMAT_NAMES, check_destination, dtypes, output_format, read_checkpoint, sharded, write_checkpoint, write_sharded
from ..formats.checkpoint import Checkpoint, LazyTensor
from ..frameworks import FRAMEWORKS, other
from ..models.pair import TwinPair, resolve
from ..tables.layouts import Layout, with_classes
from ..tables.rules import Plan, Step, Table

MAX_LISTED = 20  # problems listed before the rest are only counted
RESIZABLE = "sized by the input: twins built for another input size take it resized"


@dataclass
class Summary:
    """What a conversion did, for people (rich table) and machines (--json)."""

    model: str
    to: str
    tensors: int = 0
    parameters: int = 0
    bytes: int = 0
    renamed: int = 0
    transposed: int = 0
    dropped: int = 0
    filled: int = 0
    resized: list[str] = field(default_factory=list)
    adjusted: dict[str, str] = field(default_factory=dict)  # target key -> why the table changes its values
    folded: dict[str, str] = field(default_factory=dict)  # source key -> the target key that carries its values
    dropped_keys: list[str] = field(default_factory=list)
    classes_from_checkpoint: int | None = None  # a fine-tuned classifier's class count, read from its shapes
    cast_to: str | None = None
    source: str | None = None
    source_format: str | None = None
    source_shards: int = 0  # a folder source's shard count (0 for a single file)
    wrapper: str | None = None
    stripped_prefix: str = ""
    # --prefix: where the model's keys sit in a bigger checkpoint (a detector's `backbone.`), whether
    # it was taken from the source's keys or put before the written ones, and the keys left outside it.
    prefix: str = ""
    prefix_on: str | None = None  # "source" or "destination"
    outside_prefix: list[str] = field(default_factory=list)
    destination: str | None = None
    shards: list[str] = field(default_factory=list)  # a folder destination's files, the index last
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def convert_tensors(
    model: TwinPair | str | Path,
    tensors: dict[str, LazyTensor],
    to: str,
    *,
    dtype: str | None = None,
    resize: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, LazyTensor], Summary]:
    """Map `tensors` (named as the other framework names them) onto the layout of the `to` twin
    of `model` (anything `models.pair.resolve` takes)."""
    pair = resolve(model)
    model_kwargs = model_kwargs or {}
    if dtype is not None and dtype not in dtypes.CASTABLE:
        raise InvalidArgument("dtype", dtype, f"choose from {', '.join(dtypes.CASTABLE)}")
    table = pair.table()
    plan = table.plan(tensors, to)
    _refuse_lost_values(plan, tensors, table)
    folds = table.folds(plan.dropped, other(to))
    expected, classes, remedies = _fitting_layout(pair, plan, tensors, model_kwargs)
    if classes is not None:
        model_kwargs = {**model_kwargs, "num_classes": classes}
    summary = Summary(model=pair.name, to=to, cast_to=dtype, model_kwargs=dict(model_kwargs), classes_from_checkpoint=classes)
    out: dict[str, LazyTensor] = {}
    problems: list[str] = []
    for step in plan.steps:
        if step.target in out:
            problems.append(f"two source tensors map to {step.target}")
            continue
        if step.split is not None:
            target = _convert_split(step, tensors, expected.get(step.target), dtype, problems)
            if target is not None:
                out[step.target] = target
                summary.transposed += step.transpose
            continue
        source, want = _fitted_source(step, tensors, expected)
        folded = folds.pop(step.source, [])
        target = _convert_one(step, source, want, dtype, resize, problems, to, [(tensors[k], rule) for k, rule in folded])
        if target is None:
            continue
        out[step.target] = target
        if step.adjust is not None:
            summary.adjusted[step.target] = step.adjust.why
        for key, rule in folded:
            summary.folded[key] = step.target
            summary.adjusted[step.target] = rule.why
        summary.renamed += step.source != step.target
        summary.transposed += step.transpose
        if target.shape != _transposed_shape(source.shape, step.transpose):
            summary.resized.append(step.target)
    problems += [f"{key}: the table folds it into {into}, which the checkpoint lacks"
                 for into, folded in folds.items() for key, _ in folded]
    fills = plan.fills(expected, table)
    for key, rule in fills.items():
        shape, fill_dtype = expected[key]
        if rule.same_as is not None:  # the same tensor under a second name: produced under the first, or reported missing
            if (same := out.get(rule.same_as_key(key))) is not None:
                out[key] = same
            continue
        out[key] = _filled(shape, fill_dtype, rule.fill or 0)
    summary.filled = len(fills)
    summary.dropped = len(plan.dropped)
    summary.dropped_keys = list(plan.dropped)
    if any(RESIZABLE in problem for problem in problems):
        remedies.append(Remedy("model_kwargs", {"img_size": "N"}, "to resize them for twins built for N x N inputs"))
    _check_complete(pair.name, table, plan, out, expected, problems, remedies)
    out = {k: out[k] for k in expected if k in out}  # the target twin's own order
    summary.tensors = len(out)
    summary.parameters = sum(t.numel for t in out.values())
    summary.bytes = sum(t.nbytes for t in out.values())
    return out, summary


def _fitting_layout(pair: TwinPair, plan: Plan, tensors: dict[str, LazyTensor],
                    model_kwargs: dict[str, Any]) -> tuple[Layout, int | None, list[Remedy]]:
    """The layout of the target twin the checkpoint fits (built once): for a fine-tuned classifier,
    the class count read from its shapes too (None otherwise); and what to pass when the shapes
    say another class count but cannot say which."""
    expected = pair.layout(plan.to, **model_kwargs)
    counts, others = _class_counts(pair, plan, tensors, expected)
    classes = next(iter(counts)) if len(counts) == 1 and not others and "num_classes" not in model_kwargs else None
    remedies = [Remedy("model_kwargs", {"num_classes": "N"}, "to build twins for the classifier's N classes")] if counts else []
    if classes is not None:
        expected = with_classes(expected, pair.classifier_dims(plan.to), classes)
    return expected, classes, remedies


def fitting_kwargs(model: TwinPair | str | Path, tensors: dict[str, LazyTensor], side: str,
                   model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments of twins that `side`'s `tensors` fit: `model_kwargs`, with the class
    count of a fine-tuned classifier read from its shapes (as `convert_tensors` reads it), without
    converting anything."""
    pair, model_kwargs = resolve(model), dict(model_kwargs or {})
    _, classes, _ = _fitting_layout(pair, pair.table().plan(tensors, other(side)), tensors, model_kwargs)
    return model_kwargs if classes is None else {**model_kwargs, "num_classes": classes}


def resized_for(model: TwinPair | str | Path, tensors: dict[str, LazyTensor], side: str,
                model_kwargs: dict[str, Any]) -> dict[str, LazyTensor]:
    """`side`'s `tensors` for twins built with `model_kwargs` (another input size): those the table
    sizes by the input resized as a conversion resizes them, the others as they are."""
    pair = resolve(model)
    table, expected = pair.table(), pair.layout(side, **model_kwargs)
    out = dict(tensors)
    for key, tensor in tensors.items():
        rule = table.resize_rule(key if side == "torch" else table.rename(key, "torch"))
        want = expected.get(key)
        if rule is not None and want is not None and tuple(tensor.shape) != want[0]:
            out[key] = LazyTensor(tensor.dtype, want[0], functools.partial(_load_resized, key, tensor, rule, want[0]))
    return out


def _load_resized(key: str, tensor: LazyTensor, rule, shape) -> np.ndarray:
    array, dtype = _resized(key, tensor.load(), tensor.dtype, rule, shape)
    return dtypes.cast(array, dtype, tensor.dtype)


def _resized(key: str, array: np.ndarray, dtype: str, rule, shape) -> tuple[np.ndarray, str]:
    """`array` (of `dtype`) resized to `shape` by the table's resize rule, in float32 or float64."""
    if dtype != "float64":
        array, dtype = dtypes.cast(np.asarray(array), dtype, "float32"), "float32"
    try:
        return np.asarray(rule.load()(np.ascontiguousarray(array), tuple(shape)), dtype=array.dtype), dtype
    except ValueError as exc:
        raise UserError(f"cannot resize {key} to {list(shape)}: {exc}") from None


def _refuse_lost_values(plan: Plan, tensors: dict[str, LazyTensor], table) -> None:
    """A tensor dropped by a lossless rule must hold only its fill: anything else is trained numbers
    that the target twin has no place for. Only these tensors are read before the plan is checked."""
    source = other(plan.to)
    for key in plan.dropped:
        rule = table.drop_rule(key, source)
        if not rule.lossless:
            continue
        tensor = tensors[key]
        values = dtypes.cast(np.asarray(tensor.load()), tensor.dtype, "float64") if tensor.dtype in dtypes.FLOATING \
            else np.asarray(tensor.load(), dtype=np.float64)
        off = np.abs(values - rule.fill)
        if off.size and off.max() > 0:
            raise UserError(
                f"{key} holds values other than {rule.fill:g} ({np.count_nonzero(off)} of {off.size}, up to {off.max():.3g} away) "
                f"and the {plan.to} twin has no place for them: {rule.why}; refusing to drop trained numbers"
            )


def _transposed_shape(shape: tuple[int, ...], transpose: bool) -> tuple[int, ...]:
    return tuple(reversed(shape)) if transpose else tuple(shape)


def _fitted_source(step: Step, tensors: dict[str, LazyTensor], expected: Layout) -> tuple[LazyTensor, Any]:
    """The step's source tensor in the shape the target expects where torch would load it so, and
    the target's (shape, dtype), None for a key the target lacks."""
    source, want = tensors[step.source], expected.get(step.target)
    if want is not None and not step.transpose:
        source = source.fitted_to(want[0])
    return source, want


def _class_counts(pair: TwinPair, plan: Plan, tensors: dict[str, LazyTensor], expected: Layout) -> tuple[set[int], bool]:
    """What the checkpoint's shapes say of its class count: the counts held by the tensors that the
    manifest says follow it, where they differ from the target twin's in that dimension alone, and
    whether any other tensor's shape differs. One count and no other difference: a fine-tuned head."""
    dims = pair.classifier_dims(plan.to)
    counts, others = set(), False
    for step in plan.steps:
        if step.split is not None:  # a packed tensor never follows the class count
            continue
        source, want = _fitted_source(step, tensors, expected)
        shape = _transposed_shape(source.shape, step.transpose)
        if want is None or shape == want[0]:
            continue
        dim = dims.get(step.target)
        if dim is not None and len(shape) == len(want[0]) and shape[:dim] + shape[dim + 1 :] == want[0][:dim] + want[0][dim + 1 :]:
            counts.add(shape[dim])
        else:
            others = True
    return counts, others


def _convert_one(step: Step, source: LazyTensor, expected, cast_to, resize: bool, problems: list[str], to: str,
                 folded: list[tuple[LazyTensor, Any]]):
    if expected is None:
        return None  # reported as unexpected by _check_complete
    want_shape, want_dtype = expected
    if step.transpose and len(source.shape) != 2:
        problems.append(f"{step.source}: listed for transposing but has shape {list(source.shape)}")
        return None
    shape = _transposed_shape(source.shape, step.transpose)
    resize_to = None
    if shape != want_shape:
        if step.resize is None:
            problems.append(
                f"{step.source} -> {step.target}: shape {list(shape)}, but the target twin expects {list(want_shape)}"
            )
            return None
        if not resize:
            problems.append(
                f"{step.source} -> {step.target}: shape {list(shape)}, but the target twin expects "
                f"{list(want_shape)} ({RESIZABLE})"
            )
            return None
        resize_to = want_shape
    out_dtype = cast_to if (cast_to and source.dtype in dtypes.FLOATING) else source.dtype
    if (out_dtype in dtypes.FLOATING) != (want_dtype in dtypes.FLOATING) or (
        out_dtype not in dtypes.FLOATING and out_dtype != want_dtype
    ):
        problems.append(f"{step.source}: dtype {source.dtype}, but the target twin expects {want_dtype}")
        return None
    if (step.adjust is not None or folded) and source.dtype not in dtypes.FLOATING:
        problems.append(f"{step.source}: the table adjusts its values, but it holds {source.dtype}")
        return None
    misfits = [f"{step.source}: the table folds a tensor of shape {list(t.shape)} into it, of shape {list(source.shape)}"
               for t, _ in folded if tuple(t.shape) != tuple(source.shape) or t.dtype not in dtypes.FLOATING]
    if misfits:
        problems += misfits
        return None
    return LazyTensor(out_dtype, want_shape, _loader(source, step, out_dtype, resize_to, to, folded))


def _convert_split(step: Step, tensors: dict[str, LazyTensor], expected, cast_to, problems: list[str]) -> LazyTensor | None:
    """One part of a tensor that a split rule cuts (towards Paddle), or the whole that it joins
    (towards torch), exactly: slicing, transposing and concatenating never change a value."""
    if expected is None:
        return None  # reported as unexpected by _check_complete
    sources = [step.source] if not step.parts else list(step.parts)
    missing = [k for k in sources if k not in tensors]
    if missing:
        problems += [f"{k}: missing, a part of {step.target} (the table joins {', '.join(step.parts)})" for k in missing]
        return None
    parts = [tensors[k] for k in sources]
    if any(len(t.shape) != 2 for t in parts) and step.transpose:
        problems.append(f"{step.source}: listed for transposing but has shape {list(parts[0].shape)}")
        return None
    shapes = [_transposed_shape(t.shape, step.transpose) for t in parts]
    axis = step.split.axis % max(len(shapes[0]), 1)
    if step.parts:
        stacked = sum(shape[axis] for shape in shapes)
        shape = shapes[0][:axis] + (stacked,) + shapes[0][axis + 1 :]
        unequal = any(sh != shapes[0] for sh in shapes) or len({t.dtype for t in parts}) > 1
    else:
        shape = _transposed_shape(step.part_shape(parts[0].shape), step.transpose)
        unequal = parts[0].shape[axis] % len(step.split.paddle) != 0
    if unequal or shape != tuple(expected[0]):
        problems.append(f"{', '.join(sources)} -> {step.target}: shapes {[list(t.shape) for t in parts]} do not "
                        f"{'join into' if step.parts else 'split into parts of'} {list(expected[0])}")
        return None
    out_dtype = cast_to if (cast_to and parts[0].dtype in dtypes.FLOATING) else parts[0].dtype
    if (out_dtype in dtypes.FLOATING) != (expected[1] in dtypes.FLOATING):
        problems.append(f"{step.source}: dtype {parts[0].dtype}, but the target twin expects {expected[1]}")
        return None

    def load() -> np.ndarray:
        arrays = [np.asarray(t.load()) for t in parts]
        if step.parts:  # towards torch: each part back in torch's layout, then joined
            array = np.concatenate([a.T if step.transpose else a for a in arrays], axis=axis)
        else:
            array = step.part_of(arrays[0])
            array = array.T if step.transpose else array
        return dtypes.cast(np.ascontiguousarray(array), parts[0].dtype, out_dtype)

    return LazyTensor(out_dtype, shape, load)


def _loader(source: LazyTensor, step: Step, out_dtype: str, resize_to, to: str,
            folded: list[tuple[LazyTensor, Any]]) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        array, dtype = source.load(), source.dtype
        if folded:  # in float64, rounded once to the target dtype
            array, dtype = dtypes.cast(np.asarray(array), dtype, "float64"), "float64"
            for tensor, rule in folded:
                array = array + rule.scale * dtypes.cast(np.asarray(tensor.load()), tensor.dtype, "float64")
        if step.transpose:
            array = transposed(array)
        if resize_to is not None:
            array, dtype = _resized(step.source, array, dtype, step.resize, resize_to)
        if step.adjust is not None:  # in float64, then rounded once to the target dtype
            array, dtype = step.adjust.apply(dtypes.cast(np.asarray(array), dtype, "float64"), to), "float64"
        return dtypes.cast(array, dtype, out_dtype)

    return load


# The tiles a transpose copies at a time: 16 source rows of 2048 elements. Each output row then
# receives 16 consecutive elements (a cache line of float32) gathered from only 16 source rows,
# few enough pages for the TLB; square 128 x 128 tiles ran half as fast on 64 MB matrices.
TILE_ROWS, TILE_COLS = 16, 2048
NARROW = 64  # numpy transposes matrices of fewer columns well itself; tiles would only add calls


def transposed(matrix: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `matrix.T`, copied tile by tile so that both sides stay in cache
    (two to five times as fast as numpy's own copy of a large transposed matrix)."""
    rows, cols = matrix.shape
    if cols < NARROW:
        return np.ascontiguousarray(matrix.T)
    out = np.empty((cols, rows), dtype=matrix.dtype)
    for i in range(0, rows, TILE_ROWS):
        for j in range(0, cols, TILE_COLS):
            out[j : j + TILE_COLS, i : i + TILE_ROWS] = matrix[i : i + TILE_ROWS, j : j + TILE_COLS].T
    return out


def _filled(shape, dtype: str, value) -> LazyTensor:
    return LazyTensor(dtype, tuple(shape), lambda: np.full(shape, value, dtype=dtypes.storage_dtype(dtype)))


def _check_complete(model: str, table: Table, plan: Plan, out: dict, expected: Layout, problems: list[str],
                    remedies: list[Remedy]) -> None:
    unexpected = [f"{s.source} -> {s.target}: no such key in the {plan.to} twin" for s in plan.steps if s.target not in expected]
    attempted = {s.target for s in plan.steps}  # a failed attempt is already in `problems`
    source = other(plan.to)
    # Named as the checkpoint would name it too: a file that lacks a tensor lacks it under its own name.
    missing = [f"{k}: not produced by any source tensor (the checkpoint has no {source} {table.rename(k, source)})"
               for k in expected if k not in out and k not in attempted]
    problems = problems + unexpected + missing
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise LayoutError(
            f"the checkpoint does not fit the {plan.to} twin of {model} ({len(problems)} problems):\n  {listed}{more}",
            remedies=tuple(remedies),
        )


# Which framework's names a file of each format carries (safetensors: either).
SIDES = {"torch": "torch", "torch-legacy": "torch", "paddle": "paddle", "paddle-inference": "paddle"}


def source_side(checkpoint_format: str, to: str | None) -> str:
    """Which framework's names a checkpoint of this format carries."""
    side = SIDES.get(checkpoint_format)
    if side is None:  # safetensors carry either framework's names
        if to is None:
            raise InvalidArgument("to", to, "a safetensors file may hold either framework's names: "
                                             "say which way to convert (torch or paddle)")
        side = other(to)
    return side


def convert(
    model: TwinPair | str | Path,
    src: str | Path,
    dst: str | Path,
    *,
    to: str | None = None,
    key: str | None = None,
    dtype: str | None = None,
    force: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    prefix: str | None = None,
    max_shard_size: str | int | None = None,
    file_format: str | None = None,
    input_size: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_tensor: Callable[[str, LazyTensor], None] | None = None,
) -> Summary:
    """Convert checkpoint `src` of `model` (anything `models.pair.resolve` takes) into `dst`, checked and atomic.

    `src` may be a file, or a folder of shards (or its index file). `dst` is a file, or a folder of
    shards when it ends in a separator, is an existing folder or `max_shard_size` is given (bytes, or
    a size such as "5GB"); `file_format` then names the shards' format (pdparams, safetensors or bin).
    `prefix` (e.g. "backbone.") names where the model sits in a bigger checkpoint: when `src` has
    keys under it, only those are converted (the prefix taken off, the others listed in
    `Summary.outside_prefix`); otherwise every key written to `dst` gets it.
    `input_size` converts for twins built for that input height and width (the tensors sized by
    the input resized), as `model_kwargs={"img_size": N}` does.
    `on_start(total_bytes)` is called once the plan is checked, `on_tensor` after each tensor is written."""
    pair = resolve(model)
    model_kwargs = _with_input_size(pair, input_size, dict(model_kwargs or {}))
    if to is not None and to not in FRAMEWORKS:
        raise InvalidArgument("to", to, "expected torch or paddle")
    to_folder = sharded.wants_folder(dst, max_shard_size)
    shard_size = sharded.parse_size(max_shard_size) if isinstance(max_shard_size, str) else max_shard_size
    if to_folder:
        sharded.check_folder_destination(dst, force)
        dst_format = None
    else:
        if file_format is not None:
            raise InvalidArgument("file_format", file_format, f"a format is for a folder of shards; {dst}'s extension names its format")
        check_destination(dst, force)
        dst_format = output_format(dst)
        to = to or SIDES.get(dst_format)
    check_prefix(prefix)
    checkpoint = read_checkpoint(src, key)
    from_side = source_side(checkpoint.format, to)
    to = to or other(from_side)
    if from_side == to:
        raise UserError(f"{src} is {FORMAT_NAMES[checkpoint.format]} and {dst} asks for {to} as well; nothing to convert")
    if dst_format is not None and dst_format != "safetensors" and SIDES[dst_format] != to:
        raise UserError(f"{dst}: a .{Path(dst).suffix.lstrip('.')} file cannot hold {to} weights")
    source, outside, prefix_on = checkpoint.tensors if from_side != "torch" else pair.own_keys(checkpoint.tensors), [], None
    if prefix:
        inside, others = under_prefix(source, prefix)
        source, outside, prefix_on = (inside, others, "source") if inside else (source, [], "destination")
    # Asking for a twin of another configuration (e.g. another img_size) is what permits resizing.
    try:
        tensors, summary = convert_tensors(
            pair, source, to, dtype=dtype, resize=bool(model_kwargs), model_kwargs=model_kwargs
        )
    except LayoutError as exc:
        foreign = [] if prefix else _foreign_modules(pair, source, from_side)
        if not foreign:
            raise
        listed = ", ".join(f"{name}." for name in foreign[:6]) + (", ..." if len(foreign) > 6 else "")
        example = "backbone." if "backbone" in foreign else f"{foreign[0]}."
        raise LayoutError(f"{exc.message}\n  its keys start with {listed} which {pair.name} has not",
                          remedies=(*exc.remedies, Remedy("prefix", example, "if its weights sit under one"))) from None
    _describe_source(summary, checkpoint)
    summary.prefix, summary.prefix_on, summary.outside_prefix = prefix or "", prefix_on, outside
    if on_start:
        on_start(summary.bytes)
    written = [(prefix + k, t) for k, t in tensors.items()] if prefix_on == "destination" else list(tensors.items())
    if to_folder:
        files = write_sharded(dst, written, to, file_format, shard_size, force=force, on_tensor=on_tensor)
        summary.destination, summary.shards = str(dst), [p.name for p in files]
    else:
        safetensors_format = "np" if to == "paddle" else "pt"
        summary.destination = str(write_checkpoint(dst, written, force=force, on_tensor=on_tensor,
                                                   safetensors_format=safetensors_format))
    return summary


def _with_input_size(pair: TwinPair, input_size: int | None, model_kwargs: dict[str, Any]) -> dict[str, Any]:
    if input_size is None:
        return model_kwargs
    if "img_size" in model_kwargs:
        raise ConflictingArguments(("input_size", "model_kwargs"), "give the input size once")
    sized = pair.kwargs_for_input_size(input_size, model_kwargs)
    if "img_size" not in sized:
        raise InvalidArgument("input_size", input_size, f"no weight of {pair.name} depends on the input size")
    return sized


def check_prefix(prefix: str | None) -> None:
    if prefix is not None and (not prefix.endswith(".") or prefix.startswith(".") or ".." in prefix):
        raise InvalidArgument("prefix", prefix, "a prefix is dotted module names ending in '.', e.g. backbone.")


def under_prefix(tensors: dict[str, LazyTensor], prefix: str) -> tuple[dict[str, LazyTensor], list[str]]:
    """The tensors whose keys start with `prefix`, the prefix taken off, and the keys of the others."""
    inside = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
    return inside, [k for k in tensors if not k.startswith(prefix)]


def _foreign_modules(pair: TwinPair, tensors: dict[str, LazyTensor], side: str) -> list[str]:
    """For a checkpoint that does not fit: the leading module names of its keys that the model does
    not have, as a detector's backbone, neck, head (its weights may sit under one of them)."""
    own = {k.split(".", 1)[0] for k in pair.layout(side)}
    return sorted({k.split(".", 1)[0] for k in tensors if "." in k} - own)


def _describe_source(summary: Summary, checkpoint: Checkpoint) -> None:
    summary.source = checkpoint.path
    summary.source_format = checkpoint.format
    summary.wrapper = checkpoint.wrapper
    summary.stripped_prefix = checkpoint.stripped_prefix
    summary.source_shards = len(checkpoint.shards)
