"""Regenerate the layout manifests (each family's layouts/<model>.json) from the twins.

Usage: python scripts/update_layouts.py [MODEL ...]   (default: every registered model)
The test suite fails when a manifest and its twins disagree; run this after changing a twin.
"""
import sys

from weightport.models.pair import TwinPair
from weightport.models.registry import list_models
from weightport.tables.layouts import write_manifest


def main(names: list[str]) -> None:
    for name in names or list_models():
        print(write_manifest(TwinPair.registered(name)))


if __name__ == "__main__":
    main(sys.argv[1:])
