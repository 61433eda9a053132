"""Layout manifests: the names, shapes and dtypes of each twin's state dict.

Conversion checks its output against the target twin's layout before writing anything. For a
registered model at its default configuration the layout comes from its family's `layouts/<model>.json`,
generated from the twins by `scripts/update_layouts.py` and kept in sync by the test suite, so that
conversion imports neither framework; a ported folder carries its own (`layout.json`, the same
schema). The manifest also records which tensors follow the class count (the classifier's, and the
dimension that holds it), so that the layout of a twin built for a fine-tuned head comes from the
manifest too. Other configurations (e.g. another input size) are read from a freshly built twin:
`models.pair.TwinPair.layout` chooses.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

Layout = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, dtype name)
# The class count the manifests' classifier probe builds twins with: no registered model's own.
PROBE_CLASSES = 7


@cache
def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path` (None when there is no such file), read once per process."""
    return json.loads(path.read_text()) if path.is_file() else None


def manifest_layout(manifest: Mapping[str, Any], framework: str, classes: int | None = None) -> Layout:
    """The `framework` twin's layout from its manifest, its classifier resized for `classes` when given."""
    layout = {k: (tuple(shape), dtype) for k, (shape, dtype) in manifest[framework].items()}
    return layout if classes is None else with_classes(layout, manifest_classifier(manifest, framework), classes)


def with_classes(layout: Layout, classifier: Mapping[str, int], classes: int) -> Layout:
    """`layout` with the tensors that follow the class count (`classifier`: key -> the dimension
    holding it) resized for `classes`."""
    layout = dict(layout)
    for key, dim in classifier.items():
        shape, dtype = layout[key]
        layout[key] = (shape[:dim] + (int(classes),) + shape[dim + 1 :], dtype)
    return layout


def manifest_classifier(manifest: Mapping[str, Any] | None, framework: str) -> dict[str, int]:
    """The tensors of the `framework` twin whose shape follows the class count, each with the
    dimension that holds it (empty without a manifest or without that record)."""
    return (manifest or {}).get("classifier", {}).get(framework, {})


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


def _follows_classes(layout: Layout, probe: Layout) -> dict[str, int]:
    """Tensors whose shape changed between the default twin and the probe, with the changed dimension."""
    dims = {}
    for key, (shape, _) in layout.items():
        changed = [i for i, (a, b) in enumerate(zip(shape, probe[key][0], strict=True)) if a != b]
        if changed:
            (dims[key],) = changed
    return dims


def write_manifest(pair, path: Path | None = None) -> Path:
    """Regenerate the manifest of `pair` (a `models.pair.TwinPair`; by default where the pair reads it,
    `pair.manifest_file`) from its twins: their layouts, and which tensors follow the class count
    (twins built again for PROBE_CLASSES classes tell)."""
    layouts, classifier = {}, {}
    for framework in ("torch", "paddle"):
        model = pair.create_to_overwrite(framework)
        if framework == "torch":
            parameters = count_trainable(model)
        layouts[framework] = model_layout(model, framework)
        probe = model_layout(pair.create_to_overwrite(framework, num_classes=PROBE_CLASSES), framework)
        classifier[framework] = _follows_classes(layouts[framework], probe)
    path = path or pair.manifest_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest_text(pair.name, parameters, classifier, layouts))
    read_manifest.cache_clear()
    return path


def manifest_text(name: str, parameters: int, classifier: dict[str, dict[str, int]], layouts: dict[str, Layout]) -> str:
    """A manifest as JSON, one tensor per line (so that diffs of regenerated manifests read well)."""
    sections = []
    for framework, layout in layouts.items():
        rows = ",\n".join(f"    {json.dumps(k)}: [{json.dumps(list(shape))}, {json.dumps(dtype)}]" for k, (shape, dtype) in layout.items())
        sections.append(f'  "{framework}": {{\n{rows}\n  }}')
    head = f'{{\n  "model": {json.dumps(name)},\n  "parameters": {parameters},\n  "classifier": {json.dumps(classifier)},\n'
    return head + ",\n".join(sections) + "\n}\n"
