"""Paddle twins of the BoTNet family: a port of the part of timm's ByobNet these models use.

Modules keep timm's attribute names (`stem.conv1.conv`, `stages.2.1.self_attn.qkv`,
`...post_attn`, `head.fc`, ...), so a timm state dict maps onto these twins key for key, apart
from BatchNorm's `_mean` / `_variance` and the transposed classifier (botnet.toml).
Covered: the 'tiered' (3x3 x3) and '7x7' stems, timm's BottleneckBlock and SelfAttnBlock,
BottleneckAttn with its relative position logits (timm's `PosEmbedRel`, from the authors' gist),
SE and ECA channel attention, ReLU / SiLU, an optional final 1x1 conv, and the avg-pool + Linear head.
"""
from __future__ import annotations

import math

from weightport.frameworks import quiet_paddle_import
from weightport.layers.paddle_layers import to_2tuple, trunc_normal_

from . import configs
from .configs import BlockCfg, ModelCfg, eca_kernel_size, make_divisible

paddle = quiet_paddle_import()
nn = paddle.nn
F = paddle.nn.functional

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.Silu}


class BatchNormAct2d(nn.BatchNorm2D):
    """BatchNorm followed by an activation; a BatchNorm subclass, so its parameters sit at the
    module's own path (`post_attn.weight`), as in timm."""

    def __init__(self, num_features: int, act_layer=nn.ReLU, apply_act: bool = True):
        super().__init__(num_features, epsilon=1e-5)
        self.act = act_layer() if apply_act else nn.Identity()

    def forward(self, x):
        return self.act(super().forward(x))


class ConvNormAct(nn.Layer):
    """Bias-free conv with timm's symmetric padding ((stride - 1) + (k - 1)) // 2, then BatchNorm + act."""

    def __init__(self, in_chs, out_chs, kernel_size=1, stride=1, groups=1, apply_act=True, act_layer=nn.ReLU):
        super().__init__()
        padding = ((stride - 1) + (kernel_size - 1)) // 2
        self.conv = nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=padding, groups=groups,
                              bias_attr=False)
        self.bn = BatchNormAct2d(out_chs, act_layer=act_layer, apply_act=apply_act)

    def forward(self, x):
        return self.bn(self.conv(x))


