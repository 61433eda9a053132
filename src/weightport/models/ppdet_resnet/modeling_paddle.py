"""Paddle twins: PaddleDetection's dygraph ResNet backbone, and the BoTNet port built on it.

Written after PaddleDetection @666f597 `ppdet/modeling/backbones/resnet.py` (`ConvNormLayer`,
`BottleNeck`, `Blocks`, `ResNet`) and `name_adapter.py` (block names), down to parameter names,
shapes, defaults (BatchNorm2D epsilon 1e-5, momentum 0.9; the vd shortcut's AvgPool2D(2, 2,
ceil_mode=True) that excludes padding; the stem's max-pool 3/2/1), the frozen-norm and frozen-stage
settings, and the forward arithmetic, so that checkpoints saved by PaddleDetection load strictly.

Left out, because no registered model uses them: deformable convolution (`dcn_v2_stages`), the
SE variant (`std_senet`), `BasicBlock` (depths 18 and 34) and `sync_bn` (computes as `bn` on one
device). One addition: `ResNet(stage_blocks=...)` swaps a stage's block class, which is how the
BoTNet port replaces res5's 3x3 convolution by MHSA. `forward` takes PaddleDetection's input dict
`{"image": x}` or the image tensor itself.
"""
from __future__ import annotations

from numbers import Integral

from ...frameworks import quiet_paddle_import
from ...layers.paddle_layers import to_2tuple
from ..botnet_mhsa.modeling_paddle import MHSA

paddle = quiet_paddle_import()
nn = paddle.nn
F = nn.functional

RESNET_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
STAGE_WIDTHS = [64, 128, 256, 512]


def block_name(stage_num: int, count: int, index: int) -> str:
    """NameAdapter.fix_layer_warp_name: res4a, res4b1 ... res4b22 in a stage of more than ten
    blocks at res4, letters (res5a, res5b, ...) otherwise."""
    name = f"res{stage_num}"
    if count > 10 and stage_num == 4:
        return name + ("a" if index == 0 else f"b{index}")
    return name + chr(ord("a") + index)


def batch_norm(channels, norm_decay=0.0, freeze_norm=True, lr=1.0):
    """ConvNormLayer's BatchNorm2D: with `freeze_norm` it normalises with the running statistics in
    training too, and its scale and shift get no gradient (PaddleDetection's default)."""
    norm_lr = 0.0 if freeze_norm else lr
    attrs = [paddle.ParamAttr(learning_rate=norm_lr, regularizer=paddle.regularizer.L2Decay(norm_decay),
                              trainable=not freeze_norm) for _ in range(2)]
    norm = nn.BatchNorm2D(channels, weight_attr=attrs[0], bias_attr=attrs[1],
                          use_global_stats=True if freeze_norm else None)
    if freeze_norm:
        for param in norm.parameters():
            param.stop_gradient = True
    return norm


class ConvNormLayer(nn.Layer):
    """Bias-free conv ('same' padding for odd kernels), `batch_norm`, optional activation."""

    def __init__(self, ch_in, ch_out, filter_size, stride, groups=1, act=None, norm_type="bn",
                 norm_decay=0.0, freeze_norm=True, lr=1.0):
        super().__init__()
        if norm_type not in ("bn", "sync_bn"):
            raise ValueError(f"norm_type must be 'bn' or 'sync_bn', got {norm_type!r}")
        self.norm_type = norm_type
        self.act = act
        self.conv = nn.Conv2D(ch_in, ch_out, kernel_size=filter_size, stride=stride, padding=(filter_size - 1) // 2,
                              groups=groups, weight_attr=paddle.ParamAttr(learning_rate=lr), bias_attr=False)
        self.norm = batch_norm(ch_out, norm_decay, freeze_norm, lr)

    def forward(self, inputs):
        out = self.norm(self.conv(inputs))
        return getattr(F, self.act)(out) if self.act else out


