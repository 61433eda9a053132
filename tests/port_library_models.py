"""Small models from libraries other than timm, as `weightport port module:factory` sources for the
port's end-to-end tests (random weights, nothing downloaded)."""
from __future__ import annotations

import torch
from torch import nn


def vit(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's ViT (einops' Rearrange layer, rearrange and repeat in its forward)."""
    from vit_pytorch import ViT

    return ViT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, heads=2, mlp_dim=128)


def simple_vit(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's SimpleViT (sin-cos position embedding built from the patch grid)."""
    from vit_pytorch.simple_vit import SimpleViT

    return SimpleViT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, heads=2, mlp_dim=128)


def simple_vit_with_register_tokens(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's SimpleViT with register tokens (einops.pack / unpack)."""
    from vit_pytorch.simple_vit_with_register_tokens import SimpleViT

    return SimpleViT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, heads=2, mlp_dim=128,
                     num_register_tokens=4)


def cait(image_size: int = 64, num_classes: int = 10, layer_dropout: float = 0.0):
    """vit-pytorch's CaiT (its layer dropout, when on, picks layers in Python from a uniform_ draw)."""
    from vit_pytorch.cait import CaiT

    return CaiT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, cls_depth=1, heads=2,
                mlp_dim=128, dropout=0.1, emb_dropout=0.1, layer_dropout=layer_dropout)


def mobile_vit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.mobile_vit import MobileViT

    return MobileViT(image_size=(image_size, image_size), dims=[32, 40, 48], channels=[8, 16, 24, 24, 32, 32, 40, 40, 48, 48, 96],
                     num_classes=num_classes)


def max_vit(num_classes: int = 10):
    from vit_pytorch.max_vit import MaxViT

    return MaxViT(num_classes=num_classes, dim_conv_stem=16, dim=16, dim_head=8, depth=(1, 1), window_size=2, dropout=0.1)


def cross_vit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.cross_vit import CrossViT

    return CrossViT(image_size=image_size, num_classes=num_classes, sm_dim=32, lg_dim=48, sm_patch_size=8, sm_enc_depth=1,
                    sm_enc_heads=2, sm_enc_mlp_dim=64, sm_enc_dim_head=16, lg_patch_size=16, lg_enc_depth=1, lg_enc_heads=2,
                    lg_enc_mlp_dim=64, lg_enc_dim_head=16, cross_attn_depth=1, cross_attn_heads=2, cross_attn_dim_head=16,
                    depth=2, dropout=0.1, emb_dropout=0.1)


def pit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.pit import PiT

    return PiT(image_size=image_size, patch_size=8, num_classes=num_classes, dim=32, depth=(1, 1, 1), heads=2, mlp_dim=64,
               dropout=0.1, emb_dropout=0.1)


def _drop_connect(inputs, p, training):
    """EfficientNet-PyTorch's drop-connect (efficientnet_pytorch.utils.drop_connect), as written there."""
    if not training:
        return inputs
    batch_size = inputs.shape[0]
    keep_prob = 1 - p
    random_tensor = keep_prob
    random_tensor += torch.rand([batch_size, 1, 1, 1], dtype=inputs.dtype, device=inputs.device)
    binary_tensor = torch.floor(random_tensor)
    return inputs / keep_prob * binary_tensor


class DropConnectBlock(nn.Module):
    def __init__(self, dim: int, rate: float):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.BatchNorm2d(dim)
        self.rate = rate

    def forward(self, x):
        y = torch.relu(self.norm(self.conv(x)))
        y = nn.functional.dropout(y, 0.1, self.training)  # functional dropout in the module's own code
        return x + _drop_connect(y, self.rate, self.training)


class DropConnectNet(nn.Module):
    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(DropConnectBlock(8, 0.2), DropConnectBlock(8, 0.3))
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def drop_connect_net(num_classes: int = 5) -> DropConnectNet:
    """Random ops in train-mode code: torch.rand (drop-connect) and functional dropout."""
    return DropConnectNet(num_classes)


def efficientnet_b0(num_classes: int = 1000):
    """EfficientNet-PyTorch's efficientnet-b0 (drop-connect in its blocks), built without a download."""
    from efficientnet_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-b0", num_classes=num_classes)


class IndexedDepthBlock(nn.Module):
    """torchvision's StochasticDepth and an integer index buffer (as Swin's relative position index)."""

    def __init__(self, dim: int, p: float):
        super().__init__()
        from torchvision.ops import StochasticDepth

        self.table = nn.Parameter(torch.randn(2 * dim))
        self.register_buffer("index", torch.arange(dim) * 2)
        self.fc = nn.Linear(dim, dim)
        self.stochastic_depth = StochasticDepth(p, "row")

    def forward(self, x):
        return x + self.stochastic_depth(self.fc(x) * self.table[self.index])


def stochastic_depth_net(num_classes: int = 5):
    """StochasticDepth off and on (two Paddle classes: StochasticDepth, StochasticDepth2)."""
    return nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.Flatten(2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         IndexedDepthBlock(8, 0.0), IndexedDepthBlock(8, 0.3), nn.Linear(8, num_classes))
