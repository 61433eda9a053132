"""Atomic writes: every file weightport writes is written whole under a temporary name beside its
destination, synced to disk, then moved into place; a failed write leaves nothing behind."""
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import DestinationExists, UserError


def check_destination(path: str | Path, force: bool) -> Path:
    """Refuse to overwrite unless asked, and fail early on a destination that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    if path.exists() and not force:
        raise DestinationExists(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a small text file (a report) whole or not at all, replacing what was there."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    tmp = write_beside(path.parent, path.name, lambda f: f.write(text.encode("utf-8")))
    move_into_place(tmp, path, force=True)
    return path


def write_beside(folder: Path, name: str, write: Callable[[BinaryIO], None]) -> str:
    """Call `write` on a new temporary file beside `folder / name`, flushing to disk as it goes, sync
    it, and return its name. Nothing is left behind when writing fails."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
    except OSError as exc:
        raise UserError(f"{folder / name}: cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            with writing_behind(f.fileno()):
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UserError(f"{folder / name}: cannot write: {exc.strerror or exc}") from None
        raise
    return tmp


WRITE_BEHIND_EVERY = 0.05  # seconds between flushes of what a writer has written so far


@contextmanager
def writing_behind(fd: int) -> Iterator[None]:
    """While the block writes, a second thread flushes what the kernel holds of the file to disk
    every WRITE_BEHIND_EVERY seconds: the disk writes while conversion computes, and the final
    fsync waits only for the tail (for a 200 MB checkpoint it was a fifth of the conversion).
    An error met there is raised here, as the kernel reports a write-back error only once."""
    stop = threading.Event()
    errors: list[OSError] = []

    def flush() -> None:
        while not stop.wait(WRITE_BEHIND_EVERY):
            try:
                _datasync(fd)
            except OSError as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=flush, name="weightport-write-behind", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]


_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def move_into_place(tmp: str, path: Path, force: bool) -> None:
    """Give the finished temporary file its name; without `force`, never replace an existing file."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic and never overwrites: a racing writer gets FileExistsError
    except FileExistsError:
        raise DestinationExists(path) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