class BottleNeck(nn.Layer):
    """1x1, 3x3 (strided in variants b-d, in the 1x1 for variant a), 1x1 x4; the projection
    shortcut average-pools before its 1x1 conv in variant d."""

    expansion = 4

    def __init__(self, ch_in, ch_out, stride, shortcut, variant="b", groups=1, base_width=4, lr=1.0,
                 norm_type="bn", norm_decay=0.0, freeze_norm=True):
        super().__init__()
        stride1, stride2 = (stride, 1) if variant == "a" else (1, stride)
        width = int(ch_out * (base_width / 64.0)) * groups
        norm = dict(norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm, lr=lr)
        self.branch2a = ConvNormLayer(ch_in, width, 1, stride1, act="relu", **norm)
        self.branch2b = ConvNormLayer(width, width, 3, stride2, groups=groups, act="relu", **norm)
        self.branch2c = ConvNormLayer(width, ch_out * self.expansion, 1, 1, **norm)
        self.shortcut = shortcut
        if not shortcut:
            if variant == "d" and stride == 2:
                self.short = nn.Sequential()
                self.short.add_sublayer("pool", nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True))
                self.short.add_sublayer("conv", ConvNormLayer(ch_in, ch_out * self.expansion, 1, 1, **norm))
            else:
                self.short = ConvNormLayer(ch_in, ch_out * self.expansion, 1, stride, **norm)

    def forward(self, inputs):
        out = self.branch2c(self.branch2b(self.branch2a(inputs)))
        short = inputs if self.shortcut else self.short(inputs)
        return F.relu(paddle.add(x=out, y=short))


