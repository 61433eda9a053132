"""`weightport convert`: a checkpoint of one twin into the other's, checked and written atomically."""
from __future__ import annotations

import os
import sys

import click

from ..errors import UserError
from . import options
from .output import Progress, print_json


def without_blas_threads() -> None:
    """Give numpy's BLAS a single thread in this process, unless the user chose a number.

    Conversion multiplies no matrices, yet OpenBLAS starts a thread per CPU when numpy loads, and
    these spin for a while waiting for work: on two CPUs they took 0.07 s of a 0.6 s conversion
    (fcvit_b48), competing with the writing. Effective only before numpy is first imported."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@click.command("convert")
@click.argument("paths", nargs=-1, metavar="[MODEL] SRC DST")
@click.option("--to", type=click.Choice(["torch", "paddle"]), help="Target framework (default: from DST's extension).")
@click.option("--key", help="Which state dict to convert when SRC holds several (e.g. state_dict_ema).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating tensors (default: keep).")
@options.input_size("Convert for twins built for this input height and width (resizes the tensors sized by the input).")
@click.option("--prefix", metavar="PREFIX.",
              help="Where the model sits in a bigger checkpoint, e.g. a detector's backbone.: taken from SRC's keys "
              "when they have it (only the keys under it), else put before every key written to DST.")
@click.option("--max-shard-size", metavar="SIZE",
              help="Write DST as a folder of shards of at most SIZE each (e.g. 5GB, decimal units as Hugging Face "
              "counts; 2GiB binary). A DST ending in / or an existing folder is a folder too (5GB shards).")
@click.option("--format", "file_format", type=click.Choice(["pdparams", "safetensors", "bin"]),
              help="The shards' format in a folder DST (default: pdparams for Paddle, safetensors for torch).")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists (for a folder: replace the checkpoint it holds).")
@options.json_flag
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
@options.unsafe_pickle
@options.twin_pair_options()
def convert_cmd(paths, to, key, dtype, input_size, prefix, max_shard_size, file_format, force, as_json, quiet, unsafe_pickle,
                torch_model, paddle_model, mapping, model_args):
    """Convert checkpoint SRC of MODEL into DST (direction from the extensions, or --to).

    SRC is a file, or a folder of shards (Hugging Face's or Paddle's) or its index file; DST a
    file, or a folder of shards written whole or not at all.

    MODEL is a registered model's name or a ported folder. For your own twins, leave out MODEL
    and name their factories and table instead:

    \b
    weightport convert SRC DST --torch-model mynet:torch_net \\
        --paddle-model mynet:paddle_net --mapping mynet.toml"""
    without_blas_threads()
    from ..conversion import convert

    custom = bool(torch_model or paddle_model)
    if len(paths) != (2 if custom else 3):
        raise UserError("expected MODEL SRC DST, or SRC DST with --torch-model/--paddle-model/--mapping")
    src, dst = paths[-2:]
    (model,) = options.twin_pairs(paths[:-2], torch_model, paddle_model, mapping)

    with options.trusting(unsafe_pickle, src), Progress(enabled=not quiet and not as_json and sys.stdout.isatty()) as bar:
        summary = convert(
            model, src, dst, to=to, key=key, dtype=dtype, force=force, prefix=prefix, input_size=input_size,
            max_shard_size=max_shard_size, file_format=file_format, model_kwargs=options.parse_model_args(model_args),
            on_start=bar and bar.start, on_tensor=bar and bar.advance,
        )
    if as_json:
        print_json(summary.as_dict())
    elif not quiet:
        from ..report.console import print_conversion

        print_conversion(summary)
