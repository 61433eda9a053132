"""Checkpoint readers and writers: torch zip (and legacy), Paddle .pdparams, safetensors, and Paddle
inference models (read with their program; their .pdiparams written alone).

`read_checkpoint` identifies a file by its content, refuses a file whose content contradicts
its extension, and returns the chosen state dict as lazy tensors. `write_checkpoint` writes
to a temporary file beside the destination and moves it into place only when complete.
Pickles are read under allow-lists; only files named to `trusting_pickles` (--unsafe-pickle)
go to the frameworks' own, unrestricted loaders.
"""
from __future__ import annotations

import os
import pickle
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ..errors import CheckpointError, InvalidArgument, UserError
from .atomic import check_destination, move_into_place, write_beside
from .checkpoint import Checkpoint, LazyTensor, first_line, framework_objects_to_lazy, select_state_dict

EXTENSIONS = {
    ".pth": "torch",
    ".pt": "torch",
    ".bin": "torch",
    ".ckpt": "torch",
    ".tar": "torch",  # .pth.tar, timm's CheckpointSaver
    ".pdparams": "paddle",
    ".safetensors": "safetensors",
    ".pdiparams": "paddle-inference",  # written alone; read only with its program beside it
}
FORMAT_NAMES = {
    "torch": "a PyTorch zip checkpoint",
    "torch-legacy": "a legacy (pre-1.6) PyTorch checkpoint",
    "paddle": "a Paddle .pdparams pickle",
    "safetensors": "a safetensors file",
    "paddle-inference": "a Paddle inference model (a program and its .pdiparams)",
}
# torch's legacy serialisation starts with this magic number, pickled as a long.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def format_of_path(path: str | Path) -> str | None:
    """The format a file name promises, from its extension (None if unknown)."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def sniff(path: str | Path) -> str:
    """The format of a file from its first bytes."""
    path = str(path)
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    try:
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            # A named pipe or a device could block forever or never end.
            raise CheckpointError(path, "is not a regular file")
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(path, "the file is empty")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "torch"
    if head.startswith(_LEGACY_MAGIC):
        return "torch-legacy"
    # A safetensors header's length may start with the bytes of a pickle's protocol (0x380 = b"\x80\x03"):
    # a JSON header that fits in the file says safetensors first.
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") + 8 <= os.path.getsize(path):
        return "safetensors"
    if head.startswith(b"\x80") and len(head) > 1 and 2 <= head[1] <= 5:
        return "paddle"
    if head[8:9] == b"{":  # a safetensors header that does not fit: the reader says what is wrong
        return "safetensors"
    raise CheckpointError(path, "unknown file format (not a torch, Paddle or safetensors checkpoint)")


def read_raw(path: str | Path) -> tuple[str, object]:
    """Identify and unpickle/parse a checkpoint; return (format, its contents with LazyTensors)."""
    path = str(path)
    fmt = sniff(path)
    promised = format_of_path(path)
    if promised is not None and promised != fmt.removesuffix("-legacy"):
        raise CheckpointError(path, f"is {FORMAT_NAMES[fmt]}, not what its {Path(path).suffix} extension says")
    if fmt != "safetensors" and os.path.realpath(path) in _TRUSTED_PICKLES.get():
        return fmt, _read_unrestricted(path, fmt)
    if fmt == "torch":
        from . import torch_zip

        return fmt, torch_zip.read(path)
    if fmt == "torch-legacy":
        from . import torch_legacy

        return fmt, torch_legacy.read(path)
    if fmt == "paddle":
        from . import pdparams

        return fmt, pdparams.read(path)
    from . import safetensors_file

    return fmt, safetensors_file.read(path)


_TRUSTED_PICKLES: ContextVar[frozenset[str]] = ContextVar("weightport_trusted_pickles", default=frozenset())


@contextmanager
def trusting_pickles(paths: Iterable[str | Path | None]) -> Iterator[None]:
    """Within this block, unpickle the checkpoints at `paths` without restrictions (the CLI's --unsafe-pickle:
    torch.load(weights_only=False), pickle.load for .pdparams): whatever code a file names RUNS.
    Only for files from a trusted source whose pickle needs more than the allow-lists resolve."""
    token = _TRUSTED_PICKLES.set(_TRUSTED_PICKLES.get() | {os.path.realpath(p) for p in paths if p})
    try:
        yield
    finally:
        _TRUSTED_PICKLES.reset(token)


def _read_unrestricted(path: str, fmt: str) -> object:
    """torch.load(weights_only=False), or pickle.load for .pdparams: both run any code the pickle asks for."""
    loader = "pickle.load" if fmt == "paddle" else "torch.load(weights_only=False)"
    print(
        f"Warning: unpickling {path} without restrictions ({loader}); any code in it runs with your privileges",
        file=sys.stderr,
    )
    try:
        if fmt == "paddle":
            from .pdparams import NAME_TABLE, _join_split_arrays

            with open(path, "rb") as f:
                obj = framework_objects_to_lazy(pickle.load(f))
            if isinstance(obj, dict):
                obj.pop(NAME_TABLE, None)
            return _join_split_arrays(path, obj)
        import torch

        return framework_objects_to_lazy(torch.load(path, map_location="cpu", weights_only=False), torch)
    except ImportError as exc:
        raise CheckpointError(path, f"reading it without restrictions needs {exc.name or 'the framework'} installed") from None
    except RecursionError:
        raise CheckpointError(path, "the pickle is nested too deeply") from None
    except Exception as exc:  # whatever the unpickled code or the loader raised
        raise CheckpointError(path, f"unreadable even without restrictions ({first_line(exc)[:200]})") from None


def read_checkpoint(path: str | Path, key: str | None = None) -> Checkpoint:
    """Read the state dict a checkpoint holds (`key` picks one of several, e.g. EMA weights); a
    folder of shards or its index file reads as one checkpoint, and so does a Paddle inference model
    (its folder, its path prefix or one of its files; the program names the tensors)."""
    from . import paddle_inference, sharded

    located = paddle_inference.locate(path)
    if located is not None:
        return _inference_checkpoint(path, located, key)
    if sharded.is_sharded_path(path):
        return sharded.read(path, key, read_raw)
    fmt, obj = read_raw(path)
    return select_state_dict(str(path), fmt, obj, key)


def _inference_checkpoint(path: str | Path, located: tuple[Path, Path], key: str | None) -> Checkpoint:
    from . import paddle_inference

    if key is not None:
        raise InvalidArgument("key", key, f"{path} is an inference model: one set of tensors, named by its program")
    program_path, params_path = located
    program = paddle_inference.read_program(program_path)
    tensors = paddle_inference.read_params(str(params_path), program)

    def listed(variables) -> str:
        return ", ".join(f"{v.name} {v.dtype} {list(v.shape)}" for v in variables) or "none"

    extras = {
        "program": f"{Path(program.path).name} ({'PIR JSON' if program.kind == 'pir' else 'ProgramDesc protobuf'})",
        "inputs": listed(program.inputs),
        "outputs": listed(program.outputs),
        "ops": f"{sum(program.ops.values())} of {len(program.ops)} types: "
               + ", ".join(f"{kind} x{count}" for kind, count in program.ops.most_common()),
    }
    return Checkpoint(str(path), "paddle-inference", tensors, extras=extras)


def output_format(path: str | Path) -> str:
    fmt = format_of_path(path)
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise UserError(f"{path}: unknown output extension (expected one of {known})")
    return fmt


def write_checkpoint(
    path: str | Path,
    entries: Iterable[tuple[str, LazyTensor]],
    force: bool = False,
    on_tensor: Callable[[str, LazyTensor], None] | None = None,
    safetensors_format: str = "pt",
) -> Path:
    """Write `entries` in the format the extension names, atomically; never leave a partial file.
    `safetensors_format` is the metadata a safetensors file carries: "pt", or "np" for Paddle's loaders."""
    path = check_destination(path, force)
    tmp = write_temporary(path.parent, path.name, entries, on_tensor=on_tensor, safetensors_format=safetensors_format)
    try:
        move_into_place(tmp, path, force)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_sharded(
    folder: str | Path,
    entries: Iterable[tuple[str, LazyTensor]],
    side: str,
    file_format: str | None = None,
    max_shard_size: int | None = None,
    force: bool = False,
    on_tensor: Callable[[str, LazyTensor], None] | None = None,
) -> list[Path]:
    """Write `entries` (`side`'s weights) as a folder of shards in `file_format` (by default .pdparams
    for Paddle, safetensors for torch), each within `max_shard_size` bytes; return the files, index last."""
    from . import sharded

    file_format = file_format or sharded.DEFAULT_FORMAT[side]
    layout = sharded.LAYOUTS.get((side, file_format))
    if layout is None:
        choices = " or ".join(f for s, f in sharded.LAYOUTS if s == side)
        raise InvalidArgument("file_format", file_format, f"{side} shards are {choices}")
    try:
        return sharded.write(folder, entries, layout, max_shard_size or sharded.DEFAULT_MAX_SHARD_SIZE,
                             write_temporary, move_into_place, force=force, on_tensor=on_tensor)
    except OSError as exc:
        raise UserError(f"{folder}: cannot write: {exc.strerror or exc}") from None


def write_temporary(
    folder: Path,
    name: str,
    entries: Iterable[tuple[str, LazyTensor]] | bytes,
    on_tensor: Callable[[str, LazyTensor], None] | None = None,
    safetensors_format: str | None = "pt",
) -> str:
    """Write a complete file for `folder / name` (its format from the name's extension; `entries`
    may also be the bytes of a small file) under a temporary name beside it, synced to disk; return
    that name. Nothing is left behind when writing fails."""
    if isinstance(entries, bytes):
        return write_beside(folder, name, lambda f: f.write(entries))
    writer = _writer(folder / name, safetensors_format)
    return write_beside(folder, name, lambda f: writer(f, entries, on_tensor=on_tensor))


def _writer(path: Path, safetensors_format: str | None) -> Callable:
    fmt = output_format(path)
    if fmt == "torch":
        from .torch_zip import write
    elif fmt == "paddle":
        from .pdparams import write
    elif fmt == "paddle-inference":
        from .paddle_inference import write
    else:
        from functools import partial

        from .safetensors_file import write

        return partial(write, metadata_format=safetensors_format or "pt")
    return write
