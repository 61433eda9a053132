"""The model registry: what weightport knows about each supported network.

A `ModelSpec` names the two twins by import path ("module:function") so that
listing models, reading tables and converting files never import torch or
paddle; only building a twin does, and only for the framework asked for.
Families register themselves in `weightport/models/<family>/__init__.py`
through a module-level `MODELS` list; other packages add theirs through the
`weightport.models` entry point group (a list of `ModelSpec`, or a callable
returning one). The rest of weightport takes a registered model, like any
other, as a `pair.TwinPair` (see `pair.resolve`).
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..errors import InvalidArgument, UnknownModel, UserError
from ..frameworks import FRAMEWORKS
from .factories import import_factory

# Families shipped with weightport; each is a subpackage of weightport.models.
BUILTIN_FAMILIES = (
    "resnet", "fcvit", "cmt", "botnet", "botnet_mhsa", "vision", "ppcls_resnet", "ppcls_lcnet", "ppcls_hgnet", "ppdet_resnet",
)
# Entry point group through which other packages register their own models.
ENTRY_POINT_GROUP = "weightport.models"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How the reference evaluates images: resize by 1/crop_pct, centre crop, normalise."""

    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    table: str  # the mapping table: its name in the family's folder (`<table>.toml`), or a file's path
    torch_factory: str  # "module:function"
    paddle_factory: str  # "module:function"
    input_size: int = 224
    num_classes: int = 1000  # 0 for a backbone: no classifier
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""
    # Non-empty when the twins agree in eval mode but train differently, and why (`verify --train`).
    training_differs: str = ""
    # The family's folder, which holds its tables and layouts/<name>.json (set when the family is registered).
    home: Path | None = None

    @property
    def table_file(self) -> Path:
        return self.home / f"{self.table}.toml" if self.home is not None else Path(self.table)

    @property
    def manifest_file(self) -> Path | None:
        return self.home / "layouts" / f"{self.name}.json" if self.home is not None else None

    def factory(self, framework: str):
        if framework not in FRAMEWORKS:
            raise InvalidArgument("framework", framework, f"expected one of {', '.join(FRAMEWORKS)}")
        return import_factory(self.torch_factory if framework == "torch" else self.paddle_factory, framework)


@cache
def _builtin() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for family in BUILTIN_FAMILIES:
        module = importlib.import_module(f"{__package__}.{family}")
        home = Path(module.__file__).parent
        for spec in module.MODELS:
            if spec.name in specs:
                raise RuntimeError(f"model {spec.name!r} registered twice")
            specs[spec.name] = dataclasses.replace(spec, home=home)
    return specs


@cache
def refused() -> dict[str, str]:
    """Architectures a built-in family declines, and why: names both libraries use for different networks."""
    return {name: why for family in BUILTIN_FAMILIES
            for name, why in getattr(importlib.import_module(f"{__package__}.{family}"), "REFUSED", {}).items()}


@cache
def _registry() -> dict[str, ModelSpec]:
    """The built-in models and those of installed packages. Packages are looked up only when
    a name is not built in: the look-up reads every installed distribution's metadata."""
    import importlib.metadata

    specs = dict(_builtin())
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name!r} ({entry.value})"
        try:
            provided = entry.load()
            provided = list(provided() if callable(provided) else provided)
        except Exception as exc:  # a broken third-party package: name it instead of a traceback
            raise UserError(f"{origin} of group {ENTRY_POINT_GROUP} failed to load: {exc}") from None
        for spec in provided:
            if not isinstance(spec, ModelSpec):
                raise UserError(f"{origin} provides {spec!r}, not a weightport.models.registry.ModelSpec")
            if spec.name in specs:
                raise UserError(f"model {spec.name!r} from {origin} is already registered")
            specs[spec.name] = spec
    return specs


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_registry())


def lookup(name: str) -> ModelSpec | None:
    """The registered model `name`, None when there is none (installed packages are asked last)."""
    return _builtin().get(name) or _registry().get(name)


def get_spec(name: str) -> ModelSpec:
    spec = lookup(name)
    if spec is None:
        raise unknown_model(name)
    return spec


def unknown_model(name: str) -> UnknownModel:
    """The error for an unregistered name: why it is refused, or the closest registered names and
    whether timm defines it."""
    if name in refused():
        return UnknownModel(name, [], refused=refused()[name])
    close = difflib.get_close_matches(name, list(_registry()), n=3, cutoff=0.75)
    return UnknownModel(name, close, _timm_defines(name))


def _timm_defines(name: str) -> bool:
    """Whether timm knows `name` (timm imports torch: this runs only on the error path)."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm
    except Exception:  # a broken timm install must not hide the real error
        return False
    return bool(timm.is_model(name))
