"""Twin pairs: the one shape a model takes on its way through weightport.

A model is a registered name (a `registry.ModelSpec`), a factory pair (the twins' factories named
"module:function", with a mapping table) or a ported folder (written by `weightport port`: a
`weightport.json` naming the torch twin's source, a self-contained Paddle twin, the mapping table
and the layout manifest). `resolve` turns any of them into a `TwinPair` once, at the API boundary;
conversion, verification, the table check and the drafter take the pair and never look a name
up again. Building a pair imports nothing heavy: the twins' modules are imported when a twin is
built, the table is read when first asked for, the manifest when a layout is.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..tables.layouts import Layout, manifest_classifier, manifest_layout, model_layout, read_manifest
from ..tables.rules import Table, builtin_table, load_table
from .factories import function_name, import_factory
from .registry import FRAMEWORKS, ModelSpec, Preprocessing, _unknown, lookup

# What `weightport port` writes into a ported folder, and the format of its weightport.json.
PORT_FILE = "weightport.json"
PORT_FORMAT = "weightport-port/1"
# What a pair came from (TwinPair.kind); CUSTOM: made by the keyword constructor itself.
REGISTERED, FACTORIES, PORTED, CUSTOM = "registered", "factories", "ported", "custom"
CUSTOM_FAMILY = "custom"  # the family of a factory pair
PORTED_FAMILY = "ported"  # the family of a ported folder

Factory = Callable[..., Any]


class TwinPair:
    """A torch twin and a Paddle twin of one network, with what converting between them needs.

    `name`, `family`, `description`, `input_size`, `num_classes` and `preprocessing` describe the
    network, `training_differs` why its twins train differently although they agree in eval mode
    (empty when they train alike); `kind` says what the pair came from (REGISTERED, FACTORIES, PORTED or CUSTOM, `folder` the
    ported folder's path) and `sources` names each twin's factory. `create` and
    `create_to_overwrite` build a twin, `table` reads the mapping table (once), `layout` gives a
    twin's state-dict layout (from the manifest when it can), `classifier_dims` and
    `parameter_count` read the manifest.

    The constructors are `registered`, `from_factories` and `from_folder`; `resolve` picks one.
    The keyword constructor below makes any other pair, e.g. one without twins whose table and
    layouts are given directly (`manifest={"paddle": layout}`) to convert weights of a network
    weightport cannot build.
    """

    def __init__(
        self,
        name: str,
        *,
        family: str = CUSTOM_FAMILY,
        kind: str = CUSTOM,
        factories: Mapping[str, Callable[[], Factory]] | None = None,
        sources: Mapping[str, str] | None = None,
        table: Table | str | Path | None = None,
        table_name: str | None = None,
        manifest: Mapping[str, Any] | Path | None = None,
        input_size: int = 224,
        num_classes: int = 1000,
        preprocessing: Preprocessing | None = None,
        description: str = "",
        fixed_args: Mapping[str, Any] | None = None,
        folder: Path | None = None,
        training_differs: str = "",
    ):
        """`factories` gives, per framework, a function returning that twin's factory (called when
        a twin is built, so that its imports wait until then). `table` is a Table, a built-in
        table's name or a table file's path (`table_name` how messages name it); `manifest` a
        layout manifest or the path of its JSON file. With `fixed_args` the twins were made for
        these factory arguments only: `create` accepts no others and builds with none."""
        self.name = name
        self.family = family
        self.kind = kind
        self.description = description
        self.training_differs = training_differs
        self.input_size = input_size
        self.num_classes = num_classes
        self.preprocessing = preprocessing or Preprocessing()
        self.sources = dict(sources or {})
        self.folder = folder
        self._factories = dict(factories or {})
        self._table_source = table
        self._table_name = table_name
        self._table: Table | None = table if isinstance(table, Table) else None
        self._manifest = manifest
        self._fixed_args = dict(fixed_args) if fixed_args is not None else None

    def __repr__(self) -> str:
        where = f", {str(self.folder)!r}" if self.folder is not None else ""
        return f"TwinPair({self.name!r}, {self.kind}{where})"

    # --- constructors ---------------------------------------------------------------------------

    @classmethod
    def registered(cls, name: str) -> TwinPair:
        """The pair of registered model `name` (the registry's error for an unknown one)."""
        spec = lookup(name)
        if spec is None:
            raise UserError(_unknown(name))
        return _registered(spec)

    @classmethod
    def from_factories(
        cls, torch_factory: str, paddle_factory: str, table: str | Path | None = None, input_size: int = 224
    ) -> TwinPair:
        """The pair built by two "module:function" factories, converted by the table file `table`.

        Its name is the two function names joined by '+' (one name when they agree). Without a
        table the pair can be drafted (`weightport map draft`) but not converted or checked."""
        torch_name = function_name(torch_factory, "--torch-model")
        paddle_name = function_name(paddle_factory, "--paddle-model")
        if table is not None and not Path(table).is_file():
            raise UserError(f"mapping table {str(table)!r} not found")
        return cls(
            torch_name if torch_name == paddle_name else f"{torch_name}+{paddle_name}",
            family=CUSTOM_FAMILY,
            kind=FACTORIES,
            factories={
                "torch": functools.partial(import_factory, torch_factory, "torch"),
                "paddle": functools.partial(import_factory, paddle_factory, "paddle"),
            },
            sources={"torch": torch_factory, "paddle": paddle_factory},
            table=Path(table).resolve() if table is not None else None,
            table_name=str(table) if table is not None else None,
            input_size=input_size,
            description=f"{torch_factory} <-> {paddle_factory}",
        )

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> TwinPair:
        """The pair a ported folder holds (see the module's docstring and `_read_port`)."""
        return _read_port(Path(folder))

    def with_table(self, table: Table | str | Path) -> TwinPair:
        """This pair converted by another mapping table (read now: a table file's path, a built-in name or a Table)."""
        other = copy.copy(self)
        other._table_source = table
        other._table_name = table.name if isinstance(table, Table) else str(table)
        other._table = table if isinstance(table, Table) else load_table(table)
        return other

    # --- the twins ------------------------------------------------------------------------------

    def factory(self, framework: str) -> Factory:
        """The function building the `framework` twin (its module imported now)."""
        _check_framework(framework)
        if framework not in self._factories:
            raise UserError(f"{self.name} has no {framework} twin")
        return self._factories[framework]()

    def create(self, framework: str = "torch", **kwargs: Any):
        """The `framework` twin built with `kwargs`, in eval mode, with its initial weights."""
        factory = self.factory(framework)
        return self._built(factory, self._factory_kwargs(kwargs))

    def create_to_overwrite(self, framework: str = "torch", **kwargs: Any):
        """`create` for a twin whose weights the caller overwrites before reading them (loading a
        checkpoint, `randomize_torch`) or never reads (layouts, table checks). Its initialisation, most
        of the build's time, is mostly skipped: see `twins.overwrite_only` for what is left."""
        from .weights import overwrite_only

        factory = self.factory(framework)
        kwargs = self._factory_kwargs(kwargs)
        with overwrite_only(framework):
            return self._built(factory, kwargs)

    def skeleton(self, framework: str = "torch", **kwargs: Any):
        """The `framework` twin's structure with no memory for its tensors (see `twins.without_weights`),
        for its layout; a twin whose construction computes with its tensors' values cannot be built
        so, and is built to be overwritten instead."""
        from .weights import without_weights

        factory = self.factory(framework)
        kwargs = self._factory_kwargs(kwargs)
        try:
            with without_weights(framework):
                return self._built(factory, kwargs)
        except (NotImplementedError, RuntimeError):  # e.g. .item() of a meta tensor
            return self.create_to_overwrite(framework, **kwargs)

    def _built(self, factory: Factory, kwargs: dict[str, Any]):
        try:
            model = factory(**kwargs)
        except TypeError as exc:
            raise UserError(f"model {self.name!r} cannot be built with {kwargs}: {exc}") from None
        model.eval()
        return model

    def _factory_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """What the factories are called with for `kwargs`: themselves, or for twins made for fixed
        arguments nothing (after checking that `kwargs` asks for no other configuration)."""
        if self._fixed_args is None:
            return dict(kwargs)
        fixed = self._fixed_args
        other = {k: v for k, v in kwargs.items() if k not in fixed or fixed[k] != v}
        if other:
            made_for = f"model_args {fixed}" if fixed else "its default configuration (no model_args)"
            wanted = " ".join(f"--model-arg {k}={v if isinstance(v, str) else repr(v)}" for k, v in {**fixed, **kwargs}.items())
            raise UserError(f"{self.folder or self.name} was ported for {made_for}; port again with {wanted} to build it with {other}")
        return {}

    # --- table and layouts ----------------------------------------------------------------------

    def table(self) -> Table:
        """The mapping table (read on first use, then kept)."""
        if self._table is None:
            if self._table_source is None:
                if self.kind == PORTED:
                    raise UserError(f"{self.folder}: its {PORT_FILE} names no mapping table")
                raise UserError(
                    f"{self.name} has no mapping table: pass --mapping TABLE.toml (`weightport map draft` drafts one)"
                )
            self._table = load_table(self._table_source)
        return self._table

    @property
    def table_name(self) -> str | None:
        """How messages name the table: a built-in table's name or the file's path (None without one)."""
        if self._table_name is not None:
            return self._table_name
        if isinstance(self._table_source, Table):
            return self._table_source.name
        return None if self._table_source is None else str(self._table_source)

    @property
    def table_file(self) -> Path | None:
        """The file the table is read from (None for a table given as a Table, or none)."""
        source = self._table_source
        if not isinstance(source, (str, Path)):
            return None
        return Path(source) if Path(source).suffix == ".toml" else builtin_table(str(source))

    @property
    def manifest_file(self) -> Path | None:
        """The file the layout manifest is read from (None for a manifest given as a mapping, or none)."""
        return self._manifest if isinstance(self._manifest, Path) else None

    def manifest(self) -> Mapping[str, Any] | None:
        """The layout manifest (None without one)."""
        source = self._manifest
        if source is None or isinstance(source, Mapping):
            return source
        try:
            manifest = read_manifest(source)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{source}: not a layout manifest ({exc})") from None
        if manifest is not None and not (isinstance(manifest, dict) and all(isinstance(manifest.get(f), dict) for f in FRAMEWORKS)):
            raise UserError(f"{source}: not a layout manifest (it needs a 'torch' and a 'paddle' layout)")
        return manifest

    def layout(self, framework: str, **model_kwargs: Any) -> Layout:
        """The state-dict layout of the `framework` twin built with `model_kwargs`: from the
        manifest when there is one and `model_kwargs` at most change the class count (which the
        manifest says the shapes of), else from a twin built to be overwritten."""
        _check_framework(framework)
        kwargs = self._factory_kwargs(model_kwargs)
        manifest = self.manifest()
        classes = kwargs.get("num_classes")
        if manifest and set(kwargs) <= {"num_classes"} and (classes is None or manifest.get("classifier")):
            return manifest_layout(manifest, framework, classes)
        return model_layout(self.skeleton(framework, **model_kwargs), framework)

    def classifier_dims(self, framework: str) -> dict[str, int]:
        """The tensors of the `framework` twin whose shape follows the class count, each with the
        dimension that holds it (empty without a manifest)."""
        return manifest_classifier(self.manifest(), framework)

    def parameter_count(self) -> int | None:
        """Trainable parameters, from the manifest (None without one)."""
        manifest = self.manifest()
        return manifest.get("parameters") if manifest else None

    def input_size_for(self, model_kwargs: Mapping[str, Any]) -> int:
        """The input height and width of twins built with `model_kwargs`."""
        return int(model_kwargs.get("img_size", self.input_size))


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise UserError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")


# Registered pairs, kept per name while the registry's entry stays the same: their tables are read once.
_registered_pairs: dict[str, tuple[ModelSpec, TwinPair]] = {}


def _registered(spec: ModelSpec) -> TwinPair:
    cached = _registered_pairs.get(spec.name)
    if cached is not None and cached[0] == spec:
        return cached[1]
    pair = TwinPair(
        spec.name,
        family=spec.family,
        kind=REGISTERED,
        factories={framework: functools.partial(spec.factory, framework) for framework in FRAMEWORKS},
        sources={"torch": spec.torch_factory, "paddle": spec.paddle_factory},
        table=spec.table_file,
        table_name=spec.table,
        manifest=spec.manifest_file,
        input_size=spec.input_size,
        num_classes=spec.num_classes,
        preprocessing=spec.preprocessing,
        description=spec.description,
        training_differs=spec.training_differs,
    )
    _registered_pairs[spec.name] = (spec, pair)
    return pair


def resolve(model: TwinPair | str | os.PathLike) -> TwinPair:
    """The twin pair `model` names: a TwinPair (returned as it is), a registered model's name, or a
    ported folder (a path, or a string naming a directory that holds weightport.json).

    A string is a registered name first: a ported folder of the same name is reached by a path
    with a slash in it (`./resnet50`); a string with a slash in it is always a folder's path."""
    if isinstance(model, TwinPair):
        return model
    if isinstance(model, os.PathLike):
        return TwinPair.from_folder(model)
    if not isinstance(model, str):
        raise UserError(f"a model is a registered name, a ported folder or a TwinPair, not {type(model).__name__}")
    if "/" in model or os.sep in model:
        return TwinPair.from_folder(model)
    spec = lookup(model) if model else None
    if spec is not None:
        return _registered(spec)
    if model and Path(model).is_dir():
        return TwinPair.from_folder(model)
    raise UserError(_unknown(model))


def create_model(model: TwinPair | str | os.PathLike, framework: str = "torch", **kwargs: Any):
    """Build the `framework` twin of `model` (anything `resolve` takes), in eval mode, with its initial weights."""
    return resolve(model).create(framework, **kwargs)


def expected_layout(model: TwinPair | str | os.PathLike, framework: str, **model_kwargs: Any) -> Layout:
    """The state-dict layout of `model`'s `framework` twin built with `model_kwargs` (see `TwinPair.layout`)."""
    return resolve(model).layout(framework, **model_kwargs)


# --- ported folders ---------------------------------------------------------------------------


def _read_port(folder: Path) -> TwinPair:
    """The pair of a ported folder, from its weightport.json:

        {"format": "weightport-port/1", "name": ...,
         "torch": {"source": "timm:NAME" | "module:function", "model_args": {...}, "versions": {...}},
         "paddle": {"module": "modeling_paddle.py", "factory": "create_model"},
         "table": "mapping.toml", "layout": "layout.json",
         "input_size": 224, "num_classes": 1000, "preprocessing": {"interpolation": ..., "crop_pct": ..., "mean": [...], "std": [...]}}

    The torch twin is `timm.create_model(NAME, pretrained=False, **model_args)` or the function
    called with `**model_args`; the Paddle twin is the module file's factory, called without
    arguments. Files are named relative to the folder. Anything missing or malformed is a one-line
    UserError naming the folder."""

    def fail(problem: str):
        raise UserError(f"{folder}: {problem}")

    if not folder.is_dir():
        fail("no such folder (a ported folder holds weightport.json)")
    meta_path = folder / PORT_FILE
    if not meta_path.is_file():
        fail(f"not a ported folder: it holds no {PORT_FILE}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"{PORT_FILE} cannot be read: {exc}")
    if not isinstance(meta, dict):
        fail(f"{PORT_FILE} holds {type(meta).__name__}, not an object")
    if meta.get("format") != PORT_FORMAT:
        fail(f"{PORT_FILE} has format {meta.get('format')!r}; this weightport reads {PORT_FORMAT!r}")

    def field(section: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...):
        value = section.get(key, default)
        if value is ... or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            fail(f"{PORT_FILE}: {where}{key} is {'missing' if value is ... else f'{value!r}'}; expected {_kind_name(kind)}")
        return value

    def named_file(text: str, what: str) -> Path:
        path = folder / text
        if not path.is_file():
            fail(f"{PORT_FILE} names {what} {text!r}, which the folder does not hold")
        return path

    name = field(meta, "name", str, "")
    torch = field(meta, "torch", dict, "")
    source = field(torch, "source", str, "torch.")
    model_args = field(torch, "model_args", dict, "torch.", {})
    paddle = field(meta, "paddle", dict, "")
    module = named_file(field(paddle, "module", str, "paddle."), "the Paddle twin's module")
    factory_name = field(paddle, "factory", str, "paddle.", "create_model")
    table = field(meta, "table", (str, type(None)), "", None)
    layout = field(meta, "layout", (str, type(None)), "", None)
    preprocessing = field(meta, "preprocessing", dict, "", {})
    unknown = set(preprocessing) - set(Preprocessing.__dataclass_fields__)
    if unknown:
        fail(f"{PORT_FILE}: preprocessing has unknown keys {sorted(unknown)}")
    try:
        preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in preprocessing.items()})
    except TypeError as exc:
        fail(f"{PORT_FILE}: preprocessing: {exc}")
    return TwinPair(
        name or fail(f"{PORT_FILE}: name is empty"),
        family=PORTED_FAMILY,
        kind=PORTED,
        factories={
            "torch": _ported_torch(folder, source, model_args),
            "paddle": functools.partial(_ported_paddle, folder, module, factory_name),
        },
        sources={"torch": source, "paddle": f"{module}:{factory_name}"},
        table=named_file(table, "the mapping table") if table is not None else None,
        manifest=named_file(layout, "the layout manifest") if layout is not None else None,
        input_size=field(meta, "input_size", int, "", 224),
        num_classes=field(meta, "num_classes", int, "", 1000),
        preprocessing=preprocessing,
        description=f"{source} <-> {module.name}, ported in {folder}",
        fixed_args=model_args,
        folder=folder,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", int: "an integer", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _ported_torch(folder: Path, source: str, model_args: dict[str, Any]) -> Callable[[], Factory]:
    """The torch twin's factory loader for a ported folder's source, "timm:NAME" or "module:function"."""
    kind, _, model_name = source.partition(":")
    if kind == "timm":
        if not model_name:
            raise UserError(f"{folder}: {PORT_FILE}: torch.source {source!r} names no timm model")

        def timm_factory() -> Factory:
            try:
                import timm
            except ImportError as exc:
                raise UserError(f"{folder}: its torch twin is timm's {model_name}, but timm cannot be imported: {exc}") from None
            return functools.partial(timm.create_model, model_name, pretrained=False, **model_args)

        return timm_factory
    function_name(source, f"{folder}: {PORT_FILE}: torch.source")
    return lambda: functools.partial(import_factory(source, "torch"), **model_args)


def _ported_paddle(folder: Path, module_path: Path, factory_name: str) -> Factory:
    """The factory of a ported folder's Paddle twin, its module loaded once per process under a
    name of its own (from the file's resolved path), so that several ported folders can be used side by side."""
    from ..frameworks import quiet_paddle_import

    quiet_paddle_import()
    resolved = module_path.resolve()
    module_name = "weightport_ported_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except (ImportError, SyntaxError) as exc:
            del sys.modules[module_name]
            raise UserError(f"{folder}: cannot load the Paddle twin {module_path.name}: {exc}") from None
        except BaseException:
            del sys.modules[module_name]
            raise
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UserError(f"{folder}: {module_path.name} defines no function {factory_name}()")
    return factory
