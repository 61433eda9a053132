"""`weightport port`: generate the twin of a model nobody registered, as code a person would keep.

torch -> Paddle today (torch_to_paddle/). The folder it writes (`models.ported`) is a twin pair like
a registered one: convert, verify and `map check` accept it wherever they accept a model name.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models import ported


@dataclass
class PortResult:
    """What `port` wrote, and how its twin fared."""

    source: str
    folder: str
    classes: int = 0
    lines: int = 0
    tensors: int = 0
    parameters: int = 0
    input_size: int = 224
    seconds: float = 0.0
    converted: str | None = None
    verify: Any = None  # parity.verification.VerifyResult
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verify is None or self.verify.passed

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "verify"}
        data["verify"] = self.verify.as_dict() if self.verify is not None else None
        return data


def versions() -> dict[str, str]:
    """The versions of weightport and of the libraries a port depends on, as recorded in the folder."""
    import importlib.metadata

    from .. import __version__

    found = {"weightport": __version__}
    for package in ("torch", "timm", "paddlepaddle", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def port(
    source: str,
    out: str | os.PathLike,
    *,
    model_args: dict[str, Any] | None = None,
    input_size: int | None = None,
    torch_ckpt: str | None = None,
    force: bool = False,
    verify: bool = True,
    tol: float = 1e-4,
) -> PortResult:
    """Port `source` (timm:NAME or module:function) into folder `out` and verify the twins.

    Nothing is left behind when the model cannot be ported; an existing `out` is replaced only with
    `force`, and only once the new folder is complete."""
    from ..frameworks import quiet_paddle_import
    from .torch_to_paddle import generate

    quiet_paddle_import()
    out = Path(out)
    staging = ported.staging_folder(out, force)
    try:
        result = generate(source, staging, model_args=model_args, input_size=input_size)
        ported.install(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.folder = str(out)
    if torch_ckpt is not None:
        from ..conversion import convert

        destination = out / "model.pdparams"
        convert(str(out), torch_ckpt, str(destination), to="paddle", force=True)
        result.converted = str(destination)
        result.files.append("model.pdparams")
    if verify:
        from ..parity.verification import verify as verify_pairs

        checks = dict(torch_ckpt=torch_ckpt, paddle_ckpt=result.converted) if torch_ckpt else {}
        result.verify = verify_pairs([str(out)], tol=tol, floor=True, **checks)
        if not result.verify.passed:
            result.verify = verify_pairs([str(out)], tol=tol, floor=True, layers=True, **checks)
    return result
