"""The ported folder: what `weightport port` writes and every command reads, in one place.

A ported folder is a twin pair on disk: one twin is the source the port read, the other the code
it generated. torch -> Paddle:

    weightport.json      the manifest below (format FORMAT)
    modeling_paddle.py   the generated twin: paddle, numpy and the standard library only
    constants.npz        its constant tensors, when it has any
    mapping.toml         the mapping table
    layout.json          the layout manifest (the schema of each family's layouts/<model>.json)

    {"format": "weightport-port/1", "name": ...,
     "torch": {"source": "timm:NAME" | "module:function", "model_args": {...}, "versions": {...}},
     "paddle": {"module": "modeling_paddle.py", "factory": "create_model"},
     "table": "mapping.toml", "layout": "layout.json",
     "input_size": 224, "num_classes": 1000,
     "inputs": [{"name": "x", "shape": [2, 3, 224, 224], "dtype": "float32", "keyword": false}, ...],
     "preprocessing": {"interpolation": ..., "crop_pct": ..., "mean": [...], "std": [...]}}

Paddle -> torch swaps the sides: "torch" names the generated `modeling_torch.py` (torch, numpy
and the standard library only) and "paddle" the source, "inference:PATH" (an inference model) or
"paddle:module:function" (a Layer), with "program", the copy of the inference program the Paddle
twin runs (`program.json` or `program.pdmodel`); "input_dims" gives the program's input shape (-1
where any size goes) and "variables" the file mapping the twin's variables to the program's.

"torch": {"checkpoint_keys": {saved: own}} names the tensors of the torch model's saved files
(a Hugging Face save_pretrained folder's legacy names) by its state dict's keys. "inputs" says
how the twins are called (`models.inputs`: by position or keyword, integers with
their "range"); a folder without it takes one image batch by position. The torch twin is
`timm.create_model(NAME, pretrained=False, **model_args)`, a transformers class built from its
config (or a save_pretrained folder's) with `model_args` as config fields, the function called
with `**model_args`, or the generated module's factory; the Paddle twin the generated module's
factory, Paddle running the program, or the Layer's function. Files are named relative to the
folder. `write_manifest` and `install` write a folder, `read_folder` reads one into a `TwinPair`
(anything missing or malformed is a one-line PortedFolderError naming the folder), `load_module`
loads a generated module, `torch_factory` resolves a torch source.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import DestinationExists, InvalidArgument, PortedFolderError, UserError
from .factories import function_name, import_factory
from .inputs import InputSpec

FORMAT = "weightport-port/1"
MANIFEST = "weightport.json"
PADDLE_MODULE = "modeling_paddle.py"
TORCH_MODULE = "modeling_torch.py"
PROGRAM = "program"  # the copy of a ported inference program: program.json or program.pdmodel
VARIABLES = "variables.json"
INFERENCE = "inference:"  # the source prefix of a ported inference model
FACTORY = "create_model"
TABLE = "mapping.toml"
LAYOUT = "layout.json"
CONSTANTS = "constants.npz"
FAMILY = "ported"  # the family of every ported pair


# --- the torch twin's source ------------------------------------------------------------------


def torch_factory(source: str, model_args: Mapping[str, Any]) -> Callable[[], Any]:
    """The function building the torch model `source` names, "timm:NAME", "transformers:CLASS",
    "transformers:FOLDER" or "module:function", with `model_args`; nothing is imported until it is called."""
    kind, _, name = source.partition(":")
    if kind in ("timm", "transformers"):
        if not name:
            raise InvalidArgument("torch_source", source, f"names no {kind} model")
        return functools.partial(_timm_model if kind == "timm" else _transformers_model, name, dict(model_args))
    function_name(source, "torch_source")
    return functools.partial(_factory_model, source, dict(model_args))


def _timm_model(name: str, model_args: dict[str, Any]):
    try:
        import timm
    except ImportError as exc:
        raise UserError(f"the torch twin is timm's {name}, but timm cannot be imported: {exc}") from None
    if not timm.is_model(name):
        raise UserError(f"timm has no model {name!r} (timm {timm.__version__}; `timm.list_models('{name[:4]}*')` lists similar ones)")
    try:
        return timm.create_model(name, pretrained=False, **model_args)
    except TypeError as exc:
        raise UserError(f"timm cannot build {name!r} with {model_args}: {exc}") from None


def _transformers_model(name: str, model_args: dict[str, Any]):
    """A Hugging Face transformers model with random weights, from its class (`ViTModel`: the class's
    default config with `model_args` as config fields) or a save_pretrained folder (its config.json,
    `model_args` overriding fields; the weights are not read). Built with eager attention, plain
    torch code, where the config does not choose another; nothing is downloaded."""
    try:
        import transformers
    except ImportError as exc:
        raise UserError(f"the torch twin is transformers' {name}, but transformers cannot be imported: {exc}") from None
    args = {"attn_implementation": "eager", **model_args}
    try:
        if Path(name).is_dir():
            config = transformers.AutoConfig.from_pretrained(name, local_files_only=True, **args)
            architectures = getattr(config, "architectures", None) or []
            cls = getattr(transformers, architectures[0], None) if architectures else None
            if cls is None:
                raise UserError(f"{name}/config.json names no transformers class in `architectures` ({architectures})")
        else:
            cls = getattr(transformers, name, None)
            if not isinstance(cls, type) or not hasattr(cls, "config_class") or cls.config_class is None:
                raise UserError(f"transformers {transformers.__version__} has no model class {name!r} (a class such as "
                                "ViTForImageClassification, or a save_pretrained folder)")
            config = cls.config_class(**args)
        return cls(config)
    except (TypeError, ValueError, OSError) as exc:
        raise UserError(f"transformers cannot build {name!r} with {model_args}: {exc}") from None


def _factory_model(source: str, model_args: dict[str, Any]):
    factory = import_factory(source, "torch")
    try:
        return factory(**model_args)
    except TypeError as exc:
        raise UserError(f"{source} cannot be built with {model_args}: {exc}") from None


# --- writing a folder -------------------------------------------------------------------------


def write_manifest(folder: Path, *, name: str, sides: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str],
                   input_size: int, num_classes: int, preprocessing: Mapping[str, Any], **more: Any) -> Path:
    """Write the folder's weightport.json: `sides` holds each framework's section (the source side's
    gets `versions`), `more` any further entries (input_dims, variables)."""
    sections = {framework: dict(section, **({"versions": dict(versions)} if "source" in section else {}))
                for framework, section in sides.items()}
    manifest = {
        "format": FORMAT,
        "name": name,
        **sections,
        "table": TABLE,
        "layout": LAYOUT,
        "input_size": input_size,
        "num_classes": num_classes,
        "preprocessing": dict(preprocessing),
        **more,
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def staging_folder(out: Path, force: bool) -> Path:
    """An empty folder beside `out` to write a ported folder into, before `install` moves it there."""
    if out.exists() and not force:
        raise DestinationExists(out, "exists", "to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def install(staging: Path, out: Path) -> None:
    """Move the finished folder to `out`, replacing an existing one only after the new one is whole."""
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, previous / out.name)
        os.replace(staging, out)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.replace(staging, out)


# --- reading a folder -------------------------------------------------------------------------


def read_folder(folder: Path):
    """The `TwinPair` of a ported folder, from its weightport.json (see the module's docstring)."""
    from .pair import PORTED, TwinPair
    from .registry import Preprocessing

    def fail(problem: str):
        raise PortedFolderError(folder, problem)

    if not folder.is_dir():
        fail(f"no such folder (a ported folder holds {MANIFEST})")
    meta_path = folder / MANIFEST
    if not meta_path.is_file():
        fail(f"not a ported folder: it holds no {MANIFEST}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"{MANIFEST} cannot be read: {exc}")
    if not isinstance(meta, dict):
        fail(f"{MANIFEST} holds {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        fail(f"{MANIFEST} has format {meta.get('format')!r}; this weightport reads {FORMAT!r}")

    def field(section: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...):
        value = section.get(key, default)
        if value is ... or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            fail(f"{MANIFEST}: {where}{key} is {'missing' if value is ... else f'{value!r}'}; expected {_kind_name(kind)}")
        return value

    def named_file(text: str, what: str) -> Path:
        path = folder / text
        if not path.is_file():
            fail(f"{MANIFEST} names {what} {text!r}, which the folder does not hold")
        return path

    name = field(meta, "name", str, "")
    torch = field(meta, "torch", dict, "")
    paddle = field(meta, "paddle", dict, "")
    table = field(meta, "table", (str, type(None)), "", None)
    layout = field(meta, "layout", (str, type(None)), "", None)
    preprocessing = field(meta, "preprocessing", dict, "", {})
    unknown = set(preprocessing) - set(Preprocessing.__dataclass_fields__)
    if unknown:
        fail(f"{MANIFEST}: preprocessing has unknown keys {sorted(unknown)}")
    try:
        preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in preprocessing.items()})
    except TypeError as exc:
        fail(f"{MANIFEST}: preprocessing: {exc}")
    inputs = field(meta, "inputs", (list, type(None)), "", None)
    try:
        inputs = tuple(InputSpec.from_dict(item) for item in inputs) if inputs is not None else None
    except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
        fail(f"{MANIFEST}: inputs: {exc}")
    input_dims = field(meta, "input_dims", (list, type(None)), "", None)
    if input_dims is not None and not all(type(d) is int for d in input_dims):
        fail(f"{MANIFEST}: input_dims is {input_dims!r}; expected a list of integers")
    if "module" in torch:  # Paddle -> torch: the torch twin is generated
        module = named_file(field(torch, "module", str, "torch."), "the torch twin's module")
        factory_name = field(torch, "factory", str, "torch.", FACTORY)
        source = field(paddle, "source", str, "paddle.")
        program = named_file(field(paddle, "program", str, "paddle."), "the Paddle program")
        if source.startswith("paddle:"):  # a captured Layer: the Layer is the Paddle twin
            function_name(source.removeprefix("paddle:"), "paddle_source")
            paddle_twin = functools.partial(import_factory, source.removeprefix("paddle:"), "paddle")
        else:
            paddle_twin = functools.partial(_program_factory, program)
        factories = {"torch": functools.partial(_generated_factory, folder, module, factory_name), "paddle": paddle_twin}
        sources = {"torch": f"{module}:{factory_name}", "paddle": source}
        fixed_args: dict[str, Any] = {}
        checkpoint_keys = {}
        description = f"{source} <-> {module.name}, ported in {folder}"
    else:
        source = field(torch, "source", str, "torch.")
        fixed_args = field(torch, "model_args", dict, "torch.", {})
        checkpoint_keys = field(torch, "checkpoint_keys", dict, "torch.", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in checkpoint_keys.items()):
            fail(f"{MANIFEST}: torch.checkpoint_keys must map names to names")
        module = named_file(field(paddle, "module", str, "paddle."), "the Paddle twin's module")
        factory_name = field(paddle, "factory", str, "paddle.", FACTORY)
        try:
            build_torch = torch_factory(source, fixed_args)
        except InvalidArgument as exc:
            fail(f"{MANIFEST}: torch.source {source!r}: {exc.expected}")
        factories = {
            "torch": lambda: build_torch,
            "paddle": functools.partial(_generated_factory, folder, module, factory_name),
        }
        sources = {"torch": source, "paddle": f"{module}:{factory_name}"}
        description = f"{source} <-> {module.name}, ported in {folder}"
    return TwinPair(
        name or fail(f"{MANIFEST}: name is empty"),
        family=FAMILY,
        kind=PORTED,
        factories=factories,
        sources=sources,
        table=named_file(table, "the mapping table") if table is not None else None,
        manifest=named_file(layout, "the layout manifest") if layout is not None else None,
        input_size=field(meta, "input_size", int, "", 224),
        input_dims=tuple(input_dims) if input_dims is not None else None,
        inputs=inputs,
        checkpoint_keys=checkpoint_keys,
        num_classes=field(meta, "num_classes", int, "", 1000),
        preprocessing=preprocessing,
        description=description,
        fixed_args=fixed_args,
        folder=folder,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", int: "an integer", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _generated_factory(folder: Path, module_path: Path, factory_name: str) -> Callable[[], Any]:
    module = load_module(folder, module_path)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise PortedFolderError(folder, f"{module_path.name} defines no function {factory_name}()")
    return factory


def _program_factory(program: Path) -> Callable[[], Any]:
    from ..port.paddle_to_torch.reference import program_layer

    return functools.partial(program_layer, program)


def load_module(folder: Path, module_path: Path) -> ModuleType:
    """A ported folder's generated module, loaded once per process under a name of its own (from the
    file's resolved path), so that several ported folders can be used side by side. Paddle is imported
    quietly first where the module is a Paddle twin."""
    from ..frameworks import quiet_paddle_import

    if module_path.name != TORCH_MODULE:
        quiet_paddle_import()
    resolved = module_path.resolve()
    module_name = "weightport_ported_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        del sys.modules[module_name]
        raise PortedFolderError(folder, f"cannot load the generated twin {module_path.name}: {exc}") from None
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