class MHSABottleNeck(BottleNeck):
    """The BoTNet port's res5 block: `branch2b` is the leaderj1001-style MHSA (followed by a 2x2
    average pool where the block strides), then `branch2b_norm` and ReLU, as the reference's
    conv2 -> bn2 -> relu. `resolution` is the stage's input map; blocks after the strided one see half."""

    def __init__(self, ch_in, ch_out, stride, shortcut, resolution, heads=4, variant="b", groups=1, base_width=4,
                 lr=1.0, norm_type="bn", norm_decay=0.0, freeze_norm=True):
        super().__init__(ch_in, ch_out, stride, shortcut, variant=variant, groups=groups, base_width=base_width, lr=lr,
                         norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm)
        width = int(ch_out * (base_width / 64.0)) * groups
        height, width_px = resolution if stride == 2 else (resolution[0] // 2, resolution[1] // 2)
        attention = MHSA(width, height=height, width=width_px, heads=heads)
        self.branch2b = nn.Sequential(attention, nn.AvgPool2D(2, 2)) if stride == 2 else attention
        # The norm of the ConvNormLayer it replaces, with the same settings.
        self.branch2b_norm = batch_norm(width, norm_decay, freeze_norm, lr)

    def forward(self, inputs):
        out = F.relu(self.branch2b_norm(self.branch2b(self.branch2a(inputs))))
        out = self.branch2c(out)
        short = inputs if self.shortcut else self.short(inputs)
        return F.relu(paddle.add(x=out, y=short))


class Blocks(nn.Layer):
    """One stage: `count` blocks named by NameAdapter; the first strides (except in res2) and projects."""

    def __init__(self, block, ch_in, ch_out, count, stage_num, variant="b", groups=1, base_width=64, lr=1.0,
                 norm_type="bn", norm_decay=0.0, freeze_norm=True, **block_args):
        super().__init__()
        self.blocks = []
        for i in range(count):
            layer = self.add_sublayer(block_name(stage_num, count, i), block(
                ch_in=ch_in, ch_out=ch_out, stride=2 if i == 0 and stage_num != 2 else 1, shortcut=i != 0,
                variant=variant, groups=groups, base_width=base_width, lr=lr, norm_type=norm_type,
                norm_decay=norm_decay, freeze_norm=freeze_norm, **block_args))
            self.blocks.append(layer)
            if i == 0:
                ch_in = ch_out * block.expansion

    def forward(self, inputs):
        out = inputs
        for block in self.blocks:
            out = block(out)
        return out


class ResNet(nn.Layer):
    """PaddleDetection's `ResNet` backbone (bottleneck depths); returns the maps of `return_idx`.

    `stage_blocks` (not upstream) maps a stage index to (block class, extra constructor arguments)."""

    def __init__(self, depth=50, ch_in=64, variant="b", lr_mult_list=(1.0, 1.0, 1.0, 1.0), groups=1, base_width=64,
                 norm_type="bn", norm_decay=0.0, freeze_norm=True, freeze_at=0, return_idx=(0, 1, 2, 3),
                 num_stages=4, freeze_stem_only=False, stage_blocks=None):
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(RESNET_DEPTHS)} (bottleneck ResNets), got {depth!r}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be 1 to 4, got {num_stages!r}")
        return_idx = [return_idx] if isinstance(return_idx, Integral) else list(return_idx)
        if max(return_idx) >= num_stages:
            raise ValueError(f"the largest return index must be below num_stages ({num_stages}), got {return_idx}")
        if len(lr_mult_list) != 4:
            raise ValueError(f"lr_mult_list needs 4 entries, got {len(lr_mult_list)}")
        self._model_type = "ResNet" if groups == 1 else "ResNeXt"
        self.depth, self.variant, self.groups, self.base_width = depth, variant, groups, base_width
        self.norm_type, self.norm_decay, self.freeze_norm, self.freeze_at = norm_type, norm_decay, freeze_norm, freeze_at
        self.return_idx, self.num_stages = return_idx, num_stages
        norm = dict(norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm)

        stem_name = "res_conv1" if self._model_type == "ResNeXt" else "conv1"
        if variant in ("c", "d"):
            stem = [[3, ch_in // 2, 3, 2, "conv1_1"], [ch_in // 2, ch_in // 2, 3, 1, "conv1_2"],
                    [ch_in // 2, ch_in, 3, 1, "conv1_3"]]
        else:
            stem = [[3, ch_in, 7, 2, stem_name]]
        self.conv1 = nn.Sequential()
        for c_in, c_out, k, s, name in stem:
            self.conv1.add_sublayer(name, ConvNormLayer(c_in, c_out, k, s, act="relu", lr=1.0, **norm))

        self.ch_in = ch_in
        self._out_channels = [BottleNeck.expansion * v for v in STAGE_WIDTHS]
        self._out_strides = [4, 8, 16, 32]
        stage_blocks = stage_blocks or {}
        self.res_layers = []
        for i in range(num_stages):
            block, block_args = stage_blocks.get(i, (BottleNeck, {}))
            stage = self.add_sublayer(f"res{i + 2}", Blocks(
                block, self.ch_in, STAGE_WIDTHS[i], count=RESNET_DEPTHS[depth][i], stage_num=i + 2, variant=variant,
                groups=groups, base_width=base_width, lr=lr_mult_list[i], **norm, **block_args))
            self.res_layers.append(stage)
            self.ch_in = self._out_channels[i]

        if freeze_at >= 0:
            self._freeze_parameters(self.conv1)
            if not freeze_stem_only:
                for i in range(min(freeze_at + 1, num_stages)):
                    self._freeze_parameters(self.res_layers[i])

    @staticmethod
    def _freeze_parameters(layer):
        for param in layer.parameters():
            param.stop_gradient = True

    def forward(self, inputs):
        x = inputs["image"] if isinstance(inputs, dict) else inputs
        x = F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)
        outs = []
        for idx, stage in enumerate(self.res_layers):
            x = stage(x)
            if idx in self.return_idx:
                outs.append(x)
        return outs


def _backbone(depth: int, variant: str, num_classes=None, freeze_norm=False, freeze_at=-1, return_idx=(0, 1, 2, 3)):
    """The registered twins train like timm's: trainable BatchNorm on batch statistics, nothing frozen.
    PaddleDetection's defaults (freeze_norm=True, freeze_at=0) are accepted, and the torch twins then
    freeze the same. `num_classes` is accepted and unused, as by timm's features_only models."""
    return ResNet(depth=depth, variant=variant, norm_type="bn", freeze_norm=freeze_norm, freeze_at=freeze_at,
                  return_idx=return_idx, num_stages=4)


def ppdet_resnet50(**kwargs):
    return _backbone(50, "b", **kwargs)


def ppdet_resnet101(**kwargs):
    return _backbone(101, "b", **kwargs)


def ppdet_resnet50_vd(**kwargs):
    return _backbone(50, "d", **kwargs)


def ppdet_resnet101_vd(**kwargs):
    return _backbone(101, "d", **kwargs)


def ppdet_botnet50_mhsa(img_size=224, heads=4, num_classes=None, freeze_norm=False, freeze_at=-1,
                        return_idx=(0, 1, 2, 3)):
    """PaddleDetection's ResNet-50 (variant b) with MHSA in every res5 block, built for `img_size`
    (res5a's MHSA attends over the img_size/16 map, res5b/c over img_size/32)."""
    img_h, img_w = to_2tuple(img_size)
    if img_h % 16 or img_w % 16:
        raise ValueError(f"img_size must be a multiple of 16 (the position embeddings fit no other), got {img_size}")
    res5 = (MHSABottleNeck, {"resolution": (img_h // 16, img_w // 16), "heads": heads})
    return ResNet(depth=50, variant="b", norm_type="bn", freeze_norm=freeze_norm, freeze_at=freeze_at,
                  return_idx=return_idx, num_stages=4, stage_blocks={3: res5})
