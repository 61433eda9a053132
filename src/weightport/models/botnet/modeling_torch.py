"""PyTorch twins of the BoTNet family: timm itself.

The four timm BoTNets are built by `timm.create_model`, so their state dicts are exactly what timm
checkpoints hold. The paper's BoT50 / BoT50-S1 are timm `ByobNet`s built from the configs in
`configs.py`; their MHSA is timm's `BottleneckAttn` (relative logits as in the authors' gist).
"""
from __future__ import annotations

import timm
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg

from . import configs


def to_timm_cfg(cfg: configs.ModelCfg) -> ByoModelCfg:
    """timm's `ByoModelCfg` for one of our framework-free configs."""

    def block(b: configs.BlockCfg) -> ByoBlockCfg:
        return ByoBlockCfg(type=b.type, d=b.d, c=b.c, s=b.s, gs=b.gs, br=b.br)

    stages = tuple(
        tuple(block(b) for b in stage) if isinstance(stage, tuple) else block(stage) for stage in cfg.blocks
    )
    return ByoModelCfg(
        blocks=stages,
        downsample=cfg.downsample,
        stem_type=cfg.stem_type,
        stem_pool=cfg.stem_pool,
        stem_chs=cfg.stem_chs,
        width_factor=cfg.width_factor,
        num_features=cfg.num_features,
        fixed_input_size=cfg.fixed_input_size,
        act_layer=cfg.act_layer,
        attn_layer=cfg.attn_layer,
        self_attn_layer=cfg.self_attn_layer,
        self_attn_kwargs=dict(cfg.self_attn_kwargs),
    )


def botnet26t_256(**kwargs):
    return timm.create_model("botnet26t_256", pretrained=False, **kwargs)


def sebotnet33ts_256(**kwargs):
    return timm.create_model("sebotnet33ts_256", pretrained=False, **kwargs)


def eca_botnext26ts_256(**kwargs):
    return timm.create_model("eca_botnext26ts_256", pretrained=False, **kwargs)


def botnet50ts_256(**kwargs):
    return timm.create_model("botnet50ts_256", pretrained=False, **kwargs)


def botnet50(img_size: int = 224, **kwargs):
    """Paper BoT50: ResNet-50 with MHSA in c5, c5 strided by a 2x2 avg-pool after the first MHSA."""
    return ByobNet(to_timm_cfg(configs.BOTNET50), img_size=img_size, **kwargs)


def botnet50_s1(img_size: int = 224, **kwargs):
    """Paper BoT50-S1: BoT50 with c5 at stride 1."""
    return ByobNet(to_timm_cfg(configs.BOTNET50_S1), img_size=img_size, **kwargs)