class SEModule(nn.Layer):
    """Squeeze-and-excitation with 1x1 convs, reduction 1/16 rounded to 8, ReLU, sigmoid gate (timm's SEModule)."""

    def __init__(self, channels: int):
        super().__init__()
        rd_channels = make_divisible(channels / 16, 8, round_limit=0.0)
        self.fc1 = nn.Conv2D(channels, rd_channels, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2D(rd_channels, channels, 1)

    def forward(self, x):
        x_se = x.mean(axis=(2, 3), keepdim=True)
        x_se = self.fc2(self.act(self.fc1(x_se)))
        return x * F.sigmoid(x_se)


class EcaModule(nn.Layer):
    """Efficient channel attention: a bias-free 1-D conv across pooled channels, sigmoid gate (timm's EcaModule)."""

    def __init__(self, channels: int):
        super().__init__()
        kernel_size = eca_kernel_size(channels)
        self.conv = nn.Conv1D(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias_attr=False)

    def forward(self, x):
        batch, channels = x.shape[0], x.shape[1]
        y = self.conv(x.mean(axis=(2, 3)).reshape([batch, 1, channels]))
        return x * F.sigmoid(y).reshape([batch, channels, 1, 1])


CHANNEL_ATTENTION = {"se": SEModule, "eca": EcaModule}


def rel_logits_1d(q, rel_k, permute: list[int]):
    """Relative logits along the last spatial axis of q [B, H, W, d], tiled over H (timm's rel_logits_1d).

    q @ rel_k^T gives logits for the 2W - 1 relative offsets; padding and re-slicing the flattened
    rows turns them into absolute key positions, exactly as timm (and the authors' gist) does.
    """
    batch, height, width, _ = q.shape
    x = paddle.matmul(q, rel_k, transpose_y=True).reshape([-1, width, 2 * width - 1])
    rows = x.shape[0]
    x = paddle.concat([x, paddle.zeros([rows, width, 1], dtype=x.dtype)], axis=-1).flatten(1)
    x = paddle.concat([x, paddle.zeros([rows, width - 1], dtype=x.dtype)], axis=-1)
    x = x.reshape([-1, width + 1, 2 * width - 1])[:, :width, width - 1:]
    x = x.reshape([batch, height, 1, width, width]).expand([batch, height, height, width, width])
    return x.transpose(permute)


class PosEmbedRel(nn.Layer):
    """2-D relative position logits from per-axis tables [2H - 1, d] and [2W - 1, d] (timm's PosEmbedRel)."""

    def __init__(self, feat_size, dim_head: int, scale: float):
        super().__init__()
        self.height, self.width = to_2tuple(feat_size)
        self.scale = scale
        self.height_rel = self.create_parameter([self.height * 2 - 1, dim_head])
        self.width_rel = self.create_parameter([self.width * 2 - 1, dim_head])

    def forward(self, q):
        batch, tokens, _ = q.shape
        q = q.reshape([batch, self.height, self.width, -1])
        rel_logits_w = rel_logits_1d(q, self.width_rel, permute=[0, 1, 3, 2, 4])
        q = q.transpose([0, 2, 1, 3])
        rel_logits_h = rel_logits_1d(q, self.height_rel, permute=[0, 3, 1, 4, 2])
        return (rel_logits_h + rel_logits_w).reshape([batch, tokens, tokens])


class BottleneckAttn(nn.Layer):
    """BoTNet's MHSA (timm's BottleneckAttn): one 1x1 qkv conv split [q | k | v] channel-wise (heads
    inside each part), softmax(q k^T * scale + rel(q)) v, then a 2x2 avg-pool when stride is 2.
    With `scale_pos_embed` the relative logits are scaled too: (q k^T + rel(q)) * scale."""

    def __init__(self, dim, dim_out=None, feat_size=None, stride=1, num_heads=4, dim_head=None, qk_ratio=1.0,
                 qkv_bias=False, scale_pos_embed=False):
        super().__init__()
        assert feat_size is not None, "BottleneckAttn needs the feature size its position tables are built for"
        dim_out = dim_out or dim
        assert dim_out % num_heads == 0
        self.num_heads = num_heads
        self.dim_head_qk = dim_head or make_divisible(dim_out * qk_ratio, divisor=8) // num_heads
        self.dim_head_v = dim_out // num_heads
        self.dim_out_qk = num_heads * self.dim_head_qk
        self.dim_out_v = num_heads * self.dim_head_v
        self.scale = self.dim_head_qk ** -0.5
        self.scale_pos_embed = scale_pos_embed

        self.qkv = nn.Conv2D(dim, self.dim_out_qk * 2 + self.dim_out_v, 1, bias_attr=None if qkv_bias else False)
        self.pos_embed = PosEmbedRel(feat_size, dim_head=self.dim_head_qk, scale=self.scale)
        self.pool = nn.AvgPool2D(2, 2, exclusive=False) if stride == 2 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self):
        trunc_normal_(self.qkv.weight, std=self.qkv.weight.shape[1] ** -0.5)
        trunc_normal_(self.pos_embed.height_rel, std=self.scale)
        trunc_normal_(self.pos_embed.width_rel, std=self.scale)

    def forward(self, x):
        batch, _, height, width = x.shape
        assert height == self.pos_embed.height and width == self.pos_embed.width, "input size differs from feat_size"
        q, k, v = paddle.split(self.qkv(x), [self.dim_out_qk, self.dim_out_qk, self.dim_out_v], axis=1)
        q = q.reshape([batch * self.num_heads, self.dim_head_qk, -1]).transpose([0, 2, 1])
        k = k.reshape([batch * self.num_heads, self.dim_head_qk, -1])
        v = v.reshape([batch * self.num_heads, self.dim_head_v, -1]).transpose([0, 2, 1])

        if self.scale_pos_embed:
            attn = (paddle.matmul(q, k) + self.pos_embed(q)) * self.scale
        else:
            attn = paddle.matmul(q, k) * self.scale + self.pos_embed(q)
        attn = F.softmax(attn, axis=-1)

        out = paddle.matmul(attn, v).transpose([0, 2, 1]).reshape([batch, self.dim_out_v, height, width])
        return self.pool(out)


