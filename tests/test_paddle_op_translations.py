"""Each Paddle op the Paddle -> torch port translates, checked numerically on its own.

A tiny Layer using the op is exported by Paddle itself (paddle.jit.save of paddle.jit.to_static,
with dynamic input sizes) as a PIR program and, where the op exists there, as a legacy ProgramDesc;
Paddle runs the exported program at two input sizes; the port reads the program, writes its torch
twin, runs it with the program's parameters and must agree with Paddle's outputs to 1e-5 (relative to
the outputs' size). Ops Paddle 3's API no longer writes into a legacy program (`exp`, `matmul_v2`,
an elementwise op's `axis`...) are written there by hand, as Paddle 2 wrote them (`op` below).
Exporting is the slow part: all cases of a form are written, and run by Paddle, by one subprocess
per test session, the two forms side by side (shared by pytest-xdist workers through a lock).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from weightport.errors import PortError
from weightport.formats import paddle_inference
from weightport.port.paddle_to_torch.emit import Emitter
from weightport.port.paddle_to_torch.program import read_graph

IMAGE = ((1, 3, 8, 10), (2, 3, 13, 7))  # N, C, H, W: every size but C differs between the two runs
IMAGE4 = ((1, 4, 8, 10), (2, 4, 13, 7))
SEQUENCE = ((1, 5, 8), (2, 7, 8))  # N, L, C


@dataclass(frozen=True)
class Case:
    """`forward`: the body of the Layer's forward (a bare expression is returned), over its inputs
    x, y, z; `layers`: its sublayers (name -> constructor); `inputs`: each input's shape in the first
    and in the second run (a size that differs between them is dynamic in the exported program)."""

    forward: str
    inputs: tuple = (IMAGE,)
    layers: dict = field(default_factory=dict)
    forms: tuple = ("pir", "legacy")
    positive: bool = False  # inputs drawn from [0.5, 2) rather than N(0, 1)
    legacy: str | None = None  # the forward of the legacy export, where Paddle 3's API writes no legacy op


def _pool(code: str, inputs=(IMAGE,)) -> Case:
    return Case(code, inputs)


def _conv(constructor: str, inputs=(IMAGE,)) -> Case:
    return Case("self.conv(x)", inputs, layers={"conv": constructor})


CASES: dict[str, Case] = {
    # --- layers holding parameters ---------------------------------------------------------------
    "conv2d": _conv("nn.Conv2D(3, 8, 3, stride=2, padding=1)"),
    "conv2d_dilated_no_bias": _conv("nn.Conv2D(3, 8, 3, padding=2, dilation=2, bias_attr=False)"),
    "conv2d_groups": _conv("nn.Conv2D(4, 6, (3, 1), padding=(1, 0), groups=2)", (IMAGE4,)),
    "conv2d_asymmetric_padding": _conv("nn.Conv2D(3, 4, 3, padding=[0, 1, 1, 2])"),
    "conv2d_same": _conv("nn.Conv2D(3, 4, 3, stride=2, padding='SAME')"),
    "conv2d_valid": _conv("nn.Conv2D(3, 4, (3, 2), stride=(2, 1), padding='VALID')"),
    "depthwise_conv2d": _conv("nn.Conv2D(4, 4, 3, padding=1, groups=4)", (IMAGE4,)),
    "depthwise_conv2d_multiplier": _conv("nn.Conv2D(4, 8, 3, stride=2, groups=4, bias_attr=False)", (IMAGE4,)),
    "conv2d_transpose": _conv("nn.Conv2DTranspose(4, 6, 3, stride=2, padding=1, output_padding=1)", (IMAGE4,)),
    "conv2d_transpose_groups": _conv("nn.Conv2DTranspose(4, 6, 3, groups=2, dilation=2)", (IMAGE4,)),
    "conv2d_transpose_depthwise": _conv("nn.Conv2DTranspose(4, 4, 2, stride=2, groups=4)", (IMAGE4,)),
    "conv2d_transpose_asymmetric": _conv("nn.Conv2DTranspose(4, 3, 3, stride=2, padding=[0, 1, 1, 2])", (IMAGE4,)),
    "conv2d_transpose_output_size": Case(
        "self.conv(x, output_size=y.shape[2:])", (IMAGE4, ((1, 3, 16, 20), (2, 3, 26, 14))),
        layers={"conv": "nn.Conv2DTranspose(4, 3, 3, stride=2, padding=1)"}),
    "conv2d_computed_weight": Case("F.conv2d(x, self.w * 2, self.b, stride=2, padding=[1, 0, 0, 1])",
                                   layers={"w": "self.create_parameter([4, 3, 3, 3])", "b": "self.create_parameter([4])"}),
    "conv2d_transpose_computed_weight": Case("F.conv2d_transpose(x, self.w * 2, None, stride=2, padding=[0, 1, 1, 0])",
                                             layers={"w": "self.create_parameter([3, 2, 3, 3])"}),
    "batch_norm": Case("self.bn(x)", layers={"bn": "nn.BatchNorm2D(3)"}),
    "batch_norm_1d": Case("self.bn(x)", (((1, 8, 5), (2, 8, 7)),), layers={"bn": "nn.BatchNorm1D(8)"}),
    "batch_norm_features": Case("self.bn(x)", (((1, 8), (3, 8)),), layers={"bn": "nn.BatchNorm1D(8)"}),
    "layer_norm": Case("self.norm(x)", (SEQUENCE,), layers={"norm": "nn.LayerNorm(8)"}),
    "layer_norm_two_axes": Case("self.norm(x)", (((1, 5, 8), (3, 5, 8)),), layers={"norm": "nn.LayerNorm([5, 8])"}),
    "layer_norm_computed_weight": Case("F.layer_norm(x, [5, 8], self.w * 2, self.b)", (((1, 5, 8), (3, 5, 8)),),
                                       layers={"w": "self.create_parameter([40])", "b": "self.create_parameter([40])"}),
    "layer_norm_plain": Case("self.norm(x)", (SEQUENCE,), layers={"norm": "nn.LayerNorm(8, weight_attr=False, bias_attr=False)"}),
    "linear": Case("self.fc(x)", (SEQUENCE,), layers={"fc": "nn.Linear(8, 6)"}),
    "linear_no_bias": Case("self.fc(x)", (SEQUENCE,), layers={"fc": "nn.Linear(8, 6, bias_attr=False)"}),
    "prelu": Case("self.act(x)", layers={"act": "nn.PReLU(3)"}),
    "group_norm": Case("self.norm(x)", (IMAGE4,), layers={"norm": "nn.GroupNorm(2, 4)"}),
    "instance_norm": Case("self.norm(x)", (IMAGE4,), layers={"norm": "nn.InstanceNorm2D(4)"}),
    # --- pooling ---------------------------------------------------------------------------------
    "max_pool": _pool("F.max_pool2d(x, 3, 2, 1)"),
    "max_pool_ceil": _pool("F.max_pool2d(x, 3, 2, 1, ceil_mode=True)"),
    "max_pool_ceil_unpadded": _pool("F.max_pool2d(x, 2, 2, ceil_mode=True)"),
    "max_pool_asymmetric": _pool("F.max_pool2d(x, 3, 2, padding=[0, 1, 1, 2])"),
    "max_pool_same": _pool("F.max_pool2d(x, 3, 2, padding='SAME')"),
    "avg_pool": _pool("F.avg_pool2d(x, 3, 2, 1)"),
    "avg_pool_inclusive": _pool("F.avg_pool2d(x, 3, 2, 1, exclusive=False)"),
    "avg_pool_ceil": _pool("F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)"),
    "avg_pool_ceil_inclusive": _pool("F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, exclusive=False)"),
    "avg_pool_asymmetric": _pool("F.avg_pool2d(x, (3, 2), 2, padding=[0, 1, 1, 1])"),
    "avg_pool_asymmetric_inclusive": _pool("F.avg_pool2d(x, 3, (2, 1), padding=[1, 2, 0, 1], exclusive=False)"),
    "avg_pool_same": _pool("F.avg_pool2d(x, 3, 2, padding='SAME')"),
    "max_pool_ceil_last_window_in_padding": _pool("F.max_pool2d(x, 2, 2, 1, ceil_mode=True)"),
    "avg_pool_ceil_last_window_in_padding": _pool("F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, exclusive=False)"),
    "max_pool_with_mask": _pool("F.max_pool2d(x, 3, 2, 1, return_mask=True)[0]"),
    "adaptive_avg_pool": _pool("F.adaptive_avg_pool2d(x, (2, 3))"),
    "adaptive_max_pool": _pool("F.adaptive_max_pool2d(x, (2, 3))"),
    "global_avg_pool": _pool("F.adaptive_avg_pool2d(x, 1)"),
    "global_max_pool": _pool("F.adaptive_max_pool2d(x, 1)"),
    # --- activations and other elementwise functions of one tensor -------------------------------
    "relu": Case("F.relu(x)"),
    "relu6": Case("F.relu6(x * 4)"),
    "sigmoid": Case("F.sigmoid(x)", legacy="op('sigmoid', x)"),
    "tanh": Case("paddle.tanh(x)", legacy="op('tanh', x)"),
    "hardswish": Case("F.hardswish(x * 4)"),
    "hardsigmoid": Case("F.hardsigmoid(x * 4)"),
    "hardsigmoid_slope": Case("F.hardsigmoid(x * 4, slope=0.2, offset=0.5)"),
    "swish": Case("F.swish(x)"),
    "silu": Case("F.silu(x)"),
    "gelu": Case("F.gelu(x)", legacy="op('gelu', x, approximate=False)"),
    "gelu_tanh": Case("F.gelu(x, approximate=True)", legacy="op('gelu', x, approximate=True)"),
    "leaky_relu": Case("F.leaky_relu(x, 0.1)"),
    "elu": Case("F.elu(x, 0.5)"),
    "mish": Case("F.mish(x)"),
    "softplus": Case("F.softplus(x, 2.0, 3.0)", legacy="op('softplus', x, beta=2.0, threshold=3.0)"),
    "exp": Case("paddle.exp(x)", legacy="op('exp', x)"),
    "sqrt": Case("paddle.sqrt(x)", positive=True, legacy="op('sqrt', x)"),
    "rsqrt": Case("paddle.rsqrt(x)", positive=True, legacy="op('rsqrt', x)"),
    "log": Case("paddle.log(x)", positive=True, legacy="op('log', x)"),
    "abs": Case("paddle.abs(x)", legacy="op('abs', x)"),
    "square": Case("paddle.square(x)"),
    "floor": Case("paddle.floor(x * 3)", legacy="op('floor', x * 3)"),
    "erf": Case("paddle.erf(x)"),
    "reciprocal": Case("paddle.reciprocal(x)", positive=True),
    "sin_cos": Case("paddle.sin(x) + paddle.cos(x)", legacy="op('sin', x) + op('cos', x)"),
    "pow": Case("paddle.pow(x, 3.0)"),
    "pow_fraction": Case("x ** 0.5", positive=True),
    "softmax": Case("F.softmax(x, axis=-1)"),
    "softmax_channels": Case("F.softmax(x, axis=1)"),
    "log_softmax": Case("F.log_softmax(x, axis=1)"),
    "dropout": Case("self.drop(x)", layers={"drop": "nn.Dropout(0.3)"}),
    "dropout_downscale": Case("F.dropout(x, 0.3, training=False, mode='downscale_in_infer')"),
    "assign": Case("paddle.assign(x) + 1"),
    "clip": Case("paddle.clip(x, -0.5, 0.7)"),
    "clip_min": Case("paddle.clip(x, min=0.2)"),
    "scale": Case("x * 2.5 + 1.0"),
    "scale_bias_before": Case("paddle.scale(x, 2.0, 1.0, bias_after_scale=False)"),
    "scale_tensor": Case("paddle.scale(x, paddle.mean(x).reshape([1]), 0.5)"),
    "scale_of_constant": Case("x + paddle.scale(paddle.full([1], 3.0), 2.0, 0.5, bias_after_scale=False)"),
    "cast": Case("(x * 4).astype('int32').astype('float32')"),
    "cast_int64": Case("(x * 4).astype('int64')"),
    # --- two tensors -----------------------------------------------------------------------------
    "add": Case("x + y", (IMAGE, IMAGE)),
    "subtract_broadcast": Case("x - y", (IMAGE, ((1, 3, 1, 1), (2, 3, 1, 1)))),
    "multiply_parameter": Case("x * self.w", layers={"w": "self.create_parameter([3, 1, 1])"}),
    "divide": Case("x / y", (IMAGE, IMAGE), positive=True),
    "elementwise_pow": Case("paddle.pow(x, y)", (IMAGE, IMAGE), positive=True),
    "maximum": Case("paddle.maximum(x, y)", (IMAGE, IMAGE), legacy="op('elementwise_max', x, y, axis=-1)"),
    "minimum": Case("paddle.minimum(x, y)", (IMAGE, IMAGE), legacy="op('elementwise_min', x, y, axis=-1)"),
    "legacy_axis_add": Case("op('elementwise_add', x, self.b, axis=1)", layers={"b": "self.create_parameter([3])"}, forms=("legacy",)),
    "legacy_axis_sub": Case("op('elementwise_sub', x, self.b, axis=1)", layers={"b": "self.create_parameter([3, 8])"},
                            inputs=(((1, 3, 8, 10), (2, 3, 8, 7)),), forms=("legacy",)),
    "legacy_axis_mul": Case("op('elementwise_mul', x, self.b, axis=0)", layers={"b": "self.create_parameter([2])"},
                            inputs=(((2, 3, 8, 10), (2, 3, 13, 7)),), forms=("legacy",)),
    "legacy_axis_div": Case("op('elementwise_div', x, y, axis=0)", (IMAGE, ((1, 3), (2, 3))), forms=("legacy",), positive=True),
    "legacy_axis_pow": Case("op('elementwise_pow', x, self.b, axis=1)", layers={"b": "self.create_parameter([3])"},
                            forms=("legacy",), positive=True),
    "matmul": Case("mm(x, y)", (SEQUENCE, ((1, 8, 6), (2, 8, 6)))),
    "matmul_transpose_y": Case("mm(x, y, transpose_y=True)", (SEQUENCE, ((1, 6, 8), (2, 6, 8)))),
    "matmul_transpose_x": Case("mm(x, y, transpose_x=True)", (((1, 8, 5), (2, 8, 7)), ((1, 8, 6), (2, 8, 6)))),
    "matmul_parameter": Case("mm(x, self.w, transpose_y=True)", (SEQUENCE,), layers={"w": "self.create_parameter([6, 8])"}),
    "matmul_broadcast": Case("mm(x, y)", (((1, 2, 5, 8), (2, 2, 7, 8)), ((1, 8, 6), (2, 8, 6)))),
    "legacy_matmul_alpha": Case("op('matmul', x, y, transpose_X=False, transpose_Y=True, alpha=0.5)",
                                (SEQUENCE, ((1, 6, 8), (2, 6, 8))), forms=("legacy",)),
    # --- resizing --------------------------------------------------------------------------------
    "nearest_scale": Case("F.interpolate(x, scale_factor=2, mode='nearest')"),
    "nearest_scale_fraction": Case("F.interpolate(x, scale_factor=1.5, mode='nearest')"),
    "nearest_size": Case("F.interpolate(x, size=[5, 7], mode='nearest')"),
    "nearest_like": Case("F.interpolate(x, size=y.shape[2:], mode='nearest')", (IMAGE, ((1, 2, 17, 19), (2, 2, 9, 15)))),
    "bilinear_scale": Case("F.interpolate(x, scale_factor=2, mode='bilinear')"),
    "bilinear_scale_fraction": Case("F.interpolate(x, scale_factor=0.6, mode='bilinear')"),
    "bilinear_size": Case("F.interpolate(x, size=[5, 12], mode='bilinear')"),
    "bilinear_align_corners": Case("F.interpolate(x, size=[11, 9], mode='bilinear', align_corners=True)"),
    "bilinear_align_corners_scale": Case("F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)"),
    "bilinear_align_mode_1": Case("F.interpolate(x, scale_factor=2, mode='bilinear', align_mode=1)"),
    "bilinear_align_mode_1_fraction": Case("F.interpolate(x, scale_factor=1.5, mode='bilinear', align_mode=1)"),
    "bilinear_align_mode_1_size": Case("F.interpolate(x, size=[11, 4], mode='bilinear', align_mode=1)"),
    "bilinear_like": Case("F.interpolate(x, size=y.shape[2:], mode='bilinear')", (IMAGE, ((1, 2, 17, 19), (2, 2, 9, 15)))),
    "bilinear_like_align_corners": Case("F.interpolate(x, size=y.shape[2:], mode='bilinear', align_corners=True)",
                                        (IMAGE, ((1, 2, 17, 19), (2, 2, 9, 15)))),
    "upsample": Case("self.up(x)", layers={"up": "nn.Upsample(scale_factor=2, mode='bilinear')"}),
    # --- shapes ----------------------------------------------------------------------------------
    "reshape": Case("paddle.reshape(x, [0, -1])"),
    "reshape_zeros": Case("paddle.reshape(x, [0, 0, -1])"),
    "reshape_computed": Case("paddle.reshape(x, [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]])"),
    "reshape_computed_minus_one": Case("paddle.reshape(x, [-1, x.shape[3]])"),
    "transpose": Case("x.transpose([0, 2, 3, 1])"),
    "flatten": Case("paddle.flatten(x, 1)"),
    "flatten_middle": Case("paddle.flatten(x, 1, 2)"),
    "squeeze": Case("paddle.squeeze(x, axis=2)", (((1, 3, 1, 10), (2, 3, 1, 7)),)),
    "squeeze_two": Case("paddle.squeeze(x, axis=[1, 3])", (((1, 1, 8, 1), (2, 1, 5, 1)),)),
    "unsqueeze": Case("paddle.unsqueeze(x, [1, 3])"),
    "unsqueeze_last": Case("paddle.unsqueeze(x, -1)"),
    "slice": Case("x[:, 1:3, 2:-1]"),
    "slice_decrease": Case("x[:, 0]"),
    "slice_negative": Case("x[..., -3:]"),
    "slice_computed": Case("x[:, :, : x.shape[2] // 2]"),
    "slice_computed_start": Case("x[:, :, x.shape[2] - 3 :, 1 : x.shape[3]]"),
    "strided_slice": Case("x[:, :, ::2, 1::3]"),
    "strided_slice_reversed": Case("x[:, ::-1, ::-2]"),
    "shape": Case("paddle.shape(x)"),
    "shape_arithmetic": Case("x * (x.shape[2] * x.shape[3])"),
    "full": Case("x + paddle.full([1, 3, 1, 1], 0.5)"),
    "full_computed": Case("paddle.full([x.shape[0], x.shape[3]], 2.0)"),
    "full_like": Case("paddle.full_like(x, 3.0) + paddle.zeros_like(x) + paddle.ones_like(x)"),
    "concat": Case("paddle.concat([x, y, x], axis=1)", (IMAGE, ((1, 2, 8, 10), (2, 2, 13, 7)))),
    "concat_last": Case("paddle.concat([x, y], axis=-1)", (SEQUENCE, SEQUENCE)),
    "split": Case("paddle.split(x, 3, axis=1)"),
    "split_sections": Case("paddle.split(x, [1, 3], axis=1)", (IMAGE4,)),
    "split_sections_inferred": Case("paddle.split(x, [1, -1], axis=-1)", (((1, 4, 8, 5), (2, 4, 13, 5)),)),
    "chunk_then_add": Case("sum(paddle.chunk(x, 2, axis=1))", (IMAGE4,)),
    "unbind": Case("paddle.unbind(x, axis=1)"),
    "stack": Case("paddle.stack([x, y], axis=1)", (IMAGE, IMAGE)),
    "mean": Case("paddle.mean(x, axis=[2, 3], keepdim=True)"),
    "mean_all": Case("paddle.mean(x)"),
    "mean_last": Case("x.mean(axis=-1)"),
    "sum": Case("paddle.sum(x, axis=1)", legacy="op('reduce_sum', x, dim=[1], keep_dim=False, reduce_all=False)"),
    "sum_all": Case("paddle.sum(x)", legacy="op('reduce_sum', x, dim=[], keep_dim=False, reduce_all=True)"),
    "max": Case("paddle.max(x, axis=[1, -1], keepdim=True)"),
    "min": Case("paddle.min(x, axis=2)"),
    "prod": Case("paddle.prod(x, axis=1)"),
    "argmax": Case("paddle.argmax(x, axis=1)",
                   legacy="op('arg_max', x, dtype='int64', axis=1, keepdims=False, flatten=False, dtype_=3)"),
    "argmin": Case("paddle.argmin(x, axis=-1, keepdim=True, dtype='int32')",
                   legacy="op('arg_min', x, dtype='int32', axis=-1, keepdims=True, flatten=False, dtype_=2)"),
    "pad_constant": Case("F.pad(x, [1, 2, 0, 3], value=0.5)"),
    "pad_reflect": Case("F.pad(x, [1, 2, 0, 3], mode='reflect')"),
    "pad_replicate": Case("F.pad(x, [2, 0, 1, 1], mode='replicate')"),
    "pad_circular": Case("F.pad(x, [1, 1, 2, 0], mode='circular')"),
    "pad_layer": Case("self.pad(x)", layers={"pad": "nn.Pad2D([1, 0, 2, 1])"}),
    "pad_all_axes": Case("F.pad(x, [0, 0, 1, 0, 2, 1, 0, 3], value=-1.5)"),
    "arange": Case("x + paddle.arange(x.shape[-1], dtype='float32')"),
    "arange_step": Case("x + paddle.arange(1, x.shape[-1] * 2 + 1, 2, dtype='float32')"),
    "expand": Case("paddle.expand(y, x.shape) + x", (IMAGE, ((1, 3, 1, 1), (2, 3, 1, 1)))),
    "expand_as": Case("paddle.expand_as(y, x) * x", (IMAGE, ((1, 1, 8, 1), (2, 1, 13, 1))), forms=("pir",)),
    "tile": Case("paddle.tile(x, [1, 2, 1, 3])"),
    "where": Case("paddle.where(x > y, x, y * 2)", (IMAGE, IMAGE)),
    "logical": Case("paddle.where(paddle.logical_or(paddle.logical_and(x < y, x != y), paddle.logical_not(x <= 0.5)), x, y)",
                    (IMAGE, IMAGE), legacy="paddle.where(op('logical_or', op('logical_and', x < y, x != y, dtype='bool'), "
                                           "op('logical_not', x <= 0.5, dtype='bool'), dtype='bool'), x, y)"),
    "remainder": Case("paddle.remainder(x * 3, y)", (IMAGE, IMAGE), positive=True),
    # --- blocks of PaddleOCR models --------------------------------------------------------------
    "svtr_attention": Case(
        """qkv = self.qkv(x).reshape((0, -1, 3, 2, 4)).transpose((2, 0, 3, 1, 4))
        q, k, v = qkv[0] * 0.5, qkv[1], qkv[2]
        attn = F.softmax(mm(q, k.transpose((0, 1, 3, 2))), axis=-1)
        return self.proj(mm(attn, v).transpose((0, 2, 1, 3)).reshape((0, -1, 8)))""",
        (SEQUENCE,), layers={"qkv": "nn.Linear(8, 24)", "proj": "nn.Linear(8, 8)"}),
    "svtr_attention_computed": Case(
        """n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, n, 3, 2, c // 2]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv.unbind(0)
        attn = F.softmax(mm(q, k, transpose_y=True) * (c // 2) ** -0.5, axis=-1)
        return self.proj(mm(attn, v).transpose([0, 2, 1, 3]).reshape([-1, n, c]))""",
        (SEQUENCE,), layers={"qkv": "nn.Linear(8, 24)", "proj": "nn.Linear(8, 8)"}),
    "im2seq": Case("x.squeeze(axis=2).transpose([0, 2, 1])", (((1, 3, 1, 10), (2, 3, 1, 7)),)),
    "squeeze_excite": Case(
        "x * F.hardsigmoid(self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1)))), slope=0.2, offset=0.5)",
        (IMAGE4,), layers={"down": "nn.Conv2D(4, 2, 1)", "up": "nn.Conv2D(2, 4, 1)"}),
    "db_head": Case(
        "F.sigmoid(self.up2(F.relu(self.bn(self.up1(F.relu(self.conv(x)))))))", (IMAGE4,),
        legacy="op('sigmoid', self.up2(F.relu(self.bn(self.up1(F.relu(self.conv(x)))))))",
        layers={"conv": "nn.Conv2D(4, 4, 3, padding=1, bias_attr=False)", "up1": "nn.Conv2DTranspose(4, 4, 2, 2)",
                "bn": "nn.BatchNorm2D(4)", "up2": "nn.Conv2DTranspose(4, 1, 2, 2)"}),
    "channel_shuffle": Case(
        """b, c, h, w = x.shape
        return x.reshape([b, 2, c // 2, h, w]).transpose([0, 2, 1, 3, 4]).reshape([b, c, h, w])""", (IMAGE4,)),
    "fpn_upsample_add": Case("x + F.upsample(y, scale_factor=2, mode='nearest')",
                             (((1, 3, 8, 10), (2, 3, 12, 6)), ((1, 3, 4, 5), (2, 3, 6, 3)))),
}

# --- the export: one subprocess per form, all cases at once --------------------------------------

EXPORT = textwrap.dedent('''
    import json, os, sys, traceback
    from pathlib import Path

    import numpy as np
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    from paddle import nn
    import paddle.nn.functional as F
    from paddle.base.layer_helper import LayerHelper


    LEGACY = os.environ.get("FLAGS_enable_pir_api") == "0"


    def op(kind, x, y=None, dtype=None, **attrs):
        """The legacy op `kind` as Paddle 2 wrote it, where Paddle 3's API writes none (or another).
        An attribute named with a trailing _ is written without it (`dtype_` for the attribute dtype)."""
        helper = LayerHelper(kind)
        out = helper.create_variable_for_type_inference(dtype or x.dtype)
        inputs = {"X": x} if y is None else {"X": x, "Y": y}
        helper.append_op(type=kind, inputs=inputs, outputs={"Out": out}, attrs={k.rstrip("_"): v for k, v in attrs.items()})
        return out


    def mm(x, y, transpose_x=False, transpose_y=False):
        """paddle.matmul, which writes no legacy op in Paddle 3: matmul_v2 is written by hand there."""
        if LEGACY:
            return op("matmul_v2", x, y, trans_x=transpose_x, trans_y=transpose_y)
        return paddle.matmul(x, y, transpose_x=transpose_x, transpose_y=transpose_y)

''')


def _export_source(cases: dict[str, Case], form: str) -> str:
    lines = [EXPORT]
    for name, case in cases.items():
        arguments = ", ".join("xyz"[: len(case.inputs)])
        body = (case.legacy if form == "legacy" and case.legacy else case.forward).strip()
        if "return " not in body:
            body = f"return {body}"
        lines += [f"class Case_{name}(nn.Layer):", "    def __init__(self):", "        super().__init__()"]
        lines += [f"        self.{attr} = {constructor}" for attr, constructor in case.layers.items()]
        lines += [f"    def forward(self, {arguments}):", f"        {body}", ""]
    lines.append(textwrap.dedent('''
        def inputs(case, run):
            rng = np.random.default_rng(run)
            arrays = [rng.standard_normal(sizes[run]).astype(np.float32) for sizes in case["inputs"]]
            return [np.abs(a) * 0.75 + 0.5 if case["positive"] else a for a in arrays]


        def main(form, folder):
            folder = Path(folder)
            cases = json.loads((folder / "cases.json").read_text())
            paddle.seed(5)
            for name, case in cases.items():
                try:
                    layer = globals()[f"Case_{name}"]()
                    for key, tensor in layer.state_dict().items():
                        random = paddle.rand(tensor.shape) + 0.5 if "variance" in key else paddle.randn(tensor.shape)
                        tensor.set_value(random.astype(tensor.dtype))
                    layer.eval()
                    spec = [paddle.static.InputSpec([a if a == b else None for a, b in zip(*sizes)], "float32", "xyz"[i])
                            for i, sizes in enumerate(case["inputs"])]
                    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), str(folder / name / "inference"))
                except Exception:
                    (folder / name).mkdir(exist_ok=True)
                    (folder / name / "error.txt").write_text(traceback.format_exc())
            paddle.enable_static()
            executor = paddle.static.Executor(paddle.CPUPlace())
            for name, case in cases.items():
                if (folder / name / "error.txt").exists():
                    continue
                try:  # Paddle running the program it wrote, as an inference program
                    arrays = {}
                    with paddle.static.scope_guard(paddle.static.Scope()):
                        program, feeds, fetches = paddle.static.load_inference_model(str(folder / name / "inference"), executor)
                        for run in (0, 1):
                            arrays.update({f"input{run}_{i}": a for i, a in enumerate(inputs(case, run))})
                            outputs = executor.run(program, feed=dict(zip(feeds, inputs(case, run))), fetch_list=fetches)
                            arrays.update({f"output{run}_{i}": np.asarray(a) for i, a in enumerate(outputs)})
                    np.savez(folder / name / "runs.npz", **arrays)
                except Exception:
                    (folder / name / "error.txt").write_text(traceback.format_exc())


        main(sys.argv[1], sys.argv[2])
    '''))
    return "\n".join(lines)


def _export_all(root: Path) -> None:
    """Both forms of every case, written (and run by Paddle) by two subprocesses side by side."""
    processes = []
    for form in ("pir", "legacy"):
        folder = root / form
        folder.mkdir(parents=True, exist_ok=True)
        cases = {name: {"inputs": case.inputs, "positive": case.positive} for name, case in CASES.items() if form in case.forms}
        (folder / "cases.json").write_text(json.dumps(cases))
        (folder / "export.py").write_text(_export_source({n: CASES[n] for n in cases}, form))  # to_static reads the source
        env = {**os.environ, "FLAGS_enable_pir_api": "0" if form == "legacy" else "1", "GLOG_minloglevel": "2",
               "OMP_NUM_THREADS": "1"}
        log = open(folder / "export.log", "w")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen([sys.executable, str(folder / "export.py"), form, str(folder)], env=env,
                                           stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in processes:
        process.wait(timeout=600)
        log.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The folder of every case's export (`<form>/<case>/`), made once per session even under
    pytest-xdist: the first worker to get here exports, the others wait on the lock."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "paddle-op-translations"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        if os.name == "posix":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            _export_all(root)
            (root / "done").write_text("")
    return root


def _files(folder: Path) -> tuple[Path, Path | None]:
    """The program and the parameters (None for a program without any) Paddle wrote in `folder`."""
    found = paddle_inference.locate(folder)
    if found is not None:
        return found
    return next(p for p in folder.iterdir() if p.suffix in (".json", ".pdmodel")), None


def _ported(folder: Path):
    """The torch twin of the program in `folder`, holding the program's parameters."""
    import torch

    program, params = _files(folder)
    generated = Emitter(read_graph(program)).emit()
    namespace: dict = {}
    exec(compile(generated.code, str(folder / "twin.py"), "exec"), namespace)  # noqa: S102 - our own output
    model = namespace["create_model"]().eval()
    tensors = {}
    if params is not None:
        read = paddle_inference.read_params(str(params), paddle_inference.read_program(program))
        tensors = {name: np.asarray(t.load() if hasattr(t, "load") else t) for name, t in read.items()}
    state = {}
    for layer in generated.layers:
        for attribute, value in layer.parameters.items():
            array = tensors[value.parameter]
            state[f"{layer.path}.{attribute}"] = torch.from_numpy(np.array(array.T if attribute in layer.transposed else array))
    for key in model.state_dict():
        if key not in state and not key.endswith("num_batches_tracked"):
            state[key] = torch.from_numpy(np.array(tensors[key]))
    model.load_state_dict(state, strict=True)
    return model, generated


CHECKS = [pytest.param(name, form, id=f"{name}-{form}") for name, case in CASES.items() for form in case.forms]


@pytest.mark.parametrize(("name", "form"), CHECKS)
def test_the_twin_computes_what_paddle_computes(exported, name, form):
    import torch

    folder = exported / form / name
    if (folder / "error.txt").exists():
        pytest.fail(f"Paddle could not export or run the case:\n{(folder / 'error.txt').read_text()[-3000:]}")
    if not (folder / "runs.npz").exists():
        pytest.fail(f"the export wrote nothing for the case; its log ends:\n{(exported / form / 'export.log').read_text()[-3000:]}")
    model, generated = _ported(folder)
    runs = np.load(folder / "runs.npz")
    for run in (0, 1):
        inputs = [torch.from_numpy(runs[f"input{run}_{i}"]) for i in range(len(CASES[name].inputs))]
        with torch.no_grad():
            outputs = model(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        expected = [runs[f"output{run}_{i}"] for i in range(len([k for k in runs if k.startswith(f"output{run}_")]))]
        assert len(outputs) == len(expected), generated.code
        for got, want in zip(outputs, expected):
            got = got.numpy()
            assert got.shape == want.shape, f"run {run}: {got.shape} != {want.shape}\n{generated.code}"
            scale = max(1.0, float(np.abs(want.astype(np.float64)).max(initial=0)))
            difference = np.abs(got.astype(np.float64) - want.astype(np.float64))
            error = float(np.where(np.isnan(got) & np.isnan(want), 0, difference).max(initial=0))
            assert error <= 1e-5 * scale, f"run {run}: max error {error} (scale {scale})\n{generated.code}"


@pytest.mark.parametrize("form", ["pir", "legacy"])
def test_an_op_without_translation_is_refused_by_name_index_and_variable(exported, form):
    program, _ = _files(exported / form / "relu6")
    graph = read_graph(program)
    op = next(op for op in graph.ops if op.kind == "relu6")
    op.kind = "frobnicate"
    with pytest.raises(PortError) as caught:
        Emitter(graph).emit()
    message = str(caught.value)
    produced = op.all_results[0].key
    assert op.index > 0 and f"op {op.index} (frobnicate, producing {produced} " in message, message
    assert "no torch translation" in message
