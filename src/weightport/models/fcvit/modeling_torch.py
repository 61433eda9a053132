"""FCViT, PyTorch twin of the official implementation (ma-xu/FCViT, `models/fcvit.py`).

Module attribute names follow the reference exactly, so that the released
checkpoints load with `strict=True`. Only the configuration the released
models use is built (competing, weighted global context; no spatial or channel
attention); the reference's mutable `params` dict becomes fixed constants.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ...layers.torch_layers import DropPath, to_2tuple, trunc_normal_

# Shared by every released variant (the reference sets them in each factory).
GC_HEADS = 8
GC_REDUCTION = 8
GC_EPSILON = 1e-5  # added to the std, not the variance
TOKEN_MIXER_KERNEL = 11
TOKEN_FC_FACTOR = 8
TOKEN_FC_MIN_CHANNELS = 16
CHANNEL_MIXER_KERNEL = 3


class GroupNorm(nn.GroupNorm):
    """GroupNorm with a single group: normalises over C, H and W of an NCHW tensor."""

    def __init__(self, num_channels: int):
        super().__init__(1, num_channels)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution + BatchNorm: the stem (7x7, stride 4) and the downsamplers (3x3, stride 2)."""

    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        patch_size = to_2tuple(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride,
                              padding=(patch_size[0] // 2, patch_size[1] // 2))
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x))


def depthwise_conv(dim: int, kernel_size: int) -> nn.Conv2d:
    """'Same'-padded depthwise convolution (the reference's DWConv2D fallback)."""
    return nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)


class GlobalContext(nn.Module):
    """Global context weighted per position by its normalised similarity to the pooled token.

    The context is a competing bottleneck (fc1 gives two candidates, their
    element-wise max goes through fc2); the similarity is standardised jointly
    over heads and positions with the unbiased std, as `torch.std_mean`.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.heads = GC_HEADS
        self.scale = (dim // self.heads) ** -0.5
        self.fc1 = nn.Linear(dim, 2 * dim // GC_REDUCTION)
        self.fc2 = nn.Linear(dim // GC_REDUCTION, dim)
        self.rescale_weight = nn.Parameter(torch.ones(self.heads))
        self.rescale_bias = nn.Parameter(torch.zeros(self.heads))

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.reshape(b, self.heads, c // self.heads, h * w)
        pooled = tokens.mean(dim=-1)  # [b, heads, head_dim]
        sim = torch.einsum("bhdn,bhd->bhn", tokens, pooled) * self.scale
        std, mean = torch.std_mean(sim, dim=(1, 2), keepdim=True)
        sim = (sim - mean) / (std + GC_EPSILON)
        sim = sim * self.rescale_weight[None, :, None] + self.rescale_bias[None, :, None]
        candidates = self.fc1(pooled.reshape(b, c)).reshape(b, 2, -1)
        context = self.fc2(candidates.max(dim=1).values).reshape(b, self.heads, -1, 1)
        return (sim.unsqueeze(2) * context).reshape(b, c, h, w)


class TokenMixer(nn.Module):
    """Two rounds of (add global context, 11x11 depthwise conv, 1x1 bottleneck, GELU)."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = max(dim // TOKEN_FC_FACTOR, TOKEN_FC_MIN_CHANNELS)
        self.act = nn.GELU()
        self.gc1 = GlobalContext(dim)
        self.dw1 = depthwise_conv(dim, TOKEN_MIXER_KERNEL)
        # The reference puts its shared activation module inside the Sequential: indices 0 and 2 hold weights.
        self.fc1 = nn.Sequential(nn.Conv2d(dim, hidden, 1), self.act, nn.Conv2d(hidden, dim, 1))
        self.gc2 = GlobalContext(dim)
        self.dw2 = depthwise_conv(dim, TOKEN_MIXER_KERNEL)
        self.fc2 = nn.Sequential(nn.Conv2d(dim, hidden, 1), self.act, nn.Conv2d(hidden, dim, 1))

    def forward(self, x):
        x = x + self.gc1(x)
        x = self.act(self.fc1(self.dw1(x)))
        x = x + self.gc2(x)
        return self.act(self.fc2(self.dw2(x)))


class ChannelMixer(nn.Module):
    """1x1 expansion, 3x3 depthwise conv, GELU, 1x1 projection."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.act = nn.GELU()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.dwconv = depthwise_conv(hidden_dim, CHANNEL_MIXER_KERNEL)
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class BasicBlock(nn.Module):
    """MetaFormer block: pre-norm token mixer and channel mixer, each with layer scale and a residual."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float, layer_scale_init_value: float):
        super().__init__()
        self.norm1 = GroupNorm(dim)
        self.token_mixer = TokenMixer(dim)
        self.norm2 = GroupNorm(dim)
        self.channel_mixer = ChannelMixer(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.channel_mixer(self.norm2(x)))


class FCViT(nn.Module):
    """Stem, four stages of BasicBlocks with a downsampler between stages (all in `network`), GroupNorm, linear head."""

    def __init__(self, depths, embed_dims, mlp_ratios, num_classes: int = 1000, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-5):
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed = OverlapPatchEmbed(patch_size=7, stride=4, in_chans=3, embed_dim=embed_dims[0])
        total_blocks = sum(depths)
        network = []
        for stage, (depth, dim, mlp_ratio) in enumerate(zip(depths, embed_dims, mlp_ratios)):
            first = sum(depths[:stage])
            network.append(nn.Sequential(*[
                BasicBlock(dim, mlp_ratio, drop_rate, drop_path_rate * (first + i) / (total_blocks - 1),
                           layer_scale_init_value)
                for i in range(depth)
            ]))
            if stage < len(depths) - 1:
                network.append(OverlapPatchEmbed(patch_size=3, stride=2, in_chans=dim, embed_dim=embed_dims[stage + 1]))
        self.network = nn.ModuleList(network)
        self.norm = GroupNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        """The reference's init: truncated normal Linear, fan-out normal Conv2d, zero biases."""
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x):
        x = self.patch_embed(x)
        for stage in self.network:
            x = stage(x)
        return self.norm(x)

    def forward(self, x):
        return self.head(self.forward_features(x).mean(dim=(-2, -1)))


def fcvit_tiny(**kwargs) -> FCViT:
    return FCViT(depths=(3, 3, 5, 2), embed_dims=(32, 64, 160, 320), mlp_ratios=(8, 8, 4, 4), **kwargs)


def fcvit_b12(**kwargs) -> FCViT:
    return FCViT(depths=(2, 2, 6, 2), embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4), **kwargs)


def fcvit_b24(**kwargs) -> FCViT:
    return FCViT(depths=(4, 4, 12, 4), embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4), **kwargs)


def fcvit_b48(**kwargs) -> FCViT:
    return FCViT(depths=(8, 8, 24, 8), embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4), **kwargs)
