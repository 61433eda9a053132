"""The model registry: what weightport knows about each supported network.

A `ModelSpec` names the two twins by import path ("module:function") so that
listing models, reading tables and converting files never import torch or
paddle; only `create_model` does, and only for the framework asked for.
Families register themselves in `weightport/models/<family>/__init__.py`
through a module-level `MODELS` list; other packages add theirs through the
`weightport.models` entry point group (a list of `ModelSpec`, or a callable
returning one). A twin pair named on the command line by its factories is
made known for the process with `use_custom`, without being registered.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .errors import UserError

FRAMEWORKS = ("torch", "paddle")
# Families shipped with weightport; each is a subpackage of weightport.models.
BUILTIN_FAMILIES = ("resnet", "fcvit", "cmt", "botnet", "botnet_mhsa")
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
    table: str  # mapping table name: weightport/mappings/<table>.toml
    torch_factory: str  # "module:function"
    paddle_factory: str  # "module:function"
    input_size: int = 224
    num_classes: int = 1000
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""

    def factory(self, framework: str):
        if framework not in FRAMEWORKS:
            raise UserError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
        path = self.torch_factory if framework == "torch" else self.paddle_factory
        module_name, _, attr = path.partition(":")
        if framework == "paddle":
            from .frameworks import quiet_paddle_import

            quiet_paddle_import()
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise UserError(f"cannot import the {framework} twin's factory {path!r}: {exc}") from None
        except AttributeError:
            raise UserError(f"{module_name!r} has no {framework} twin factory {attr!r}") from None


@cache
def _builtin() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for family in BUILTIN_FAMILIES:
        module = importlib.import_module(f"{__package__}.models.{family}")
        for spec in module.MODELS:
            if spec.name in specs:
                raise RuntimeError(f"model {spec.name!r} registered twice")
            specs[spec.name] = spec
    return specs


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
                raise UserError(f"{origin} provides {spec!r}, not a weightport.registry.ModelSpec")
            if spec.name in specs:
                raise UserError(f"model {spec.name!r} from {origin} is already registered")
            specs[spec.name] = spec
    return specs


# Twin pairs named by their factories (not registered), known for the rest of the process.
_custom: dict[str, ModelSpec] = {}


def use_custom(spec: ModelSpec) -> str:
    """Make an unregistered twin pair known by `spec.name` (replacing an earlier custom one); returns the name."""
    if spec.name in _registry():
        raise UserError(f"{spec.name!r} is a registered model; give the custom pair another name")
    _custom[spec.name] = spec
    return spec.name


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_registry())


def get_spec(name: str) -> ModelSpec:
    spec = _builtin().get(name) or _custom.get(name) or _registry().get(name)
    if spec is None:
        raise UserError(_unknown(name))
    return spec


def _unknown(name: str) -> str:
    """The error for an unregistered name: the closest registered names, and what timm offers."""
    close = difflib.get_close_matches(name, [*_registry(), *_custom], n=3, cutoff=0.75)
    message = f"unknown model {name!r}"
    if close:
        message += f"; the closest registered: {', '.join(close)}"
    if _timm_defines(name):
        message += (
            "; timm defines it, but weightport has no twins for it yet: pair timm's model with a Paddle twin "
            "of your own (--torch-model, --paddle-model, --mapping; see the README's 'Converting your own model')"
        )
    elif not close:
        message += "; `weightport list` shows the registered models"
    return message


def _timm_defines(name: str) -> bool:
    """Whether timm knows `name` (timm imports torch: this runs only on the error path)."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm
    except Exception:  # a broken timm install must not hide the real error
        return False
    return bool(timm.is_model(name))


def create_model(name: str, framework: str = "torch", **kwargs: Any):
    """Build the `framework` twin of registered model `name`, in eval mode, with its initial weights."""
    return _built(name, get_spec(name).factory(framework), kwargs)


def create_model_to_overwrite(name: str, framework: str = "torch", **kwargs: Any):
    """`create_model` for a twin whose weights the caller overwrites before reading them (loading a
    checkpoint, `randomize_torch`) or never reads (layouts, table checks). Its initialisation, most
    of the build's time, is mostly skipped: see `twins.overwrite_only` for what is left."""
    from .twins import overwrite_only

    factory = get_spec(name).factory(framework)
    with overwrite_only(framework):
        return _built(name, factory, kwargs)


def _built(name: str, factory, kwargs: dict[str, Any]):
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise UserError(f"model {name!r} cannot be built with {kwargs}: {exc}") from None
    model.eval()
    return model
