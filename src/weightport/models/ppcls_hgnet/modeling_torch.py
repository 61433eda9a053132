"""PyTorch twins of PP-HGNet and PP-HGNetV2: timm's `hgnet_*` and `hgnetv2_b*`.

PP-HGNet and PP-HGNetV2 B4-B6 are `timm.create_model` itself. For V2 B0-B3 (the variants with
LearnableAffineBlocks) the twin is timm's model with one forward fix in the stem: timm zero-pads
stem1's output before the 2x2/1 max-pool, PaddleClas pads it "SAME", which the pool ignores. The
two agree while that output is non-negative (always without a LAB: it follows a ReLU), but a LAB
with a negative bias or scale makes it negative and then timm's pool returns 0 on the bottom row
and the right column where PaddleClas returns the largest real value. The fixed twin has timm's
modules and state dict, so its checkpoints are timm's; docs/ppcls_hgnet.md measures the difference.
"""
from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.models.hgnet import StemV2


class StemV2PaddleClasPool(StemV2):
    """timm's StemV2 whose max-pool reads only real values, as PaddleClas's padding="SAME" pool does."""

    def forward(self, x):
        x = self.stem1(x)
        branch = self.stem2b(F.pad(self.stem2a(F.pad(x, (0, 1, 0, 1))), (0, 1, 0, 1)))
        pooled = self.pool(F.pad(x, (0, 1, 0, 1), value=float("-inf")))
        return self.stem4(self.stem3(torch.cat([pooled, branch], dim=1)))


def _timm(name: str, **kwargs):
    return timm.create_model(name, pretrained=False, **kwargs)


def _with_paddleclas_stem_pool(model):
    model.stem.__class__ = StemV2PaddleClasPool  # same modules and parameters, PaddleClas's pool padding
    return model


def ppcls_pphgnet_tiny(**kwargs):
    return _timm("hgnet_tiny", **kwargs)


def ppcls_pphgnet_small(**kwargs):
    return _timm("hgnet_small", **kwargs)


def ppcls_pphgnet_base(**kwargs):
    return _timm("hgnet_base", **kwargs)


def ppcls_pphgnetv2_b0(**kwargs):
    return _with_paddleclas_stem_pool(_timm("hgnetv2_b0", **kwargs))


def ppcls_pphgnetv2_b1(**kwargs):
    return _with_paddleclas_stem_pool(_timm("hgnetv2_b1", **kwargs))


def ppcls_pphgnetv2_b2(**kwargs):
    return _with_paddleclas_stem_pool(_timm("hgnetv2_b2", **kwargs))


def ppcls_pphgnetv2_b3(**kwargs):
    return _with_paddleclas_stem_pool(_timm("hgnetv2_b3", **kwargs))


def ppcls_pphgnetv2_b4(**kwargs):
    return _timm("hgnetv2_b4", **kwargs)


def ppcls_pphgnetv2_b5(**kwargs):
    return _timm("hgnetv2_b5", **kwargs)


def ppcls_pphgnetv2_b6(**kwargs):
    return _timm("hgnetv2_b6", **kwargs)
