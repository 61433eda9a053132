"""Paddle twins of the PaddleClas ResNets: PaddleClas's `legendary_models/resnet.py` (@d178931), ported.

Module names, shapes, defaults and arithmetic are PaddleClas's: `stem.N` / `blocks.N` / `fc`, each
conv a `ConvBNLayer` (`.conv`, bias-free, padding (k - 1) // 2; `.bn`, the old `paddle.nn.BatchNorm`:
epsilon 1e-5, momentum 0.9, parameters weight / bias / _mean / _variance), the first block of the
first stage always with a projection shortcut (`use_first_short_conv=True`), the vd shortcut's
AvgPool2D(2, stride, padding="SAME", ceil_mode=True, exclusive). PaddleClas's per-stage learning
rate multipliers, DiverseBranchBlock layers, NHWC layout, feature-returning hooks (TheseusLayer) and
fp16 guard are left out: none holds a parameter or changes an fp32 NCHW forward.
"""
from __future__ import annotations

import math

from weightport.frameworks import quiet_paddle_import

paddle = quiet_paddle_import()
nn = paddle.nn

# depth -> (block type, blocks per stage, input channels of each stage): PaddleClas's NET_CONFIG.
NET_CONFIG = {
    18: ("BasicBlock", (2, 2, 2, 2), (64, 64, 128, 256)),
    34: ("BasicBlock", (3, 4, 6, 3), (64, 64, 128, 256)),
    50: ("BottleneckBlock", (3, 4, 6, 3), (64, 256, 512, 1024)),
    101: ("BottleneckBlock", (3, 4, 23, 3), (64, 256, 512, 1024)),
    152: ("BottleneckBlock", (3, 8, 36, 3), (64, 256, 512, 1024)),
}
# version -> the stem's (in, out, kernel, stride) per ConvBNLayer.
STEM_CONFIG = {
    "vb": ((3, 64, 7, 2),),
    "vd": ((3, 32, 3, 2), (32, 32, 3, 1), (32, 64, 3, 1)),
}


class ConvBNLayer(nn.Layer):
    """Conv (bias-free) + BatchNorm (+ ReLU); in vd mode a 2x2 average pool does the striding first."""

    def __init__(self, num_channels, num_filters, filter_size, stride=1, groups=1, is_vd_mode=False, act=None):
        super().__init__()
        self.is_vd_mode = is_vd_mode
        self.act = act
        self.avg_pool = nn.AvgPool2D(kernel_size=2, stride=stride, padding="SAME", ceil_mode=True)
        self.conv = nn.Conv2D(num_channels, num_filters, filter_size, stride=1 if is_vd_mode else stride,
                              padding=(filter_size - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm(num_filters)
        self.relu = nn.ReLU()

    def forward(self, x):
        if self.is_vd_mode:
            x = self.avg_pool(x)
        x = self.bn(self.conv(x))
        return self.relu(x) if self.act else x


class BottleneckBlock(nn.Layer):
    """1x1 -> 3x3 (strided) -> 1x1 x4, plus the identity or a `short` projection."""

    def __init__(self, num_channels, num_filters, stride, shortcut=True, if_first=False):
        super().__init__()
        self.conv0 = ConvBNLayer(num_channels, num_filters, 1, act="relu")
        self.conv1 = ConvBNLayer(num_filters, num_filters, 3, stride=stride, act="relu")
        self.conv2 = ConvBNLayer(num_filters, num_filters * 4, 1)
        if not shortcut:
            self.short = ConvBNLayer(num_channels, num_filters * 4, 1, stride=stride, is_vd_mode=not if_first)
        self.relu = nn.ReLU()
        self.shortcut = shortcut

    def forward(self, x):
        short = x if self.shortcut else self.short(x)
        return self.relu(paddle.add(self.conv2(self.conv1(self.conv0(x))), short))


class BasicBlock(nn.Layer):
    """3x3 (strided) -> 3x3, plus the identity or a `short` projection."""

    def __init__(self, num_channels, num_filters, stride, shortcut=True, if_first=False):
        super().__init__()
        self.stride = stride
        self.conv0 = ConvBNLayer(num_channels, num_filters, 3, stride=stride, act="relu")
        self.conv1 = ConvBNLayer(num_filters, num_filters, 3)
        if not shortcut:
            self.short = ConvBNLayer(num_channels, num_filters, 1, stride=stride, is_vd_mode=not if_first)
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x):
        short = x if self.shortcut else self.short(x)
        return self.relu(paddle.add(self.conv1(self.conv0(x)), short))


BLOCKS = {"BasicBlock": BasicBlock, "BottleneckBlock": BottleneckBlock}


class ResNet(nn.Layer):
    """PaddleClas's ResNet: `version` "vb" (7x7 stem, strided 1x1 shortcuts) or "vd" (3x3 x3 stem,
    average-pooled shortcuts); the blocks of all four stages in one flat `blocks` Sequential."""

    def __init__(self, depth: int, version: str = "vb", stem_act: str = "relu", class_num: int = 1000):
        super().__init__()
        block_type, block_depth, num_channels = NET_CONFIG[depth]
        num_filters = (64, 128, 256, 512)
        channels_mult = 1 if num_channels[-1] == 256 else 4
        self.stem = nn.Sequential(*[
            ConvBNLayer(in_c, out_c, k, stride=s, act=stem_act) for in_c, out_c, k, s in STEM_CONFIG[version]
        ])
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        blocks = []
        for stage, depth_of_stage in enumerate(block_depth):
            # PaddleClas projects the first block of every stage, the first stage's too: 64 -> 64 in
            # ResNet18/34 (its default use_first_short_conv=True).
            shortcut = False
            for i in range(depth_of_stage):
                blocks.append(BLOCKS[block_type](
                    num_channels=num_channels[stage] if i == 0 else num_filters[stage] * channels_mult,
                    num_filters=num_filters[stage],
                    stride=2 if i == 0 and stage != 0 else 1,
                    shortcut=shortcut,
                    if_first=stage == i == 0 if version == "vd" else True,
                ))
                shortcut = True
        self.blocks = nn.Sequential(*blocks)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        features = num_channels[-1] * 2
        stdv = 1.0 / math.sqrt(features)
        self.fc = nn.Linear(features, class_num,
                            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-stdv, stdv)))

    def forward(self, x):
        x = self.max_pool(self.stem(x))
        x = self.blocks(x)
        return self.fc(self.flatten(self.avg_pool(x)))


def _resnet(depth: int, version: str, num_classes: int = 1000, **kwargs) -> ResNet:
    return ResNet(depth, version=version, class_num=num_classes, **kwargs)


def ppcls_resnet18(**kwargs):
    return _resnet(18, "vb", **kwargs)


def ppcls_resnet34(**kwargs):
    return _resnet(34, "vb", **kwargs)


def ppcls_resnet50(**kwargs):
    return _resnet(50, "vb", **kwargs)


def ppcls_resnet101(**kwargs):
    return _resnet(101, "vb", **kwargs)


def ppcls_resnet152(**kwargs):
    return _resnet(152, "vb", **kwargs)


def ppcls_resnet18_vd(**kwargs):
    return _resnet(18, "vd", **kwargs)


def ppcls_resnet34_vd(**kwargs):
    return _resnet(34, "vd", **kwargs)


def ppcls_resnet50_vd(**kwargs):
    return _resnet(50, "vd", **kwargs)


def ppcls_resnet101_vd(**kwargs):
    return _resnet(101, "vd", **kwargs)


def ppcls_resnet152_vd(**kwargs):
    return _resnet(152, "vd", **kwargs)
