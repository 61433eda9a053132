"""Sharded checkpoints: a folder of shard files and a JSON index naming the shard of each tensor.

Read: the Hugging Face layouts (`model.safetensors.index.json`, `pytorch_model.bin.index.json`)
and Paddle's (`model_state.pdparams.index.json`; safetensors shards with `{"format": "np"}`), as
one checkpoint of lazy tensors, after checking the index against the shards: every named shard
present, every tensor in exactly the shard the index names. Only `weight_map` is trusted;
`metadata.total_size` is reported, not relied on.

Written: shard boundaries planned up front (tensors in order, packed greedily, a tensor over the
limit alone), so every name is final from the start; each shard goes to a temporary file, and only
once all of them are complete are they renamed into place, the index last. An interrupted
conversion leaves no file under a shard's or the index's name.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, DestinationExists, InvalidArgument, UserError
from .checkpoint import Checkpoint, LazyTensor, select_state_dict


@dataclass(frozen=True)
class ShardLayout:
    """How one family of sharded checkpoints names its files."""

    stem: str  # "model", "model_state", "pytorch_model"
    extension: str  # ".safetensors", ".pdparams", ".bin"
    safetensors_format: str | None = None  # the metadata "format" of safetensors shards: "pt" or "np"

    @property
    def single_name(self) -> str:
        """The file name when everything fits in one shard (no index then, as Hugging Face writes it)."""
        return self.stem + self.extension

    @property
    def index_name(self) -> str:
        return self.single_name + ".index.json"

    def shard_name(self, number: int, count: int) -> str:
        return f"{self.stem}-{number:05d}-of-{count:05d}{self.extension}"


# What a folder destination holds, by the side written and --format.
LAYOUTS = {
    ("paddle", "pdparams"): ShardLayout("model_state", ".pdparams"),
    ("paddle", "safetensors"): ShardLayout("model", ".safetensors", "np"),
    ("torch", "safetensors"): ShardLayout("model", ".safetensors", "pt"),
    ("torch", "bin"): ShardLayout("pytorch_model", ".bin"),
}
DEFAULT_FORMAT = {"paddle": "pdparams", "torch": "safetensors"}
# The index files a folder is searched for, in PaddleFormers' order of preference.
INDEX_NAMES = ("model.safetensors.index.json", "model_state.pdparams.index.json", "pytorch_model.bin.index.json")
SINGLE_NAMES = tuple(name.removesuffix(".index.json") for name in INDEX_NAMES)
SHARD_NAME = re.compile(r".+-\d{5}-of-\d{5}\.(safetensors|pdparams|bin)$")
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9  # Hugging Face's default
# What a shard file holds besides its tensors' bytes, at most: per tensor (its name, its header or
# pickle record) and per file. Counted when planning, so that a shard's file stays within the limit.
TENSOR_OVERHEAD, FILE_OVERHEAD = 256, 4096

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """A size such as 5GB (decimal units, as Hugging Face counts), 500MiB or 1000000 (bytes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match and match.group(2).upper()
    if not match or unit not in _UNITS:
        raise InvalidArgument("max_shard_size", text, "expected a size such as 5GB, 500MB or 2GiB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise InvalidArgument("max_shard_size", text, "a shard needs room for at least one byte")
    return size


def is_sharded_path(path: str | Path) -> bool:
    """A folder, or an index file: what `read` takes."""
    return os.path.isdir(path) or str(path).endswith(".index.json")


def locate(path: str | Path) -> Path:
    """The index file (or lone unsharded file) that `path`, a folder or an index file, stands for."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise CheckpointError(path, "no such file")
        return path
    indexes = [path / name for name in INDEX_NAMES if (path / name).is_file()]
    if len(indexes) > 1:
        listed = ", ".join(i.name for i in indexes)
        raise CheckpointError(path, f"holds {len(indexes)} sharded checkpoints ({listed}): name the index file of one")
    if indexes:
        return indexes[0]
    singles = [path / name for name in SINGLE_NAMES if (path / name).is_file()]
    if len(singles) == 1:
        return singles[0]
    if singles:
        raise CheckpointError(path, f"holds {len(singles)} checkpoints ({', '.join(s.name for s in singles)}): name one of the files")
    raise CheckpointError(
        path, f"is a folder without a checkpoint: no index file ({', '.join(INDEX_NAMES)}) and no {', '.join(SINGLE_NAMES)}"
    )


def read(path: str | Path, key: str | None, read_raw: Callable[[str], tuple[str, object]]) -> Checkpoint:
    """The checkpoint a folder or index file holds: its shards' tensors as one state dict, in the
    order of the shards (`read_raw` reads one file, as `formats.read_raw` does)."""
    index_path = locate(path)
    if not index_path.name.endswith(".index.json"):  # a folder holding one unsharded file
        fmt, obj = read_raw(str(index_path))
        return select_state_dict(str(index_path), fmt, obj, key)
    weight_map, total_size = _read_index(index_path)
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(shard, []).append(tensor)
    tensors: dict[str, LazyTensor] = {}
    formats = set()
    for shard in sorted(shards):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(index_path, f"names shard {shard}, which is missing ({len(shards[shard])} tensors)")
        fmt, obj = read_raw(str(shard_path))
        formats.add(fmt)
        if len(formats) > 1:
            raise CheckpointError(index_path, f"its shards are of different formats ({', '.join(sorted(formats))})")
        if not (isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, LazyTensor) for k, v in obj.items())):
            raise CheckpointError(shard_path, "a shard must hold a plain dict of tensors")
        for name, tensor in obj.items():
            if name in tensors:  # taken from the shard the index names, which this one is not
                raise CheckpointError(index_path, f"tensor {name!r} is found in two shards, {weight_map[name]} and {shard}")
            if weight_map.get(name) != shard:
                said = f"puts it in {weight_map[name]}" if name in weight_map else "does not name it"
                raise CheckpointError(index_path, f"shard {shard} holds tensor {name!r}, but the index {said}")
            tensors[name] = tensor
        absent = [t for t in shards[shard] if t not in obj]
        if absent:
            raise CheckpointError(index_path, f"puts tensor {absent[0]!r} in shard {shard}, which does not hold it"
                                  + (f" (nor {len(absent) - 1} more)" if len(absent) > 1 else ""))
    checkpoint = select_state_dict(str(path), formats.pop(), tensors, key)
    checkpoint.shards = tuple(sorted(shards))
    held = sum(t.nbytes for t in tensors.values())
    if total_size is not None and total_size != held:
        checkpoint.extras["metadata.total_size"] = f"{total_size} (advisory; the shards hold {held} bytes)"
    return checkpoint


def _read_index(path: Path) -> tuple[dict[str, str], int | None]:
    """The index's weight map (tensor -> shard file name), checked, and its advisory total size."""
    try:
        with open(path, "rb") as f:
            text = f.read((64 << 20) + 1)
        if len(text) > 64 << 20:
            raise CheckpointError(path, "an index file over 64 MB is not an index")
        index = json.loads(text)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"the index is not valid JSON ({str(exc)[:200]})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(path, "the index has no weight_map of tensor names to shard files")
    if not weight_map:
        raise CheckpointError(path, "the index's weight_map is empty")
    for shard in set(weight_map.values()):
        if shard in ("", ".", "..") or "/" in shard or "\\" in shard or "\0" in shard:
            raise CheckpointError(path, f"names shard {shard!r}, which is not a file beside the index")
    metadata = index.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return weight_map, total if type(total) is int else None


def wants_folder(dst: str | Path, max_shard_size: str | int | None) -> bool:
    """Whether DST names a folder of shards: a trailing separator, an existing folder, or a shard size asked for."""
    text = str(dst)
    return max_shard_size is not None or text.endswith(("/", os.sep)) or os.path.isdir(text)


def plan(entries: Iterable[tuple[str, LazyTensor]], max_size: int) -> list[list[tuple[str, LazyTensor]]]:
    """The shards: tensors in order, packed greedily up to `max_size` bytes of file, a tensor
    larger than that alone in its own."""
    shards: list[list[tuple[str, LazyTensor]]] = []
    room = 0
    for name, tensor in entries:
        cost = tensor.nbytes + len(name.encode()) + TENSOR_OVERHEAD
        if not shards or cost > room:
            shards.append([])
            room = max_size - FILE_OVERHEAD
        shards[-1].append((name, tensor))
        room -= cost
    return shards or [[]]


def existing_checkpoint_files(folder: Path) -> list[Path]:
    """The files in `folder` that belong to a checkpoint of any known layout (an index, a lone file, shards)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and (p.name in INDEX_NAMES or p.name in SINGLE_NAMES or SHARD_NAME.fullmatch(p.name)))


def check_folder_destination(folder: str | Path, force: bool) -> Path:
    """Refuse a folder that already holds a checkpoint unless asked, and a folder that cannot be made."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    if not folder.exists() and not folder.parent.is_dir():
        raise UserError(f"{folder}: folder {folder.parent} does not exist")
    found = existing_checkpoint_files(folder)
    if found and not force:
        listed = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise DestinationExists(folder, f"already holds a checkpoint ({listed})", "to replace it")
    return folder


def write(
    folder: str | Path,
    entries: Iterable[tuple[str, LazyTensor]],
    layout: ShardLayout,
    max_size: int,
    write_temporary: Callable[..., str],
    move_into_place: Callable[[str, Path, bool], None],
    force: bool = False,
    on_tensor: Callable[[str, LazyTensor], None] | None = None,
) -> list[Path]:
    """Write `entries` as the shards of `layout` in `folder` (made if missing) and return the files
    written, the index last. `write_temporary(folder, name, entries, on_tensor=..., safetensors_format=...)`
    writes one complete file under a temporary name; `move_into_place(tmp, path, force)` renames it."""
    folder = check_folder_destination(folder, force)
    replaced = existing_checkpoint_files(folder)
    made = not folder.exists()
    if made:
        try:
            folder.mkdir()
        except OSError as exc:
            raise UserError(f"{folder}: cannot make the folder: {exc.strerror or exc}") from None
    shards = plan(entries, max_size)
    names = [layout.single_name] if len(shards) == 1 else [layout.shard_name(i + 1, len(shards)) for i in range(len(shards))]
    temporaries: list[tuple[str, Path]] = []
    placed: list[Path] = []
    try:
        for name, shard in zip(names, shards):
            tmp = write_temporary(folder, name, shard, on_tensor=on_tensor, safetensors_format=layout.safetensors_format)
            temporaries.append((tmp, folder / name))
        if len(shards) > 1:
            index = {
                "metadata": {"total_size": sum(t.nbytes for shard in shards for _, t in shard)},
                "weight_map": {tensor: name for name, shard in zip(names, shards) for tensor, _ in shard},
            }
            text = (json.dumps(index, indent=2) + "\n").encode()
            temporaries.append((write_temporary(folder, layout.index_name, text), folder / layout.index_name))
        for tmp, path in temporaries:
            move_into_place(tmp, path, force)
            placed.append(path)
    except BaseException:
        for path in placed:  # a half-renamed folder would be a checkpoint missing shards
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp, _ in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if made and not any(folder.iterdir()):
            folder.rmdir()
    for stale in set(replaced) - set(placed):  # --force: the replaced checkpoint's other files
        stale.unlink(missing_ok=True)
    return placed
