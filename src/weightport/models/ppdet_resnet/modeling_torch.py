"""Torch twins: timm's ResNets as feature extractors, and the project's ResNet-50-MHSA without its head.

`timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4))` returns layer1..layer4's
outputs, the maps PaddleDetection's ResNet returns with return_idx [0, 1, 2, 3]. With
PaddleDetection's freezing arguments the twins freeze alike: `freeze_at=k` stops the gradients of
the stem and layer1..layer(k+1), `freeze_norm=True` swaps every BatchNorm for timm's
FrozenBatchNorm2d (running statistics in training too, no trainable scale or shift).
"""
from __future__ import annotations

import timm
import torch
from timm.layers import freeze_batch_norm_2d

from ..botnet_mhsa.modeling_torch import ResNetMHSA

STAGES = ("layer1", "layer2", "layer3", "layer4")


def _frozen(model, freeze_norm: bool, freeze_at: int):
    """The model with PaddleDetection's `freeze_norm` / `freeze_at` applied."""
    if freeze_norm:
        model = freeze_batch_norm_2d(model)
    if freeze_at >= 0:
        for name in ("conv1", "bn1", *STAGES[: freeze_at + 1]):
            getattr(model, name).requires_grad_(False)
    return model


def _features(timm_name: str, num_classes=None, freeze_norm=False, freeze_at=-1, return_idx=(0, 1, 2, 3)):
    """`num_classes` is accepted and unused, as timm's features_only models drop the classifier."""
    model = timm.create_model(timm_name, pretrained=False, features_only=True,
                              out_indices=tuple(i + 1 for i in return_idx))
    return _frozen(model, freeze_norm, freeze_at)


def ppdet_resnet50(**kwargs):
    return _features("resnet50", **kwargs)


def ppdet_resnet101(**kwargs):
    return _features("resnet101", **kwargs)


def ppdet_resnet50_vd(**kwargs):
    return _features("resnet50d", **kwargs)


def ppdet_resnet101_vd(**kwargs):
    return _features("resnet101d", **kwargs)


class ResNetMHSABackbone(ResNetMHSA):
    """botnet50_mhsa's network without avgpool and fc, returning the maps of layer1..layer4 picked by `return_idx`."""

    def __init__(self, depths, img_size=224, heads: int = 4, return_idx=(0, 1, 2, 3)):
        super().__init__(depths, img_size=img_size, heads=heads)
        del self.avgpool, self.fc
        self.return_idx = tuple(return_idx)

    def forward(self, x) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for index, name in enumerate(STAGES):
            x = getattr(self, name)(x)
            if index in self.return_idx:
                outs.append(x)
        return outs


def ppdet_botnet50_mhsa(img_size=224, heads=4, num_classes=None, freeze_norm=False, freeze_at=-1,
                        return_idx=(0, 1, 2, 3)):
    """botnet50_mhsa's backbone; `num_classes` is accepted and unused (there is no classifier)."""
    model = ResNetMHSABackbone((3, 4, 6, 3), img_size=img_size, heads=heads, return_idx=return_idx)
    return _frozen(model, freeze_norm, freeze_at)
