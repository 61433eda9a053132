"""Paddle twin of PaddleClas's PP-LCNet (`ppcls/arch/backbone/legendary_models/pp_lcnet.py` @d178931).

The same layers, names and arithmetic as PaddleClas's `PPLCNet`, so that its released
`PPLCNet_x*_pretrained.pdparams` load strictly: a 3x3 stem `conv1`, five stages `blocks2` ...
`blocks6` of depthwise-separable blocks (`dw_conv`, optional `se`, `pw_conv`, each conv followed
by BatchNorm2D and hardswish; no residual), global average pooling, a 1x1 `last_conv` without bias,
hardswish, `Dropout(p=0.2, mode="downscale_in_infer")` (multiplies by 0.8 at inference) and `fc`.
Channel counts are `make_divisible(c * scale)`. PaddleClas's per-stage learning-rate multipliers and
stride list change no parameter or output and are left out.
"""
from __future__ import annotations

from ...frameworks import quiet_paddle_import

paddle = quiet_paddle_import()
nn = paddle.nn

# Per stage, per block: (depthwise kernel, input channels, output channels, stride, squeeze-excite),
# at scale 1.0.
STAGES = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor`, at least `divisor`, never more than 10 % below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNLayer(nn.Layer):
    """Conv (no bias, 'same' padding) + BatchNorm2D + hardswish."""

    def __init__(self, in_channels: int, kernel_size: int, out_channels: int, stride: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)
        self.act = nn.Hardswish()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    """Squeeze-excite: average, 1x1 conv to channels // 4, ReLU, 1x1 conv back, hardsigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        gate = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return x * gate


class DepthwiseSeparable(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int, use_se: bool):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = ConvBNLayer(in_channels, kernel_size, in_channels, stride, groups=in_channels)
        if use_se:
            self.se = SEModule(in_channels)
        self.pw_conv = ConvBNLayer(in_channels, 1, out_channels, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(nn.Layer):
    def __init__(self, scale: float = 1.0, class_num: int = 1000, dropout_prob: float = 0.2, class_expand: int = 1280):
        super().__init__()
        self.conv1 = ConvBNLayer(3, 3, make_divisible(16 * scale), 2)
        for stage, blocks in STAGES.items():
            setattr(self, stage, nn.Sequential(*[
                DepthwiseSeparable(make_divisible(c_in * scale), make_divisible(c_out * scale), stride, kernel, se)
                for kernel, c_in, c_out, stride, se in blocks
            ]))
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.last_conv = nn.Conv2D(make_divisible(STAGES["blocks6"][-1][2] * scale), class_expand, 1, bias_attr=False)
        self.act = nn.Hardswish()
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(class_expand, class_num)

    def forward(self, x):
        x = self.conv1(x)
        for stage in STAGES:
            x = getattr(self, stage)(x)
        x = self.dropout(self.act(self.last_conv(self.avg_pool(x))))
        return self.fc(self.flatten(x))


def ppcls_pplcnet_x0_5(num_classes: int = 1000):
    return PPLCNet(scale=0.5, class_num=num_classes)


def ppcls_pplcnet_x0_75(num_classes: int = 1000):
    return PPLCNet(scale=0.75, class_num=num_classes)


def ppcls_pplcnet_x1_0(num_classes: int = 1000):
    return PPLCNet(scale=1.0, class_num=num_classes)
