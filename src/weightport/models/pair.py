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
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, PortedFolderError, Remedy, UserError
from ..frameworks import FRAMEWORKS
from ..tables.layouts import Layout, manifest_classifier, manifest_layout, model_layout, read_manifest
from ..tables.loading import builtin_table, load_table
from ..tables.rules import Table
from .factories import function_name, import_factory
from .inputs import InputSpec
from .registry import ModelSpec, Preprocessing, lookup, unknown_model

# What a pair came from (TwinPair.kind); CUSTOM: made by the keyword constructor itself.
REGISTERED, FACTORIES, PORTED, CUSTOM = "registered", "factories", "ported", "custom"
CUSTOM_FAMILY = "custom"  # the family of a factory pair
# What building a twin without its weights' memory raises when its construction computes with them:
# torch's meta tensors (.item()), Paddle's lazy ones (an RNN layer packing its weights into one buffer).
LAZY_REFUSED = (NotImplementedError, RuntimeError, ValueError)

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
        input_dims: tuple[int, ...] | None = None,
        inputs: tuple[InputSpec, ...] | None = None,
        checkpoint_keys: Mapping[str, str] | None = None,
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
        self.input_dims = input_dims
        self.inputs = inputs  # how the twins are called, where not one image batch by position
        self.checkpoint_keys = dict(checkpoint_keys or {})  # a torch file's key -> the torch twin's own
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
            raise unknown_model(name)
        return _registered(spec)

    @classmethod
    def from_factories(
        cls, torch_factory: str, paddle_factory: str, table: str | Path | None = None, input_size: int = 224
    ) -> TwinPair:
        """The pair built by two "module:function" factories, converted by the table file `table`.

        Its name is the two function names joined by '+' (one name when they agree). Without a
        table the pair can be drafted (`weightport map draft`) but not converted or checked."""
        torch_name = function_name(torch_factory, "torch_factory")
        paddle_name = function_name(paddle_factory, "paddle_factory")
        if table is not None and not Path(table).is_file():
            raise InvalidArgument("table", str(table), "no such mapping table file")
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
        """The pair a ported folder holds (see `models.ported`)."""
        from .ported import read_folder

        return read_folder(Path(folder))

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
        of the build's time, is mostly skipped: see `models.weights.overwrite_only` for what is left."""
        from .weights import overwrite_only

        factory = self.factory(framework)
        kwargs = self._factory_kwargs(kwargs)
        try:
            with overwrite_only(framework):
                return self._built(factory, kwargs)
        except LAZY_REFUSED:
            if framework != "paddle":
                raise
            return self._built(factory, kwargs)  # built in full: its construction computes with its weights

    def skeleton(self, framework: str = "torch", **kwargs: Any):
        """The `framework` twin's structure with no memory for its tensors (see `models.weights.without_weights`),
        for its layout; a twin whose construction computes with its tensors' values cannot be built
        so, and is built to be overwritten instead."""
        from .weights import without_weights

        factory = self.factory(framework)
        kwargs = self._factory_kwargs(kwargs)
        try:
            with without_weights(framework):
                return self._built(factory, kwargs)
        except LAZY_REFUSED:  # e.g. .item() of a meta tensor
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
            raise UserError(f"{self.folder or self.name} was ported for {made_for}; port again to build it with {other}",
                            remedies=(Remedy("model_args", {**fixed, **kwargs}, "when porting"),))
        return {}

    # --- table and layouts ----------------------------------------------------------------------

    def table(self) -> Table:
        """The mapping table (read on first use, then kept)."""
        if self._table is None:
            if self._table_source is None:
                if self.kind == PORTED:
                    raise PortedFolderError(self.folder, "its weightport.json names no mapping table")
                raise UserError(f"{self.name} has no mapping table; `weightport map draft` (tables.draft) drafts one from the twins",
                                remedies=(Remedy("table", "TABLE.toml", "to give it one"),))
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

    def own_keys(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """A torch checkpoint's tensors under the torch twin's own keys, where its files name them
        otherwise (`checkpoint_keys`: a Hugging Face model's saved legacy names)."""
        if not self.checkpoint_keys or not any(k in self.checkpoint_keys for k in tensors):
            return tensors
        return {self.checkpoint_keys.get(k, k): t for k, t in tensors.items()}

    def kwargs_for_input_size(self, input_size: int | None, model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """`model_kwargs` for twins that run on `input_size` x `input_size` inputs: with that img_size
        where the table resizes tensors by the input size (the twins' weights depend on it), unless
        `model_kwargs` names one."""
        if input_size is None or "img_size" in model_kwargs or not self.table().resizes:
            return dict(model_kwargs)
        return {**model_kwargs, "img_size": input_size}

    def input_size_for(self, model_kwargs: Mapping[str, Any]) -> int:
        """The input height and width of twins built with `model_kwargs`."""
        return int(model_kwargs.get("img_size", self.input_size))

    def input_shape(self, size: int) -> tuple[int, int]:
        """The (height, width) of inputs of size `size`: `size` wherever the pair's input dims (a
        ported program's, e.g. [-1, 3, 48, -1] for a text recogniser) leave the size open."""
        if self.input_dims is None or len(self.input_dims) != 4:
            return size, size
        height, width = self.input_dims[2:]
        return (height if height > 0 else size), (width if width > 0 else size)


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise InvalidArgument("framework", framework, f"expected one of {', '.join(FRAMEWORKS)}")


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
    raise unknown_model(model)


def create_model(model: TwinPair | str | os.PathLike, framework: str = "torch", **kwargs: Any):
    """Build the `framework` twin of `model` (anything `resolve` takes), in eval mode, with its initial weights."""
    return resolve(model).create(framework, **kwargs)


def expected_layout(model: TwinPair | str | os.PathLike, framework: str, **model_kwargs: Any) -> Layout:
    """The state-dict layout of `model`'s `framework` twin built with `model_kwargs` (see `TwinPair.layout`)."""
    return resolve(model).layout(framework, **model_kwargs)
