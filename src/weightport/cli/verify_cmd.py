"""`weightport verify`: both twins on identical batches, the error gated for CI."""
from __future__ import annotations

import json
import sys

import click

from . import options
from .errors import EXIT_GATE_FAILED
from .output import print_json


@click.command("verify")
@click.argument("models", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Verify every registered model.")
@click.option("--shard", metavar="K/N", help="Verify every Nth of the models, from the Kth on (split a long run across CI jobs).")
@click.option("--torch", "torch_ckpt", type=click.Path(), help="Torch checkpoint to check (converted in memory if --paddle is absent).")
@click.option("--paddle", "paddle_ckpt", type=click.Path(), help=".pdparams to check (converted back in memory if --torch is absent).")
@click.option("--key", help="Which state dict of the torch checkpoint (e.g. state_dict_ema).")
@click.option("--tol", type=float, default=1e-4, show_default=True,
              help="Gate: largest error allowed, as a fraction of each output's largest magnitude (the same at every scale).")
@click.option("--atol", type=float, help="Also gate on the absolute error: largest allowed, whatever the outputs' scale.")
@click.option("--batch-size", type=int, default=2, show_default=True)
@click.option("--batches", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and batches.")
@options.input_size("Input height and width (default: the model's); twins whose weights depend on it are built for it.")
@click.option("--images", type=click.Path(), help="Folder of images fed instead of random batches, preprocessed per model.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--floor", is_flag=True, help="Also run torch in float64 and report the error against fp32 rounding.")
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the generated checkpoints here (random-weight runs).")
@options.json_flag
@click.option("--json-file", type=click.Path(dir_okay=False), help="Also write the full report as JSON to this file.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write a JUnit XML report (one testcase per model).")
@click.option("--layers", is_flag=True, help="Compare every module's output on the first batch and name the first whose error jumps.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the per-layer report (computed as for --layers) to this self-contained HTML page.")
@click.option("--train", is_flag=True,
              help="Also check training on the first batch: loss, every gradient, running statistics, SGD and AdamW steps.")
@click.option("--train-tol", type=float, default=1e-5, show_default=True,
              help="Gate of --train (float64 twins): largest error allowed, as a fraction of each tensor's largest value.")
@options.unsafe_pickle
@options.twin_pair_options()
def verify_cmd(models, all_models, shard, torch_ckpt, paddle_ckpt, key, tol, atol, batch_size, batches, seed, input_size, images,
               device, floor, keep, as_json, json_file, junit_path, layers, html_path, train, train_tol, unsafe_pickle,
               torch_model, paddle_model, mapping, model_args):
    """Run both twins on identical batches and gate on the error (exit 1 when any model fails).

    Each MODEL is a registered model's name or a ported folder. Without --torch/--paddle, each
    model gets deterministic non-trivial random weights that go through the real converter. With
    --train, both twins also run in training mode (with --layers: each module's output gradient)."""
    from ..formats.atomic import write_text
    from ..models.registry import list_models
    from ..parity.verification import VerifyOptions, verify

    if all_models:
        if models or torch_model or paddle_model:
            raise click.UsageError("name models or pass --all, not both")
        models = list_models()
    pairs = options.twin_pairs(models, torch_model, paddle_model, mapping)
    if shard:
        pairs = pairs[_shard(shard)]
    if not pairs:
        raise click.UsageError("name at least one model, or pass --all")
    settings = VerifyOptions(
        torch_ckpt=torch_ckpt, paddle_ckpt=paddle_ckpt, key=key, batch_size=batch_size, batches=batches, seed=seed,
        input_size=input_size, images=images, device=device, floor=floor, tol=tol, atol=atol,
        model_kwargs=options.parse_model_args(model_args), keep=keep, layers=layers or bool(html_path), train_tol=train_tol,
    )
    # --all --train checks training parity where the twins claim it; the others (named one by one,
    # they are checked and fail) get the eval gate, and the reason is printed.
    eval_only = [pair for pair in pairs if all_models and train and pair.training_differs]
    trained = [pair for pair in pairs if pair not in eval_only]
    with options.trusting(unsafe_pickle, torch_ckpt, paddle_ckpt):
        result = verify(trained, settings, train=train)
        if eval_only:
            result.models += verify(eval_only, settings).models
    if as_json:
        print_json(result.as_dict())
    else:
        from ..report.console import console, print_layers, print_training, print_verify

        if layers:
            print_layers(result)
        print_verify(result)
        if train:
            print_training(result, layers)
            for pair in eval_only:
                console().print(f"[yellow]{pair.name}: training not compared (eval gate only): {pair.training_differs}[/]")
    if json_file:
        write_text(json_file, json.dumps(result.as_dict(), indent=2) + "\n")
    if junit_path:
        from ..report.junit import junit_xml

        write_text(junit_path, junit_xml(result))
    if html_path:
        from ..report.html import html_page

        write_text(html_path, html_page(result))
    if not result.passed:
        sys.exit(EXIT_GATE_FAILED)


def _shard(text: str) -> slice:
    """The models of shard K/N: every Nth, from the Kth on."""
    start, _, count = text.partition("/")
    if not (start.isdigit() and count.isdigit() and 1 <= int(start) <= int(count)):
        raise click.BadParameter(f"{text!r}: write K/N with 1 <= K <= N, e.g. 1/2", param_hint="--shard")
    return slice(int(start) - 1, None, int(count))
