"""torch -> Paddle: trace a torch model (trace.py), write its Paddle twin from the translation tables
(translations/), with the runtime helpers copied into the generated code (runtime.py), and its
mapping table and layout manifest (tables.py), into a ported folder (`models.ported`)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import PortError
from ...models import ported
from ...models.inputs import FLOATING, InputSpec, example_inputs, image_input
from ...models.inputs import describe as describe_inputs
from .calling import InputRequest, checkpoint_keys, default_size, resolve_inputs


def generate(source: str, folder: Path, *, model_args: dict[str, Any] | None = None, input_size: int | None = None,
             inputs: Sequence[InputRequest | InputSpec] | None = None):
    """Trace the torch model `source` names, called with `inputs` (found from the model where None),
    and write the twin's files into `folder` (an empty directory); returns the port's `PortResult`
    (not yet verified)."""
    import numpy as np

    from ...frameworks import quiet_paddle_import
    from .. import PortResult, versions
    from .emit import generate as generate_twin
    from .tables import check_table, layout_manifest, mapping_table

    quiet_paddle_import()
    started = time.perf_counter()
    model_args = dict(model_args or {})
    model = ported.torch_factory(source, model_args)().eval()
    size, preprocessing = _preprocessing(model, input_size or _size_of(inputs) or default_size(model))
    specs = resolve_inputs(model, inputs, input_size, size)
    sizes = _sizes_it_runs_at(model, specs, size)
    examples = [example_inputs(specs, s) for s in sizes]
    args, kwargs = examples[0]
    name = Path(source.rpartition(":")[2]).name
    generated = generate_twin(model, examples, _header(source, model_args, size, specs, sizes))
    if generated.fixed_reason is not None or len(sizes) == 1:
        sizes = [size]
    (folder / ported.PADDLE_MODULE).write_text(generated.source)
    files = [ported.PADDLE_MODULE]
    if generated.constants:
        np.savez(folder / ported.CONSTANTS, **generated.constants)
        files.append(ported.CONSTANTS)
    paddle_model = _build_generated(folder)
    (folder / ported.TABLE).write_text(mapping_table(source, model, paddle_model))
    (folder / ported.LAYOUT).write_text(layout_manifest(name, model, paddle_model))
    ported.write_manifest(folder, name=name, versions=versions(),
                          sides={"torch": {"source": source, "model_args": model_args, **_saved_keys(model)},
                                 "paddle": {"module": ported.PADDLE_MODULE, "factory": ported.FACTORY}},
                          input_size=size, num_classes=_class_count(model, args, kwargs), preprocessing=preprocessing,
                          inputs=[spec.as_dict() for spec in specs],
                          input_sizes=sizes if generated.fixed_reason is None else "fixed", size_limit=generated.fixed_reason)
    files += [ported.TABLE, ported.LAYOUT, ported.MANIFEST]
    check_table(folder / ported.TABLE, model, paddle_model)
    return PortResult(
        source=source, folder=str(folder), classes=generated.classes, lines=len(generated.source.splitlines()),
        tensors=len(model.state_dict()), parameters=sum(p.numel() for p in model.parameters()), input_size=size,
        sizes=sizes, size_limit=generated.fixed_reason, seconds=round(time.perf_counter() - started, 2), files=files,
    )


def _sizes_it_runs_at(model, specs: list[InputSpec], size: int) -> list[int]:
    """The port's size, then those of ¾ and 5/4 of it (to a multiple of 32, or of 16 below 128) at which
    torch's model runs: the twin is traced at each, so that it computes sizes as torch does. Only the
    port's size where no input has an image size (token ids)."""
    import torch

    if not any(spec.floating and len(spec.shape) >= 4 for spec in specs):
        return [size]
    step = 32 if size >= 128 else 16
    sizes = [size]
    for ratio in (0.75, 1.25):
        other = max(step, int(size * ratio / step + 0.5) * step)
        if other in sizes:
            continue
        args, kwargs = example_inputs(specs, other)
        try:
            with torch.no_grad():
                model(*args, **kwargs)
        except Exception:
            continue
        sizes.append(other)
    return sizes


def _preprocessing(model, input_size: int | None) -> tuple[int, dict[str, Any]]:
    from ...models.registry import Preprocessing

    config = getattr(model, "pretrained_cfg", None) or {}
    size = input_size or int(config.get("input_size", (3, 224, 224))[-1])
    default = Preprocessing()
    return size, {
        "interpolation": config.get("interpolation", default.interpolation),
        "crop_pct": float(config.get("crop_pct", default.crop_pct)),
        "mean": [float(v) for v in config.get("mean", default.mean)],
        "std": [float(v) for v in config.get("std", default.std)],
    }


def _saved_keys(model) -> dict[str, Any]:
    keys = checkpoint_keys(model)
    return {"checkpoint_keys": keys} if keys else {}


def _size_of(inputs) -> int | None:
    """The image size an input asked for gives: the last dimension of a floating one of 4 or more."""
    for request in inputs or ():
        if request.shape is not None and len(request.shape) >= 4 and (request.dtype or "float32") in FLOATING:
            return request.shape[-1]
    return None


def _class_count(model, args, kwargs) -> int:
    """The model's class count: timm's attribute, else the width of a 2-D output, the first of a
    structure (a Hugging Face classifier's logits); 0 for other outputs."""
    import torch

    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    with torch.no_grad():
        output = model(*args, **kwargs)
    while isinstance(output, (tuple, list, dict)) and output:
        output = next(iter(output.values())) if isinstance(output, dict) else output[0]
    return int(output.shape[-1]) if isinstance(output, torch.Tensor) and output.ndim == 2 else 0


def _header(source: str, model_args: dict[str, Any], size: int, specs: list[InputSpec], sizes: list[int]) -> str:
    from .. import versions

    found = versions()
    arguments = " ".join(f"--model-arg {k}={v!r}" for k, v in model_args.items())
    command = f"weightport port {source} --input-size {size}" + (f" {arguments}" if arguments else "")
    if not (len(specs) == 1 and specs[0] == image_input(size, specs[0].name)):
        command += "".join(f" --input-name {s.name}" for s in specs if s.keyword)
    libraries = f"torch {found.get('torch', '?')}"
    if source.startswith("timm:"):
        libraries += f" and timm {found.get('timm', '?')}"
    if source.startswith("transformers:"):
        libraries += f" and transformers {found.get('transformers', '?')}"
    return (
        f"Paddle twin of {source}, generated by weightport {found['weightport']} (`{command}`)\n"
        f"from {libraries}, for Paddle {found.get('paddlepaddle', '?')}.\n\n"
        "State-dict keys are torch's (BatchNorm statistics as _mean/_variance, Linear weights stored\n"
        f"transposed, as Paddle does). Traced on {describe_inputs(specs, size)} and at input sizes\n"
        + ", ".join(map(str, sizes)) + ": sizes are computed from the input as torch computes them, and\n"
        "where torch's path depends on them the twin branches as torch does, or checks that it takes\n"
        "the path the traces saw. Load converted weights with\n"
        "`weightport convert <this folder> model.pth model.pdparams` and\n"
        "`model.set_state_dict(paddle.load(\"model.pdparams\"))`.\n"
    )


def _build_generated(folder: Path):
    try:
        return ported.load_module(folder, folder / ported.PADDLE_MODULE).create_model()
    except Exception as exc:
        raise PortError(f"the generated Paddle twin fails to build: {type(exc).__name__}: {exc}") from None
