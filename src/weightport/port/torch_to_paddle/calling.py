"""How the torch model is called: its inputs (`models.inputs.InputSpec`), from what the user asked
for and what the model's forward and, for a Hugging Face model, its config say.

A Hugging Face model takes keyword inputs named as transformers' glossary names them
(`pixel_values`, `input_ids`, `attention_mask`, `token_type_ids`); their shapes and ranges come from
the config's generic fields (`num_channels`, `image_size`, `vocab_size`, `type_vocab_size`), never
from a model's name. Any other model takes one image batch by position, unless told otherwise.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import PortError
from ...models.inputs import DEFAULT_BATCH, FLOATING, InputSpec, image_input

TOKENS = 16  # the sequence length of token inputs, where nothing says otherwise


@dataclass(frozen=True)
class InputRequest:
    """An input as asked for (`--input-name`, `--input-shape`, `--input-dtype`): what is left out is
    found from the model. No name: forward's first parameter, by position."""

    name: str | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    low: int | None = None
    high: int | None = None


def is_transformers(model) -> bool:
    """A Hugging Face transformers model (a PreTrainedModel: a config and a main input name)."""
    return hasattr(model, "main_input_name") and hasattr(model, "config") and type(model).__module__.startswith("transformers.")


def resolve_inputs(model, requests: Sequence[InputRequest | InputSpec] | None, input_size: int | None,
                   default_size: int) -> list[InputSpec]:
    """The inputs the model is traced and verified with."""
    forward = inspect.signature(model.forward).parameters
    requests = list(requests or [])
    if not requests:
        if is_transformers(model):
            names = [model.main_input_name]
            if names[0] == "input_ids" and "attention_mask" in forward:
                names.append("attention_mask")
            requests = [InputRequest(name) for name in names]
        else:
            requests = [InputRequest()]
    specs = []
    for request in requests:
        spec = request if isinstance(request, InputSpec) else _resolve(model, forward, request, input_size or default_size)
        if spec.keyword and spec.name not in forward and not _takes_var_keyword(forward):
            raise PortError(f"the model's forward takes no input named {spec.name!r} (it takes {', '.join(forward)})")
        specs.append(spec)
    return specs


def _takes_var_keyword(parameters) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _resolve(model, forward, request: InputRequest, size: int) -> InputSpec:
    name, keyword = request.name, True
    if name is None:
        positional = [p for p in forward.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        name, keyword = (positional[0].name if positional else "input0"), False
    hf = _transformers_default(model, name, size) if is_transformers(model) else None
    if request.shape is not None:
        shape = (DEFAULT_BATCH, *request.shape[1:]) if request.shape else ()
    else:
        shape = hf.shape if hf is not None else image_input(size).shape
    dtype = request.dtype or (hf.dtype if hf is not None else "float32")
    low = request.low if request.low is not None else (hf.low if hf is not None else 0)
    high = request.high if request.high is not None else (hf.high if hf is not None and hf.dtype == dtype else 2)
    if dtype in FLOATING and len(shape) >= 4 and request.shape is None:
        shape = (*shape[:-2], size, size)
    return InputSpec(name, tuple(shape), dtype, low, high, keyword)


def _transformers_default(model, name: str, size: int) -> InputSpec | None:
    """A Hugging Face input by its glossary name, sized by the config."""
    config = model.config
    if name == "pixel_values":
        return image_input(size, name, int(getattr(config, "num_channels", 3)), keyword=True)
    if name == "input_ids":
        return InputSpec(name, (DEFAULT_BATCH, _sequence_length(config)), "int64", 0, int(config.vocab_size), True)
    if name == "attention_mask":
        return InputSpec(name, (DEFAULT_BATCH, _sequence_length(config)), "int64", 0, 2, True)
    if name == "token_type_ids":
        return InputSpec(name, (DEFAULT_BATCH, _sequence_length(config)), "int64", 0, int(getattr(config, "type_vocab_size", 2)), True)
    return None


def _sequence_length(config) -> int:
    return min(TOKENS, int(getattr(config, "max_position_embeddings", TOKENS)))


def default_size(model) -> int | None:
    """The image size a Hugging Face config gives (`image_size`), else None."""
    if not is_transformers(model):
        return None
    size = getattr(model.config, "image_size", None)
    if isinstance(size, (list, tuple)):
        size = size[-1]
    return int(size) if isinstance(size, int) else None


def checkpoint_keys(model) -> dict[str, str]:
    """For a Hugging Face model whose save_pretrained files name tensors otherwise than its state
    dict does (transformers renames legacy keys as it loads them, e.g. ViT's
    `encoder.layer.0.attention.attention.query` for `layers.0.attention.q_proj`): each saved key
    whose tensor is one of the model's own, with that own key. Found by transformers' own reversal
    of its renaming, so no model's names are written here; empty for other models."""
    if not is_transformers(model):
        return {}
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:
        return {}
    own = model.state_dict()
    by_storage = {(t.data_ptr(), tuple(t.shape)): k for k, t in own.items()}
    saved = revert_weight_conversion(model, dict(own))
    found = {k: by_storage.get((t.data_ptr(), tuple(t.shape))) for k, t in saved.items()}
    return {k: v for k, v in found.items() if v is not None and v != k}
