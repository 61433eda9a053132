"""`weightport map draft` and `map check`: the mapping tables of registered models, ported folders
and your own twins."""
from __future__ import annotations

import sys

import click

from ..errors import UserError
from . import options
from .errors import EXIT_GATE_FAILED


@click.group("map")
def map_group():
    """Draft and check mapping tables, for registered models, ported folders or your own twins."""


@map_group.command("draft")
@click.argument("model", required=False)
@options.twin_pair_options(with_mapping=False)
@options.input_size("Height and width of the batch traced through both twins (default: the model's, 224 for your own).")
def map_draft(model, torch_model, paddle_model, model_args, input_size):
    """Draft the mapping table of a twin pair and print it as TOML (redirect it into a file).

    Both twins run once on the same batch; the modules holding weights are paired in execution
    order by layer class and shapes, and the pairs become a few general rename rules, transposes
    on the Linear weights and the shared BatchNorm rules. Exits 1 when the draft leaves something
    unpaired or fails `map check`; the draft lists what in comments."""
    from ..tables.draft import draft_table

    pairs = options.twin_pairs((model,) if model else (), torch_model, paddle_model, None, table_required=False)
    if not pairs:
        raise UserError("name a registered model or a ported folder, or your twins with --torch-model and --paddle-model")
    draft = draft_table(pairs[0], input_size, **options.parse_model_args(model_args))
    click.echo(draft.text, nl=False)
    left = len(draft.unpaired) + len(draft.problems)
    click.echo(
        f"{pairs[0].name}: {draft.pairs} tensors in {draft.modules} modules paired"
        + (f"; {left} things to fix by hand, listed at the top of the draft" if left else "; the draft passes `map check`"),
        err=True,
    )
    if left:
        sys.exit(EXIT_GATE_FAILED)


@map_group.command("check")
@click.argument("model", required=False)
@options.twin_pair_options()
def map_check(model, torch_model, paddle_model, mapping, model_args):
    """Check a mapping table against both twins, without any checkpoint (exit 1 with a listing when wrong).

    Every key paired exactly once and back, transposes exactly on the Linear weights, shapes and
    dtypes agreeing. MODEL (a registered model or a ported folder) is checked against its own
    table, or against --mapping when given."""
    from ..tables.check import table_problems

    custom = bool(torch_model or paddle_model)  # MODEL may be checked against another table
    pairs = options.twin_pairs((model,) if model else (), torch_model, paddle_model, mapping if custom else None)
    if not pairs:
        raise UserError("name a registered model or a ported folder, or your twins with --torch-model, --paddle-model and --mapping")
    pair = pairs[0] if custom or not mapping else pairs[0].with_table(mapping)
    problems = table_problems(pair, **options.parse_model_args(model_args))
    where = pair.table_name
    if not problems:
        click.echo(f"{pair.name}: mapping table {where} fits both twins")
        return
    click.echo(f"{pair.name}: {len(problems)} problems with mapping table {where}:")
    for problem in problems:
        click.echo(f"  {problem}")
    sys.exit(EXIT_GATE_FAILED)

