"""PyTorch twins of PP-HGNet and PP-HGNetV2: timm's own `hgnet_*` and `hgnetv2_b*`.

timm's model is the twin as it is, including where it departs from PaddleClas: in V2 B0-B3, timm
zero-pads stem1's output before the stem's 2x2/1 max-pool where PaddleClas's "SAME" pool ignores
its padding, so the two differ on the bottom row and right column when the LearnableAffineBlock
after stem1 makes that output negative (docs/ppcls_hgnet.md). Verification measures what a timm
user runs.
"""
import timm


def _timm(name: str, **kwargs):
    return timm.create_model(name, pretrained=False, **kwargs)


def ppcls_pphgnet_tiny(**kwargs):
    return _timm("hgnet_tiny", **kwargs)


def ppcls_pphgnet_small(**kwargs):
    return _timm("hgnet_small", **kwargs)


def ppcls_pphgnet_base(**kwargs):
    return _timm("hgnet_base", **kwargs)


def ppcls_pphgnetv2_b0(**kwargs):
    return _timm("hgnetv2_b0", **kwargs)


def ppcls_pphgnetv2_b1(**kwargs):
    return _timm("hgnetv2_b1", **kwargs)


def ppcls_pphgnetv2_b2(**kwargs):
    return _timm("hgnetv2_b2", **kwargs)


def ppcls_pphgnetv2_b3(**kwargs):
    return _timm("hgnetv2_b3", **kwargs)


def ppcls_pphgnetv2_b4(**kwargs):
    return _timm("hgnetv2_b4", **kwargs)


def ppcls_pphgnetv2_b5(**kwargs):
    return _timm("hgnetv2_b5", **kwargs)


def ppcls_pphgnetv2_b6(**kwargs):
    return _timm("hgnetv2_b6", **kwargs)
