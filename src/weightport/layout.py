"""Layout manifests: the names, shapes and dtypes of each twin's state dict.

Conversion checks its output against the target twin's layout before writing anything. For a
registered model at its default configuration the layout comes from `mappings/layouts/<model>.json`,
generated from the twins by `scripts/update_layouts.py` and kept in sync by the test suite, so that
conversion imports neither framework. Other configurations (e.g. another input size) are read
from a freshly built twin.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .mapping import mappings_dir
from .registry import create_model_to_overwrite, get_spec

Layout = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, dtype name)


def manifest_path(name: str) -> Path:
    return mappings_dir() / "layouts" / f"{name}.json"


def parameter_count(name: str) -> int | None:
    """Trainable parameters of a registered model, from its manifest (None without one)."""
    path = manifest_path(name)
    return json.loads(path.read_text())["parameters"] if path.is_file() else None


def expected_layout(name: str, framework: str, **model_kwargs: Any) -> Layout:
    """The state-dict layout of `name`'s `framework` twin."""
    get_spec(name)
    path = manifest_path(name)
    if not model_kwargs and path.is_file():
        data = json.loads(path.read_text())
        return {k: (tuple(shape), dtype) for k, (shape, dtype) in data[framework].items()}
    return model_layout(create_model_to_overwrite(name, framework, **model_kwargs), framework)


def model_layout(model, framework: str) -> Layout:
    """The layout of a model instance's state dict."""
    layout = {}
    for key, value in model.state_dict().items():
        dtype = str(value.dtype).removeprefix("torch.").removeprefix("paddle.")
        layout[key] = (tuple(int(s) for s in value.shape), dtype)
    return layout


def count_trainable(model) -> int:
    """Trainable parameters of a torch module or a Paddle layer."""
    if hasattr(model, "named_sublayers"):  # Paddle
        return sum(int(p.numel()) for p in model.parameters() if not p.stop_gradient)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def write_manifest(name: str) -> Path:
    """Regenerate the manifest of a registered model from its twins."""
    sections = []
    for framework in ("torch", "paddle"):
        model = create_model_to_overwrite(name, framework)
        if framework == "torch":
            parameters = count_trainable(model)
        layout = model_layout(model, framework)
        rows = ",\n".join(f"    {json.dumps(k)}: [{json.dumps(list(shape))}, {json.dumps(dtype)}]" for k, (shape, dtype) in layout.items())
        sections.append(f'  "{framework}": {{\n{rows}\n  }}')
    path = manifest_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f'{{\n  "model": {json.dumps(name)},\n  "parameters": {parameters},\n'
    path.write_text(head + ",\n".join(sections) + "\n}\n")
    return path
