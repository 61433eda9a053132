"""CMT in PyTorch, laid out exactly as the official code.

Reference: huawei-noah/Efficient-AI-Backbones, `cmt_pytorch/cmt.py` ("CMT: Convolutional Neural
Networks Meet Vision Transformers", arXiv 2107.06263). Every attribute name follows the reference,
so its released `{'model': ...}` checkpoints load with `strict=True`. The Paddle twin in
`modeling_paddle.py` mirrors this file class by class.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...layers.torch_layers import DropPath, to_2tuple, trunc_normal_
from . import STAGES, check_img_size


class Swish(nn.Module):
    """x * sigmoid(x): the reference's MemoryEfficientSwish, whose custom autograd only saves memory."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class Mlp(nn.Module):
    """Inverted-residual feed-forward network: 1x1 expand, residual 3x3 depthwise, 1x1 project."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_features, hidden_features, 1, 1, 0, bias=True),
            nn.GELU(),
            nn.BatchNorm2d(hidden_features, eps=1e-5),
        )
        self.proj = nn.Conv2d(hidden_features, hidden_features, 3, 1, 1, groups=hidden_features)
        self.proj_act = nn.GELU()
        self.proj_bn = nn.BatchNorm2d(hidden_features, eps=1e-5)
        self.conv2 = nn.Sequential(
            nn.Conv2d(hidden_features, in_features, 1, 1, 0, bias=True),
            nn.BatchNorm2d(in_features, eps=1e-5),
        )
        self.drop = nn.Dropout(drop)

    def forward(self, x, H: int, W: int):
        B, N, C = x.shape
        x = x.permute(0, 2, 1).reshape(B, C, H, W)
        x = self.drop(self.conv1(x))
        x = self.proj_bn(self.proj_act(self.proj(x) + x))
        x = self.conv2(x)
        return self.drop(x.flatten(2).permute(0, 2, 1))


class Attention(nn.Module):
    """Multi-head attention whose keys and values come from a depthwise-strided, batch-normalised
    copy of the tokens (spatial reduction, as PVTv1), plus a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, sr_ratio: int = 1):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, groups=dim, bias=True),
                nn.BatchNorm2d(dim, eps=1e-5),
            )

    def forward(self, x, H: int, W: int, relative_pos):
        B, N, C = x.shape
        head_dim = C // self.num_heads
        q = self.q(x).reshape(B, N, self.num_heads, head_dim).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x = self.sr(x.permute(0, 2, 1).reshape(B, C, H, W)).reshape(B, C, -1).permute(0, 2, 1)
        k = self.k(x).reshape(B, -1, self.num_heads, head_dim).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, -1, self.num_heads, head_dim).permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + relative_pos
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """CMT block: local perception unit (residual 3x3 depthwise conv), attention, inverted-residual FFN."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, sr_ratio: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop=attn_drop, proj_drop=drop, sr_ratio=sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, H: int, W: int, relative_pos):
        B, N, C = x.shape
        cnn_feat = x.permute(0, 2, 1).reshape(B, C, H, W)
        x = (self.proj(cnn_feat) + cnn_feat).flatten(2).permute(0, 2, 1)
        x = x + self.drop_path(self.attn(self.norm1(x), H, W, relative_pos))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class PatchEmbed(nn.Module):
    """Strided conv patchify followed by LayerNorm with torch's default eps (1e-5), as the reference."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        self.num_patches = (self.img_size[0] // self.patch_size[0]) * (self.img_size[1] // self.patch_size[1])
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)

    def forward(self, x):
        H, W = x.shape[-2:]
        if (H, W) != self.img_size:
            raise ValueError(f"input of {H}x{W} does not match this CMT's {self.img_size[0]}x{self.img_size[1]}")
        x = self.norm(self.proj(x).flatten(2).transpose(1, 2))
        return x, (H // self.patch_size[0], W // self.patch_size[1])


class CMT(nn.Module):
    """Convolutional stem; four stages of patch embedding and CMT blocks; 1x1 conv, BatchNorm, Swish,
    average pooling and a Linear classifier. `dp` is the dropout before the classifier."""

    def __init__(self, img_size: int, embed_dims, stem_channel: int, num_heads, mlp_ratios, depths,
                 sr_ratios=(8, 4, 2, 1), qkv_bias: bool = True, num_classes: int = 1000, fc_dim: int = 1280,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 dp: float = 0.1):
        super().__init__()
        check_img_size(img_size)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dims[-1]

        self.stem_conv1 = nn.Conv2d(3, stem_channel, kernel_size=3, stride=2, padding=1, bias=True)
        self.stem_relu1 = nn.GELU()
        self.stem_norm1 = nn.BatchNorm2d(stem_channel, eps=1e-5)
        self.stem_conv2 = nn.Conv2d(stem_channel, stem_channel, kernel_size=3, stride=1, padding=1, bias=True)
        self.stem_relu2 = nn.GELU()
        self.stem_norm2 = nn.BatchNorm2d(stem_channel, eps=1e-5)
        self.stem_conv3 = nn.Conv2d(stem_channel, stem_channel, kernel_size=3, stride=1, padding=1, bias=True)
        self.stem_relu3 = nn.GELU()
        self.stem_norm3 = nn.BatchNorm2d(stem_channel, eps=1e-5)

        # Stage s works on an (img_size / 2^(s+2))^2 token grid; its keys on that grid reduced by sr_ratio.
        # Built in the reference's order (all embeddings, then all biases) so a seed gives its init.
        in_chans = (stem_channel,) + tuple(embed_dims[:-1])
        for s, stage in enumerate(STAGES):
            setattr(self, f"patch_embed_{stage}", PatchEmbed(img_size // 2 ** (s + 1), 2, in_chans[s], embed_dims[s]))
        for s, stage in enumerate(STAGES):
            queries = getattr(self, f"patch_embed_{stage}").num_patches
            keys = queries // sr_ratios[s] // sr_ratios[s]
            setattr(self, f"relative_pos_{stage}", nn.Parameter(torch.randn(num_heads[s], queries, keys)))
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()  # stochastic depth decay rule
        first = 0
        for s, stage in enumerate(STAGES):
            blocks = nn.ModuleList(
                Block(embed_dims[s], num_heads[s], mlp_ratios[s], qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                      drop_path=dpr[first + i], sr_ratio=sr_ratios[s])
                for i in range(depths[s])
            )
            setattr(self, f"blocks_{stage}", blocks)
            first += depths[s]

        self._fc = nn.Conv2d(embed_dims[-1], fc_dim, kernel_size=1)
        self._bn = nn.BatchNorm2d(fc_dim, eps=1e-5)
        self._swish = Swish()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._drop = nn.Dropout(dp)
        self.head = nn.Linear(fc_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward_features(self, x):
        B = x.shape[0]
        x = self.stem_norm1(self.stem_relu1(self.stem_conv1(x)))
        x = self.stem_norm2(self.stem_relu2(self.stem_conv2(x)))
        x = self.stem_norm3(self.stem_relu3(self.stem_conv3(x)))
        for s, stage in enumerate(STAGES):
            if s > 0:  # tokens back to an image; contiguous as the reference, so the same conv kernels run
                x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()  # noqa: F821 (H, W: the previous stage's)
            x, (H, W) = getattr(self, f"patch_embed_{stage}")(x)
            relative_pos = getattr(self, f"relative_pos_{stage}")
            for block in getattr(self, f"blocks_{stage}"):
                x = block(x, H, W, relative_pos)
        C = x.shape[-1]
        x = self._fc(x.permute(0, 2, 1).reshape(B, C, H, W))
        x = self._swish(self._bn(x))
        return self._drop(self._avg_pooling(x).flatten(1))

    def forward(self, x):
        return self.head(self.forward_features(x))


def cmt_ti(img_size: int = 160, **kwargs) -> CMT:
    """CMT-Ti, trained at 160."""
    return CMT(img_size, embed_dims=(46, 92, 184, 368), stem_channel=16, num_heads=(1, 2, 4, 8),
               mlp_ratios=(3.6, 3.6, 3.6, 3.6), depths=(2, 2, 10, 2), **kwargs)


def cmt_xs(img_size: int = 192, **kwargs) -> CMT:
    """CMT-XS, trained at 192."""
    return CMT(img_size, embed_dims=(52, 104, 208, 416), stem_channel=16, num_heads=(1, 2, 4, 8),
               mlp_ratios=(3.77, 3.77, 3.77, 3.77), depths=(3, 3, 12, 3), **kwargs)


def cmt_s(img_size: int = 224, **kwargs) -> CMT:
    """CMT-S, trained at 224."""
    return CMT(img_size, embed_dims=(64, 128, 256, 512), stem_channel=32, num_heads=(1, 2, 4, 8),
               mlp_ratios=(4, 4, 4, 4), depths=(3, 3, 16, 3), **kwargs)


def cmt_b(img_size: int = 256, **kwargs) -> CMT:
    """CMT-B, trained at 256; the reference also raises its head dropout to 0.3."""
    return CMT(img_size, embed_dims=(76, 152, 304, 608), stem_channel=38, num_heads=(1, 2, 4, 8),
               mlp_ratios=(4, 4, 4, 4), depths=(4, 4, 20, 4), dp=0.3, **kwargs)
