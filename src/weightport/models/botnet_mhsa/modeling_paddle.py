"""Paddle twin of the widely quoted ResNet-50-MHSA (leaderj1001/BottleneckTransformers `model.py`).

Same modules, names and computation as `modeling_torch.py`, whose docstring lists the
reference's quirks kept on purpose (tracked resolution, swapped rel_h/rel_w names,
the r_i . q_j position term without scaling, the shortcut conv bias, Dropout at fc.0).
Only the framework differs: the classifier's weight is stored [in, out] and
BatchNorm keeps its statistics as `_mean` / `_variance`.
"""
from __future__ import annotations

from ...frameworks import quiet_paddle_import
from ...layers.paddle_layers import to_2tuple

paddle = quiet_paddle_import()
nn = paddle.nn
F = nn.functional

EXPANSION = 4


class MHSA(nn.Layer):
    """Multi-head self-attention over a fixed `height` x `width` map with learnt content-position logits."""

    def __init__(self, dim: int, height: int, width: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2D(dim, dim, kernel_size=1)
        self.key = nn.Conv2D(dim, dim, kernel_size=1)
        self.value = nn.Conv2D(dim, dim, kernel_size=1)
        # The reference's names: rel_h spans the width, rel_w the height; both start as N(0, 1) like torch.randn.
        standard_normal = nn.initializer.Normal(0.0, 1.0)
        self.rel_h = self.create_parameter([1, heads, dim // heads, 1, width], default_initializer=standard_normal)
        self.rel_w = self.create_parameter([1, heads, dim // heads, height, 1], default_initializer=standard_normal)

    def forward(self, x):
        batch, channels, height, width = x.shape
        head_dim = channels // self.heads
        q = self.query(x).reshape([batch, self.heads, head_dim, -1])
        k = self.key(x).reshape([batch, self.heads, head_dim, -1])
        v = self.value(x).reshape([batch, self.heads, head_dim, -1])

        content_content = paddle.matmul(q, k, transpose_x=True)
        position = (self.rel_h + self.rel_w).reshape([1, self.heads, head_dim, -1])
        content_position = paddle.matmul(position, q, transpose_x=True)
        attention = F.softmax(content_content + content_position, axis=-1)

        out = paddle.matmul(v, attention, transpose_y=True)
        return out.reshape([batch, channels, height, width])


class Bottleneck(nn.Layer):
    """ResNet bottleneck; with `mhsa` its 3x3 conv becomes MHSA (then a 2x2 average pool when strided)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, heads: int = 4, mhsa: bool = False,
                 resolution: tuple[int, int] | None = None):
        super().__init__()
        self.conv1 = nn.Conv2D(in_planes, planes, kernel_size=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(planes)
        if mhsa:
            attention = [MHSA(planes, height=resolution[0], width=resolution[1], heads=heads)]
            if stride == 2:
                attention.append(nn.AvgPool2D(2, 2))
            self.conv2 = nn.Sequential(*attention)
        else:
            self.conv2 = nn.Conv2D(planes, planes, kernel_size=3, stride=stride, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(planes)
        self.conv3 = nn.Conv2D(planes, planes * EXPANSION, kernel_size=1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(planes * EXPANSION)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * EXPANSION:
            self.shortcut = nn.Sequential(
                nn.Conv2D(in_planes, planes * EXPANSION, kernel_size=1, stride=stride),
                nn.BatchNorm2D(planes * EXPANSION),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _stage(in_planes: int, planes: int, depth: int, stride: int, heads: int = 4, mhsa: bool = False,
           resolution: tuple[int, int] | None = None) -> nn.Sequential:
    """`depth` bottlenecks; the first strides, and an MHSA stage's later blocks see the halved map."""
    blocks = []
    for index in range(depth):
        block_stride = stride if index == 0 else 1
        blocks.append(Bottleneck(in_planes, planes, block_stride, heads, mhsa, resolution))
        if mhsa and block_stride == 2:
            resolution = (resolution[0] // 2, resolution[1] // 2)
        in_planes = planes * EXPANSION
    return nn.Sequential(*blocks)


class ResNetMHSA(nn.Layer):
    def __init__(self, depths, num_classes: int = 1000, img_size=224, heads: int = 4):
        super().__init__()
        img_h, img_w = to_2tuple(img_size)
        if img_h % 16 or img_w % 16:
            raise ValueError(
                f"img_size must be a multiple of 16 (the reference's position embeddings fit no other), got {img_size}"
            )
        self.conv1 = nn.Conv2D(3, 64, kernel_size=7, stride=2, padding=3, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        self.layer1 = _stage(64, 64, depths[0], stride=1)
        self.layer2 = _stage(256, 128, depths[1], stride=2)
        self.layer3 = _stage(512, 256, depths[2], stride=2)
        # layer4 starts on the stride-16 map: conv1, max-pool, layer2 and layer3 each halve it.
        self.layer4 = _stage(1024, 512, depths[3], stride=2, heads=heads, mhsa=True,
                             resolution=(img_h // 16, img_w // 16))

        self.avgpool = nn.AdaptiveAvgPool2D((1, 1))
        # Dropout at index 0 keeps the classifier's keys at fc.1.*, as in the reference.
        self.fc = nn.Sequential(nn.Dropout(0.3), nn.Linear(512 * EXPANSION, num_classes))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = paddle.flatten(self.avgpool(x), 1)
        return self.fc(x)


def botnet50_mhsa(num_classes: int = 1000, img_size=224, heads: int = 4) -> ResNetMHSA:
    """The reference's `ResNet50(num_classes, resolution=(img_size, img_size), heads)`."""
    return ResNetMHSA((3, 4, 6, 3), num_classes=num_classes, img_size=img_size, heads=heads)
