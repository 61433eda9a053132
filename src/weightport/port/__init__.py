"""`weightport port`: generate the twin of a model nobody registered, as code a person would keep.

torch -> Paddle (torch_to_paddle/) from a timm name or a torch factory; Paddle -> torch
(paddle_to_torch/) from a Paddle inference model or a Paddle Layer's factory ("paddle:module:function").
The folder it writes (`models.ported`) is a twin pair like a registered one: convert, verify and
`map check` accept it wherever they accept a model name.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from ..models import ported


@dataclass
class PortResult:
    """What `port` wrote, and how its twin fared."""

    source: str
    folder: str
    classes: int = 0  # classes in the generated code
    layers: int = 0  # torch layers holding parameters (Paddle -> torch)
    lines: int = 0
    tensors: int = 0
    parameters: int = 0
    input_size: int = 224
    sizes: list[int] = field(default_factory=list)  # the input sizes traced (torch -> Paddle), then verified
    size_limit: str | None = None  # why the twin runs at its port's size only (None: any size torch's model runs at)
    seconds: float = 0.0
    converted: str | None = None
    dropped: list[str] = field(default_factory=list)  # tensors of the converted checkpoint the twin has no place for
    verify: Any = None  # parity.verification.VerifyResult
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verify is None or self.verify.passed

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "verify"}
        data["verify"] = self.verify.as_dict() if self.verify is not None else None
        return data

    @property
    def direction(self) -> str:
        return "paddle->torch" if (Path(self.folder) / ported.TORCH_MODULE).is_file() else "torch->paddle"


def versions() -> dict[str, str]:
    """The versions of weightport and of the libraries a port depends on, as recorded in the folder."""
    import importlib.metadata

    from .. import __version__

    found = {"weightport": __version__}
    for package in ("torch", "timm", "transformers", "paddlepaddle", "numpy"):
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
    inputs: Sequence[Any] | None = None,
    torch_ckpt: str | None = None,
    paddle_ckpt: str | None = None,
    prefix: str | None = None,
    force: bool = False,
    verify: bool = True,
    tol: float = 1e-4,
) -> PortResult:
    """Port `source` into folder `out` and verify the twins.

    `source` is a torch model (timm:NAME, transformers:CLASS, transformers:FOLDER (a save_pretrained
    folder) or module:function; called with `inputs`, `InputSpec`s or `InputRequest`s
    (port.torch_to_paddle.calling), found from the model where None; `torch_ckpt` converted into
    out/model.pdparams), a Paddle inference model (its folder or path prefix; its weights converted
    into out/model.pth) or a Paddle Layer's factory, "paddle:module:function" (`paddle_ckpt`, a
    training checkpoint, converted into out/model.pth, its keys under `prefix` where it holds
    several models, as distilled ones do). Nothing is left behind when the model cannot be ported;
    an existing `out` is replaced only with `force`, and only once the new folder is complete."""
    from ..formats import paddle_inference

    out = Path(out)
    inference = None if source.startswith(("timm:", "transformers:", "paddle:")) else paddle_inference.locate(source)
    if paddle_ckpt is not None and inference is None and not source.startswith("paddle:"):
        raise InvalidArgument("paddle_ckpt", paddle_ckpt, "a Paddle checkpoint goes with a Paddle source")
    conversion = _conversion(torch_ckpt, paddle_ckpt, inference, prefix)
    staging = ported.staging_folder(out, force)
    try:
        if inference is not None or source.startswith("paddle:"):
            if inputs:
                raise InvalidArgument("inputs", inputs, "inputs are chosen for a torch model; a Paddle source's program says its own")
            result = _paddle_source(source, inference, staging, model_args)
        else:
            from ..frameworks import quiet_paddle_import
            from .torch_to_paddle import generate

            quiet_paddle_import()
            result = generate(source, staging, model_args=model_args, input_size=input_size, inputs=inputs)
        if conversion is not None:  # before the folder is installed: a checkpoint that does not fit leaves nothing
            checkpoint, name, to, options = conversion
            from ..conversion import convert

            result.dropped = convert(str(staging), checkpoint, str(staging / name), to=to, **options).dropped_keys
            result.files.append(name)
        ported.install(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.folder = str(out)
    checks: dict[str, Any] = {}
    if conversion is not None:
        checkpoint, name, to, _ = conversion
        result.converted = str(out / name)
        checks = dict(torch_ckpt=checkpoint, paddle_ckpt=result.converted) if to == "paddle" else dict(torch_ckpt=result.converted)
    if verify:
        result.verify = _verified(result, out, input_size, tol, checks)
    return result


def _conversion(torch_ckpt: str | None, paddle_ckpt: str | None, inference, prefix: str | None):
    """(checkpoint, file name in the folder, target framework, convert's options) of the weights a
    port converts into its folder, or None: a torch checkpoint into model.pdparams; an inference
    model's own weights, or a Layer's training checkpoint, into model.pth."""
    if torch_ckpt is not None:
        return torch_ckpt, "model.pdparams", "paddle", {}
    if inference is not None:
        return str(inference[1].with_suffix("")), "model.pth", "torch", {}
    if paddle_ckpt is not None:
        return paddle_ckpt, "model.pth", "torch", {"prefix": prefix}
    return None


def _paddle_source(source: str, inference, staging: Path, model_args: dict[str, Any] | None) -> PortResult:
    from .paddle_to_torch import generate

    if model_args:
        raise InvalidArgument("model_args", model_args, "arguments for a torch model; a Paddle source takes none")
    if inference is not None:
        program, _ = inference
        return generate(program, staging, source=f"{ported.INFERENCE}{program.with_suffix('').resolve()}")
    from .paddle_to_torch.capture import capture

    with capture(source) as (program, keys, unused):
        return generate(program, staging, source=source, keys=keys, unused=unused)


def _verified(result: PortResult, out: Path, input_size: int | None, tol: float, checks: dict[str, Any]):
    """The port's verification: at the port's size, and for a Paddle source at a second size too
    where the program leaves the size open (a failure is reported layer by layer)."""
    from ..parity.verification import VerifyResult
    from ..parity.verification import verify as verify_pairs

    sizes = [input_size or result.input_size]
    if result.direction == "torch->paddle":
        sizes = result.sizes or sizes
    elif _open_size(out):
        sizes.append(sizes[0] * 3 // 4 // 32 * 32 or 32)
    results = []
    for size in sizes:
        outcome = verify_pairs([str(out)], tol=tol, floor=True, input_size=size, **checks)
        if not outcome.passed:
            outcome = verify_pairs([str(out)], tol=tol, floor=True, layers=True, input_size=size, **checks)
        results += outcome.models
    result.sizes = sizes
    return VerifyResult(tol, None, results)


def _open_size(out: Path) -> bool:
    dims = ported.read_folder(out).input_dims
    return dims is not None and any(d < 0 for d in dims[2:])