class LayerChoices:
    """The per-model layer choices a block needs (timm's LayerFn): activation, channel and self-attention."""

    def __init__(self, cfg: ModelCfg):
        self.act = ACTIVATIONS[cfg.act_layer]
        self.attn = CHANNEL_ATTENTION[cfg.attn_layer] if cfg.attn_layer else None
        assert cfg.self_attn_layer in (None, "bottleneck"), f"unsupported self-attention {cfg.self_attn_layer!r}"
        self.self_attn_kwargs = dict(cfg.self_attn_kwargs)

    def conv_norm_act(self, in_chs, out_chs, kernel_size=1, stride=1, groups=1, apply_act=True):
        return ConvNormAct(in_chs, out_chs, kernel_size, stride, groups, apply_act, act_layer=self.act)


def make_shortcut(in_chs, out_chs, stride, layers: LayerChoices):
    """A 1x1 conv + BN projection when shape changes, else the identity (timm's 'conv1x1' downsample)."""
    if in_chs != out_chs or stride != 1:
        return layers.conv_norm_act(in_chs, out_chs, 1, stride=stride, apply_act=False)
    return nn.Identity()


def num_groups(group_size: int | None, channels: int) -> int:
    return channels // group_size if group_size else 1


class BottleneckBlock(nn.Layer):
    """1x1 - 3x3 (strided, maybe grouped) - channel attention - 1x1, residual, act (timm's BottleneckBlock)."""

    def __init__(self, in_chs, out_chs, stride, group_size, bottle_ratio, layers: LayerChoices):
        super().__init__()
        mid_chs = make_divisible(out_chs * bottle_ratio)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, layers)
        self.conv1_1x1 = layers.conv_norm_act(in_chs, mid_chs, 1)
        groups = num_groups(group_size, mid_chs)
        self.conv2_kxk = layers.conv_norm_act(mid_chs, mid_chs, 3, stride=stride, groups=groups)
        self.attn = layers.attn(mid_chs) if layers.attn else nn.Identity()
        self.conv3_1x1 = layers.conv_norm_act(mid_chs, out_chs, 1, apply_act=False)
        self.act = layers.act()

    def forward(self, x):
        shortcut = self.shortcut(x)
        x = self.conv3_1x1(self.attn(self.conv2_kxk(self.conv1_1x1(x))))
        return self.act(x + shortcut)


class SelfAttnBlock(nn.Layer):
    """1x1 - BottleneckAttn (strided by its avg-pool) - BN + act - 1x1, residual, act (timm's SelfAttnBlock).

    `feat_size` is the block's input size, which the relative position tables are built for. (timm
    applies a stage's group size only to an optional extra 3x3 conv, which no BoTNet uses.)
    """

    def __init__(self, in_chs, out_chs, stride, bottle_ratio, layers: LayerChoices, feat_size):
        super().__init__()
        mid_chs = make_divisible(out_chs * bottle_ratio)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, layers)
        self.conv1_1x1 = layers.conv_norm_act(in_chs, mid_chs, 1)
        self.self_attn = BottleneckAttn(mid_chs, stride=stride, feat_size=feat_size, **layers.self_attn_kwargs)
        self.post_attn = BatchNormAct2d(mid_chs, act_layer=layers.act)
        self.conv3_1x1 = layers.conv_norm_act(mid_chs, out_chs, 1, apply_act=False)
        self.act = layers.act()

    def forward(self, x):
        shortcut = self.shortcut(x)
        x = self.conv3_1x1(self.post_attn(self.self_attn(self.conv1_1x1(x))))
        return self.act(x + shortcut)


