"""Library errors as the command line says them: the one place that knows which flag sets which
parameter. The library's errors carry the parameter, the value and the path as fields; here they
become one line naming the flags, printed on stderr with exit code 2."""
from __future__ import annotations

from typing import Any

from ..errors import ConflictingArguments, InvalidArgument, RefusedPickle, Remedy, UnknownModel, UserError, with_remedies

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2

# The API's parameter -> the flag that sets it, where the flag is not the parameter's name in kebab case.
FLAGS = {
    "torch_ckpt": "--torch",
    "paddle_ckpt": "--paddle",
    "file_format": "--format",
    "torch_factory": "--torch-model",
    "paddle_factory": "--paddle-model",
    "table": "--mapping",
    "model_kwargs": "--model-arg",
    "model_args": "--model-arg",
    "models": "MODEL",
    "torch_source": "SOURCE",  # port's argument
}


def flag(parameter: str) -> str:
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def flag_with_value(parameter: str, value: Any) -> str:
    """How a user passes `value` for `parameter` on the command line: `--force`, `--key state_dict`,
    `--model-arg num_classes=N`, `--input-size N` (an img_size given through the model's arguments)."""
    if isinstance(value, dict):
        return " ".join("--input-size N" if key == "img_size" and text == "N" else f"{flag(parameter)} {key}={text}"
                        for key, text in ((k, v if isinstance(v, str) else repr(v)) for k, v in value.items()))
    if value is True:
        return flag(parameter)
    return f"{flag(parameter)} {value}"


def remedy_text(remedy: Remedy) -> str:
    return f"pass {flag_with_value(remedy.parameter, remedy.value)} {remedy.effect}"


def message(exc: UserError) -> str:
    """The error as the command line says it."""
    if isinstance(exc, InvalidArgument):
        value = exc.value if isinstance(exc.value, (int, float)) and not isinstance(exc.value, bool) else repr(exc.value)
        text = f"{flag(exc.parameter)} {value}: {exc.expected}"
    elif isinstance(exc, ConflictingArguments):
        text = f"{' and '.join(flag(p) for p in exc.parameters)}: {exc.reason}"
    elif isinstance(exc, RefusedPickle):
        text = f"{exc.path}: {exc.refusal} (for a file from a source you trust, see --unsafe-pickle)"
    elif isinstance(exc, UnknownModel) and not exc.refused:
        text = exc.unknown
        if exc.timm_defines:
            text += (f"; timm defines it: `weightport port timm:{exc.name} --out {exc.name}` generates its Paddle twin, "
                     f"then use the folder {exc.name}/ in place of the name")
        elif not exc.close:
            text += "; `weightport list` shows the registered models"
    else:
        text = exc.message
    return with_remedies(text, [remedy_text(r) for r in exc.remedies])
