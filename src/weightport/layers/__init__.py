"""Reusable Paddle layers for the hand-written Paddle twins.

The torch twins reuse timm's layers (DropPath, trunc_normal_, ...); these are
their Paddle counterparts, written once so that every family shares them.
Importing this package imports paddle.
"""