def make_stem(in_chs: int, cfg: ModelCfg, layers: LayerChoices):
    """timm's Stem for 'tiered' (3x3 convs to 3/8, 1/2, 1 x stem_chs) and '7x7' stems; overall stride 4.

    Without a pooling layer the last conv strides instead.
    """
    if cfg.stem_type == "tiered":
        kernel_size, widths = 3, (3 * cfg.stem_chs // 8, cfg.stem_chs // 2, cfg.stem_chs)
    elif cfg.stem_type == "7x7":
        kernel_size, widths = 7, (cfg.stem_chs,)
    else:
        raise ValueError(f"unsupported stem {cfg.stem_type!r}")
    strides = [2] + [1] * (len(widths) - 1)
    if not cfg.stem_pool:
        strides[-1] = 2
    named = []
    prev_chs = in_chs
    for i, (width, stride) in enumerate(zip(widths, strides)):
        named.append((f"conv{i + 1}", layers.conv_norm_act(prev_chs, width, kernel_size, stride=stride)))
        prev_chs = width
    if cfg.stem_pool:
        assert cfg.stem_pool == "maxpool", f"unsupported stem pool {cfg.stem_pool!r}"
        named.append(("pool", nn.MaxPool2D(kernel_size=3, stride=2, padding=1)))
    return nn.Sequential(*named), prev_chs


def expand_stage(stage) -> list[BlockCfg]:
    """A stage's blocks, one config per block."""
    stage = stage if isinstance(stage, tuple) else (stage,)
    return [block for cfg in stage for block in [cfg] * cfg.d]


class ClassifierHead(nn.Layer):
    """Global average pool + Linear (timm's ClassifierHead with pool 'avg')."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        return self.fc(x.mean(axis=(2, 3)))


class ByobNet(nn.Layer):
    """Stem, stages of bottleneck / self-attention blocks, optional final 1x1 conv, head (timm's ByobNet)."""

    def __init__(self, cfg: ModelCfg, img_size: int, num_classes: int = 1000, in_chans: int = 3,
                 zero_init_last: bool = True):
        super().__init__()
        assert cfg.downsample == "conv1x1" and cfg.width_factor == 1.0, "only what the BoTNets use is ported"
        layers = LayerChoices(cfg)
        self.stem, prev_chs = make_stem(in_chans, cfg, layers)
        feat_size = tuple(s // 4 for s in to_2tuple(img_size))  # both stems reduce by 4

        stages = []
        for stage in cfg.blocks:
            blocks = []
            for index, block in enumerate(expand_stage(stage)):
                stride = block.s if index == 0 else 1
                out_chs = make_divisible(block.c)
                if block.type == "bottle":
                    blocks.append(BottleneckBlock(prev_chs, out_chs, stride, block.gs, block.br, layers))
                elif block.type == "self_attn":
                    blocks.append(SelfAttnBlock(prev_chs, out_chs, stride, block.br, layers, feat_size))
                else:
                    raise ValueError(f"unsupported block type {block.type!r}")
                prev_chs = out_chs
                if stride > 1:
                    feat_size = tuple(s // stride for s in feat_size)
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

        if cfg.num_features:
            self.final_conv = layers.conv_norm_act(prev_chs, cfg.num_features, 1)
            prev_chs = cfg.num_features
        else:
            self.final_conv = nn.Identity()
        self.num_features = prev_chs
        self.head = ClassifierHead(prev_chs, num_classes)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool):
        """timm's init: fan-out normal convs, N(0, 0.01) Linear, residual-branch last BN zeroed."""
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                kh, kw = layer.weight.shape[2:]
                fan_out = kh * kw * layer.weight.shape[0] // layer._groups
                nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out))(layer.weight)
                if layer.bias is not None:
                    nn.initializer.Constant(0.0)(layer.bias)
            elif isinstance(layer, nn.Linear):
                nn.initializer.Normal(0.0, 0.01)(layer.weight)
                nn.initializer.Constant(0.0)(layer.bias)
        for layer in self.sublayers():
            if isinstance(layer, BottleneckAttn):
                layer.reset_parameters()
            elif zero_init_last and isinstance(layer, (BottleneckBlock, SelfAttnBlock)):
                nn.initializer.Constant(0.0)(layer.conv3_1x1.bn.weight)

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))

    def forward(self, x):
        return self.head(self.forward_features(x))


def botnet26t_256(img_size: int = 256, **kwargs):
    return ByobNet(configs.BOTNET26T, img_size=img_size, **kwargs)


def sebotnet33ts_256(img_size: int = 256, **kwargs):
    return ByobNet(configs.SEBOTNET33TS, img_size=img_size, **kwargs)


def eca_botnext26ts_256(img_size: int = 256, **kwargs):
    return ByobNet(configs.ECA_BOTNEXT26TS, img_size=img_size, **kwargs)


def botnet50ts_256(img_size: int = 256, **kwargs):
    return ByobNet(configs.BOTNET50TS, img_size=img_size, **kwargs)


def botnet50(img_size: int = 224, **kwargs):
    """Paper BoT50: ResNet-50 with MHSA in c5, c5 strided by a 2x2 avg-pool after the first MHSA."""
    return ByobNet(configs.BOTNET50, img_size=img_size, **kwargs)


def botnet50_s1(img_size: int = 224, **kwargs):
    """Paper BoT50-S1: BoT50 with c5 at stride 1."""
    return ByobNet(configs.BOTNET50_S1, img_size=img_size, **kwargs)
