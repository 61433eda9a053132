"""`weightport port`: generate the Paddle twin of a torch model, with its table, layout and manifest.

The folder it writes is a twin pair like a registered one (`weightport.models.pair`): convert, verify and
`map check` accept it wherever they accept a model name. How the model is captured: trace.py;
how the code is written: emit.py; what translates to what: translations/*.toml.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .errors import PortError

FORMAT = "weightport-port/1"
MANIFEST = "weightport.json"
EXAMPLE_BATCH = 2  # train-mode BatchNorm needs more than one value per channel


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
    verify: Any = None  # verification.VerifyResult
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verify is None or self.verify.passed

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "verify"}
        data["verify"] = self.verify.as_dict() if self.verify is not None else None
        return data


def torch_source(source: str, model_args: dict[str, Any]):
    """Build the torch model named by `timm:NAME` or `module:factory`, in eval mode."""
    kind, sep, name = source.partition(":")
    if not sep or not name:
        raise UserError(f"port source {source!r}: write timm:NAME or module:factory")
    if kind == "timm":
        import timm

        if not timm.is_model(name):
            raise UserError(f"timm has no model {name!r} (timm {timm.__version__}; `timm.list_models('{name[:4]}*')` lists similar ones)")
        try:
            model = timm.create_model(name, pretrained=False, **model_args)
        except TypeError as exc:
            raise UserError(f"timm cannot build {name!r} with {model_args}: {exc}") from None
    else:
        try:
            factory = getattr(importlib.import_module(kind), name)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"cannot import the torch factory {source!r}: {exc}") from None
        try:
            model = factory(**model_args)
        except TypeError as exc:
            raise UserError(f"{source} cannot be built with {model_args}: {exc}") from None
    return model.eval()


def _preprocessing(model, input_size: int | None) -> tuple[int, dict[str, Any]]:
    from ..models.registry import Preprocessing

    config = getattr(model, "pretrained_cfg", None) or {}
    size = input_size or int(config.get("input_size", (3, 224, 224))[-1])
    default = Preprocessing()
    return size, {
        "interpolation": config.get("interpolation", default.interpolation),
        "crop_pct": float(config.get("crop_pct", default.crop_pct)),
        "mean": [float(v) for v in config.get("mean", default.mean)],
        "std": [float(v) for v in config.get("std", default.std)],
    }


def _versions() -> dict[str, str]:
    import importlib.metadata

    from .. import __version__

    versions = {"weightport": __version__}
    for package in ("torch", "timm", "paddlepaddle", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def generate(source: str, folder: Path, *, model_args: dict[str, Any] | None = None, input_size: int | None = None) -> PortResult:
    """Trace the torch model and write the twin's files into `folder` (an empty directory)."""
    import time

    import numpy as np
    import torch

    from ..frameworks import quiet_paddle_import
    from .torch_to_paddle.emit import generate as generate_twin
    from .torch_to_paddle.tables import check_table, layout_manifest, mapping_table

    quiet_paddle_import()
    started = time.perf_counter()
    model_args = dict(model_args or {})
    model = torch_source(source, model_args)
    size, preprocessing = _preprocessing(model, input_size)
    example = (torch.randn(EXAMPLE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0)),)
    name = source.rpartition(":")[2]
    header = _header(source, model_args, size)
    generated = generate_twin(model, example, header)
    (folder / "modeling_paddle.py").write_text(generated.source)
    files = ["modeling_paddle.py"]
    if generated.constants:
        np.savez(folder / "constants.npz", **generated.constants)
        files.append("constants.npz")
    paddle_model = _load_generated(folder)
    (folder / "mapping.toml").write_text(mapping_table(source, model, paddle_model))
    layout = layout_manifest(name, model, paddle_model)
    (folder / "layout.json").write_text(layout)
    manifest = {
        "format": FORMAT,
        "name": name,
        "torch": {"source": source, "model_args": model_args, "versions": _versions()},
        "paddle": {"module": "modeling_paddle.py", "factory": "create_model"},
        "table": "mapping.toml",
        "layout": "layout.json",
        "input_size": size,
        "num_classes": _class_count(model, example),
        "preprocessing": preprocessing,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    files += ["mapping.toml", "layout.json", MANIFEST]
    check_table(folder / "mapping.toml", model, paddle_model)
    state = model.state_dict()
    return PortResult(
        source=source, folder=str(folder), classes=generated.classes, lines=len(generated.source.splitlines()),
        tensors=len(state), parameters=sum(p.numel() for p in model.parameters()), input_size=size,
        seconds=round(time.perf_counter() - started, 2), files=files,
    )


def _class_count(model, example) -> int:
    """The model's class count: timm's attribute, else the width of a 2-D output (0 for other outputs)."""
    import torch

    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    with torch.no_grad():
        output = model(*example)
    return int(output.shape[-1]) if isinstance(output, torch.Tensor) and output.ndim == 2 else 0


def _header(source: str, model_args: dict[str, Any], size: int) -> str:
    versions = _versions()
    arguments = " ".join(f"--model-arg {k}={v!r}" for k, v in model_args.items())
    command = f"weightport port {source} --input-size {size}" + (f" {arguments}" if arguments else "")
    libraries = f"torch {versions.get('torch', '?')}"
    if source.startswith("timm:"):
        libraries += f" and timm {versions.get('timm', '?')}"
    return (
        f"Paddle twin of {source}, generated by weightport {versions['weightport']} (`{command}`)\n"
        f"from {libraries}, for Paddle {versions.get('paddlepaddle', '?')}.\n\n"
        "State-dict keys are torch's (BatchNorm statistics as _mean/_variance, Linear weights stored\n"
        "transposed, as Paddle does). Branches that torch takes on input sizes were fixed for\n"
        f"{size}x{size} inputs. Load converted weights with\n"
        "`weightport convert <this folder> model.pth model.pdparams` and\n"
        "`model.set_state_dict(paddle.load(\"model.pdparams\"))`.\n"
    )


def _load_generated(folder: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"weightport_port_{abs(hash(str(folder)))}", folder / "modeling_paddle.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module.create_model()
    except Exception as exc:
        raise PortError(f"the generated Paddle twin fails to build: {type(exc).__name__}: {exc}") from None


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
    """Port `source` into folder `out` and verify the twins (see the module docstring).

    Nothing is left behind when the model cannot be ported; an existing `out` is replaced only with
    `force`, and only once the new folder is complete."""
    from ..frameworks import quiet_paddle_import

    quiet_paddle_import()
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        result = generate(source, staging, model_args=model_args, input_size=input_size)
        _install(staging, out)
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


def _install(staging: Path, out: Path) -> None:
    """Move the finished folder to `out`, replacing an existing one only after the new one is whole."""
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, previous / out.name)
        os.replace(staging, out)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.replace(staging, out)
