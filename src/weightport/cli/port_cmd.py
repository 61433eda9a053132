"""`weightport port`: generate the twin of a model nobody registered."""
from __future__ import annotations

import sys

import click

from . import options
from .errors import EXIT_GATE_FAILED
from .output import print_json


@click.command("port")
@click.argument("source", metavar="SOURCE")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the twin into.")
@click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
              help="Keyword argument for the torch model (repeatable), e.g. num_classes=10.")
@options.input_size("Input height and width the port starts from (default: the model's): a torch SOURCE is "
                    "also traced at 3/4 and 5/4 of it where torch's model runs there, so that its twin runs at "
                    "any size; a Paddle SOURCE is verified at it and at 3/4 of it.")
@click.option("--input-name", "input_names", multiple=True, metavar="NAME",
              help="A torch SOURCE's input, passed by keyword (repeatable, in order), e.g. pixel_values; default: "
                   "forward's first parameter by position, or a transformers model's main input.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="N,C,...",
              help="The shape of the input named at the same place (or of the first input), batch first, e.g. "
                   "1,3,8,112,112 for a video clip; the last two dimensions of a floating input of 4 or more are the input size.")
@click.option("--input-dtype", "input_dtypes", multiple=True, metavar="DTYPE[:LOW:HIGH]",
              help="The dtype of the input named at the same place (float32 by default), integers with their range, "
                   "e.g. int64:0:30522 for token ids.")
@click.option("--torch", "torch_ckpt", type=click.Path(dir_okay=False), help="Also convert this torch checkpoint into OUT/model.pdparams.")
@click.option("--paddle", "paddle_ckpt", type=click.Path(dir_okay=False),
              help="For a paddle:module:function SOURCE, also convert this training checkpoint (.pdparams) into OUT/model.pth.")
@click.option("--prefix", metavar="PREFIX.", help="With --paddle: the checkpoint's keys under PREFIX (e.g. Student. in a distilled one).")
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Gate of the verification that follows.")
@click.option("--no-verify", is_flag=True, help="Write the twin without verifying it.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (only once the new twin is complete).")
@options.json_flag
@options.unsafe_pickle
def port_cmd(source, out, model_args, input_size, input_names, input_shapes, input_dtypes, torch_ckpt, paddle_ckpt, prefix, tol,
             no_verify, force, as_json, unsafe_pickle):
    """Generate the twin of a model: code, mapping table, layout and manifest in OUT.

    SOURCE is a torch model, timm:NAME (any timm.create_model name), transformers:CLASS (its config's
    fields from --model-arg, random weights), transformers:FOLDER (a save_pretrained folder's config;
    its weights converted with --torch FOLDER/model.safetensors) or module:factory, whose Paddle
    twin is generated; or a Paddle model, an inference model (its folder or path prefix; its
    weights are converted into OUT/model.pth) or paddle:module:factory (a Layer), whose torch twin
    is generated and checked against Paddle itself at two input sizes. OUT then works wherever a
    model name does (convert, verify, map check). Exit 0 when the twin passes verification, 1 when
    it was written but fails the gate (the per-layer report says where), 2 when it cannot be
    ported (nothing is written; the message names the op or module)."""
    from ..port import port

    options.import_from_cwd()
    with options.trusting(unsafe_pickle, torch_ckpt, paddle_ckpt):
        inputs = options.parse_inputs(input_names, input_shapes, input_dtypes)
        result = port(source, out, model_args=options.parse_model_args(model_args), input_size=input_size, inputs=inputs,
                      torch_ckpt=torch_ckpt, paddle_ckpt=paddle_ckpt, prefix=prefix, force=force, verify=not no_verify, tol=tol)
    if as_json:
        print_json(result.as_dict())
    else:
        from ..report.console import console, print_layers, print_verify

        made = f"{result.layers} layers" if result.direction == "paddle->torch" else f"{result.classes} classes"
        sizes = ", ".join(str(s) for s in result.sizes) or str(result.input_size)
        console().print(f"{source} -> {result.folder} ({result.direction}): {made}, {result.lines} lines, "
                        f"{result.tensors} tensors ({result.parameters:,} parameters), verified at input size {sizes}, "
                        f"in {result.seconds:.1f} s; files: {', '.join(result.files)}")
        if result.dropped:
            shown = ", ".join(result.dropped[:5]) + (f" (and {len(result.dropped) - 5} more)" if len(result.dropped) > 5 else "")
            console().print(f"dropped {len(result.dropped)} tensors of the checkpoint the twin has no "
                            f"place for (its mapping table says why): {shown}")
        if result.verify is not None:
            if not result.verify.passed:
                print_layers(result.verify)
            print_verify(result.verify)
    if not result.passed:
        sys.exit(EXIT_GATE_FAILED)
