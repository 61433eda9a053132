"""PyTorch twin of the widely quoted ResNet-50-MHSA (leaderj1001/BottleneckTransformers `model.py`).

This is the BoTNet implementation that tutorials quote and port by hand; it is not
the paper's BoT50 nor timm's BottleneckAttn, and its checkpoints fit only this
computation. Attribute names follow the reference so that its state dicts load
strictly (`layer4.0.conv2.0.rel_h`, `layer1.0.shortcut.0.bias`, `fc.1.weight`, ...).

What the reference does, replicated here on purpose:

* Resolution is tracked in the constructor, not measured: the input size is halved
  by conv1, the max-pool and each stride-2 block, so layer4's first block gets MHSA
  at img_size/16 (14 at 224) and its two other blocks at img_size/32 (7). The
  reference truncates these with `int()`; sizes that are not multiples of 16 give
  position embeddings that do not fit the feature map, so the factory refuses them.
* All three layer4 blocks use MHSA instead of the 3x3 conv; the strided first
  block follows it with a 2x2 average pool (`conv2 = Sequential(MHSA, AvgPool2d)`).
  Layers 2-3 downsample in the 3x3 conv, and every projection shortcut's 1x1 conv
  has a bias (nn.Conv2d's default).
* MHSA unpacks NCHW as (n, C, width, height), so the names are swapped: `rel_h`
  is [1, heads, d, 1, W] and varies along the image width, `rel_w` is
  [1, heads, d, H, 1] and varies along the height.
* Logits are energy[i, j] = q_i . k_j + r_i . q_j with r = rel_h + rel_w: the
  position of query i against the *query* vector at key position j, with no
  1/sqrt(d) scaling anywhere; the softmax runs over j (the last axis).
* Dropout(0.3) sits before the classifier, so the Linear layer is `fc.1`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...layers import to_2tuple

EXPANSION = 4


class MHSA(nn.Module):
    """Multi-head self-attention over a fixed `height` x `width` map with learnt content-position logits."""

    def __init__(self, dim: int, height: int, width: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2d(dim, dim, kernel_size=1)
        self.key = nn.Conv2d(dim, dim, kernel_size=1)
        self.value = nn.Conv2d(dim, dim, kernel_size=1)
        # The reference's names: rel_h spans the width, rel_w the height (see the module docstring).
        self.rel_h = nn.Parameter(torch.randn([1, heads, dim // heads, 1, width]))
        self.rel_w = nn.Parameter(torch.randn([1, heads, dim // heads, height, 1]))

    def forward(self, x):
        batch, channels, height, width = x.shape
        head_dim = channels // self.heads
        q = self.query(x).reshape(batch, self.heads, head_dim, -1)
        k = self.key(x).reshape(batch, self.heads, head_dim, -1)
        v = self.value(x).reshape(batch, self.heads, head_dim, -1)

        content_content = torch.matmul(q.transpose(-2, -1), k)
        position = (self.rel_h + self.rel_w).reshape(1, self.heads, head_dim, -1)
        content_position = torch.matmul(position.transpose(-2, -1), q)
        attention = torch.softmax(content_content + content_position, dim=-1)

        out = torch.matmul(v, attention.transpose(-2, -1))
        return out.reshape(batch, channels, height, width)


class Bottleneck(nn.Module):
    """ResNet bottleneck; with `mhsa` its 3x3 conv becomes MHSA (then a 2x2 average pool when strided)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, heads: int = 4, mhsa: bool = False,
                 resolution: tuple[int, int] | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if mhsa:
            attention = [MHSA(planes, height=resolution[0], width=resolution[1], heads=heads)]
            if stride == 2:
                attention.append(nn.AvgPool2d(2, 2))
            self.conv2 = nn.Sequential(*attention)
        else:
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * EXPANSION:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * EXPANSION, kernel_size=1, stride=stride),
                nn.BatchNorm2d(planes * EXPANSION),
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


class ResNetMHSA(nn.Module):
    def __init__(self, depths, num_classes: int = 1000, img_size=224, heads: int = 4):
        super().__init__()
        img_h, img_w = to_2tuple(img_size)
        if img_h % 16 or img_w % 16:
            raise ValueError(
                f"img_size must be a multiple of 16 (the reference's position embeddings fit no other), got {img_size}"
            )
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.layer1 = _stage(64, 64, depths[0], stride=1)
        self.layer2 = _stage(256, 128, depths[1], stride=2)
        self.layer3 = _stage(512, 256, depths[2], stride=2)
        # layer4 starts on the stride-16 map: conv1, max-pool, layer2 and layer3 each halve it.
        self.layer4 = _stage(1024, 512, depths[3], stride=2, heads=heads, mhsa=True,
                             resolution=(img_h // 16, img_w // 16))

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Sequential(nn.Dropout(0.3), nn.Linear(512 * EXPANSION, num_classes))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def botnet50_mhsa(num_classes: int = 1000, img_size=224, heads: int = 4) -> ResNetMHSA:
    """The reference's `ResNet50(num_classes, resolution=(img_size, img_size), heads)`."""
    return ResNetMHSA((3, 4, 6, 3), num_classes=num_classes, img_size=img_size, heads=heads)
