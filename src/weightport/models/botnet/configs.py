"""Framework-free architecture configs for the BoTNet family, mirroring timm's ByobNet configs.

`BlockCfg` / `ModelCfg` carry the subset of timm's `ByoBlockCfg` / `ByoModelCfg` fields these
models use, with the same names and defaults, so that the torch side can rebuild timm's config
from them and a test can compare them with `timm.models.byoanet.model_cfgs` field by field.
The configs are frozen; keyword arguments are stored as tuples of (name, value) pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

KwargPairs = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class BlockCfg:
    """One block, or `d` identical blocks, of a stage (timm's `ByoBlockCfg`)."""

    type: str  # 'bottle' (1x1 - 3x3 - 1x1) or 'self_attn' (1x1 - self-attention - 1x1)
    d: int  # number of blocks
    c: int  # output channels
    s: int = 2  # stride of the stage's first block
    gs: int | None = None  # group size of the 3x3 conv; 0 or None for a plain conv
    br: float = 1.0  # bottleneck ratio: mid channels = c * br


StageCfg = BlockCfg | tuple[BlockCfg, ...]


@dataclass(frozen=True)
class ModelCfg:
    """A whole network (timm's `ByoModelCfg`): stem, stages, final 1x1 conv and layer choices."""

    blocks: tuple[StageCfg, ...]
    downsample: str = "conv1x1"
    stem_type: str = "3x3"
    stem_pool: str | None = "maxpool"
    stem_chs: int = 32
    width_factor: float = 1.0
    num_features: int = 0  # channels of a final 1x1 conv; none when 0
    fixed_input_size: bool = False
    act_layer: str = "relu"
    attn_layer: str | None = None  # channel attention in bottleneck blocks: 'se', 'eca' or None
    self_attn_layer: str | None = None  # 'bottleneck' = timm's BottleneckAttn
    self_attn_kwargs: KwargPairs = ()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% down (timm's make_divisible)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive 1-D kernel size for `channels` (odd, at least 3), as timm's EcaModule."""
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


def interleave(types: tuple[str, str], d: int, every: int | list[int] = 1, **block: Any) -> tuple[BlockCfg, ...]:
    """`d` single blocks of types[0], with types[1] at positions `every` (timm's interleave_blocks).

    An int `every` places types[1] at every, 2 * every + 1, ...; the last block when that is empty.
    """
    if isinstance(every, int):
        every = list(range(every, d, every + 1)) or [d - 1]
    return tuple(BlockCfg(type=types[1] if i in every else types[0], d=1, **block) for i in range(d))


BOTNET26T = ModelCfg(
    blocks=(
        BlockCfg(type="bottle", d=2, c=256, s=1, gs=0, br=0.25),
        BlockCfg(type="bottle", d=2, c=512, s=2, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), d=2, c=1024, s=2, gs=0, br=0.25),
        BlockCfg(type="self_attn", d=2, c=2048, s=2, gs=0, br=0.25),
    ),
    stem_chs=64,
    stem_type="tiered",
    stem_pool="maxpool",
    fixed_input_size=True,
    self_attn_layer="bottleneck",
)

SEBOTNET33TS = ModelCfg(
    blocks=(
        BlockCfg(type="bottle", d=2, c=256, s=1, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), every=[2], d=3, c=512, s=2, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), every=[2], d=3, c=1024, s=2, gs=0, br=0.25),
        BlockCfg(type="self_attn", d=2, c=1536, s=2, gs=0, br=0.333),
    ),
    stem_chs=64,
    stem_type="tiered",
    stem_pool="",
    act_layer="silu",
    num_features=1280,
    attn_layer="se",
    self_attn_layer="bottleneck",
)

BOTNET50TS = ModelCfg(
    blocks=(
        BlockCfg(type="bottle", d=3, c=256, s=1, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), every=4, d=4, c=512, s=2, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), d=6, c=1024, s=2, gs=0, br=0.25),
        interleave(("bottle", "self_attn"), d=3, c=2048, s=2, gs=0, br=0.25),
    ),
    stem_chs=64,
    stem_type="tiered",
    stem_pool="maxpool",
    act_layer="silu",
    fixed_input_size=True,
    self_attn_layer="bottleneck",
)

ECA_BOTNEXT26TS = ModelCfg(
    blocks=(
        BlockCfg(type="bottle", d=2, c=256, s=1, gs=16, br=0.25),
        BlockCfg(type="bottle", d=2, c=512, s=2, gs=16, br=0.25),
        interleave(("bottle", "self_attn"), d=2, c=1024, s=2, gs=16, br=0.25),
        BlockCfg(type="self_attn", d=2, c=2048, s=2, gs=16, br=0.25),
    ),
    stem_chs=64,
    stem_type="tiered",
    stem_pool="maxpool",
    fixed_input_size=True,
    act_layer="silu",
    attn_layer="eca",
    self_attn_layer="bottleneck",
    self_attn_kwargs=(("dim_head", 16),),
)

# Paper BoT50 (arXiv 2101.11605): ResNet-50 (7x7 stem + max-pool, bottlenecks [3, 4, 6, 3],
# ReLU, 1x1 projection shortcuts) whose three c5 blocks replace the 3x3 conv by 4-head MHSA with 2D
# relative position logits. The first c5 block strides by a 2x2 average pool after MHSA.
# `scale_pos_embed` scales q before both the content and the relative logits, as the authors'
# reference gist does (`q *= dim ** -0.5`, then `q k^T + rel_logits(q)`).
BOTNET50 = ModelCfg(
    blocks=(
        BlockCfg(type="bottle", d=3, c=256, s=1, gs=0, br=0.25),
        BlockCfg(type="bottle", d=4, c=512, s=2, gs=0, br=0.25),
        BlockCfg(type="bottle", d=6, c=1024, s=2, gs=0, br=0.25),
        BlockCfg(type="self_attn", d=3, c=2048, s=2, gs=0, br=0.25),
    ),
    stem_chs=64,
    stem_type="7x7",
    stem_pool="maxpool",
    fixed_input_size=True,
    self_attn_layer="bottleneck",
    self_attn_kwargs=(("num_heads", 4), ("scale_pos_embed", True)),
)

# Paper BoT50-S1: BoT50 with c5 at stride 1 (MHSA on 14x14 at 224 input), the paper's BoT50-S1.
BOTNET50_S1 = replace(BOTNET50, blocks=BOTNET50.blocks[:3] + (replace(BOTNET50.blocks[3], s=1),))
