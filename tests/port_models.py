"""Small torch models for the port's end-to-end tests (named as module:factory sources).

`tiny_net` has what a generated twin must get right: BatchNorm, dropout and drop-path layers, a
parameter used directly (a layer scale), a non-persistent buffer, shape arithmetic, a branch on
`self.training`, two instances of one class that differ only in numbers, a Linear, a module
shared by two parents.
"""
from __future__ import annotations

import timm
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, scale: float, drop: float, shared: nn.Module):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.fc = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), scale))
        self.drop = nn.Dropout(drop)
        self.drop_path = timm.layers.DropPath(drop)
        self.act = shared
        self.register_buffer("offsets", torch.arange(dim, dtype=torch.float32) / dim, persistent=False)
        self.dim = dim

    def forward(self, x):
        y = self.norm(self.conv(x)) + self.offsets.view(1, -1, 1, 1)
        batch, channels, height, width = y.shape
        y = self.fc(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(batch, channels, height, width)
        if self.training:
            y = y * 0.5
        return x + self.drop_path(self.drop(self.act(y)) * self.gamma.view(1, -1, 1, 1))


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 5, drop: float = 0.1):
        super().__init__()
        self.act = nn.GELU()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8, 1.0, drop, self.act), Block(8, 0.5, drop, self.act))
        self.down = nn.Conv2d(8, 16, 2, stride=2)
        self.last = Block(16, 0.25, drop, self.act)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.last(self.down(self.blocks(self.stem(x))))
        return self.head(x.mean((2, 3)))


def tiny_net(num_classes: int = 5, drop: float = 0.1) -> TinyNet:
    return TinyNet(num_classes, drop)


class Untranslatable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.special.i0(self.conv(x))


def untranslatable() -> Untranslatable:
    return Untranslatable()


class Windows(nn.Module):
    """Sizes torch computes from its input, three ways: a pad that only some sizes need (a branch),
    a window count it reshapes by (kept computed), and a count Python turns into a plain int (a
    number the traces saw, which the twin may only reuse where the input gives it again)."""

    def __init__(self, dim: int = 8, window: int = 5):
        super().__init__()
        self.window = window
        self.proj = nn.Conv2d(3, dim, 3, padding=1)
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        x = self.proj(x)
        batch, channels, height, width = x.shape
        pad_h, pad_w = (-height) % self.window, (-width) % self.window
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h))
        rows, columns = x.shape[2] // self.window, x.shape[3] // self.window
        windows = x.reshape(batch, channels, rows, self.window, columns, self.window).permute(0, 2, 4, 3, 5, 1)
        windows = self.mix(windows).permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, x.shape[2], x.shape[3])
        quarter = int(height // 4)
        return windows[:, :, :height, :width].mean((2, 3)) + x[:, :, :quarter].mean((1, 2, 3))[:, None]


def windows() -> Windows:
    return Windows()


class FixedSize(nn.Module):
    """Runs at one input size only: its Linear takes the flattened 4x4 map of a 16x16 input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.pool(self.conv(x)).flatten(1))


def fixed_size() -> FixedSize:
    return FixedSize()


def small_vit():
    """torchvision's VisionTransformer, small: its attention is nn.MultiheadAttention."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32,
                                                mlp_dim=64, num_classes=10)


class Reader(nn.Module):
    """A CRNN-like reader: conv features pooled over the height, a recurrent layer along the width."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((1, None))
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 5)
        self.lstm = isinstance(rnn, nn.LSTM)

    def forward(self, x):
        features = self.pool(self.conv(x)).squeeze(2).permute(0, 2, 1)  # [batch, width, channels]
        out, state = self.rnn(features)
        h = state[0] if self.lstm else state
        return self.head(out).mean(1) + h.sum(0).mean(-1, keepdim=True)


def lstm_reader() -> Reader:
    torch.manual_seed(0)
    return Reader(nn.LSTM(8, 12, num_layers=2, batch_first=True))


def gru_reader() -> Reader:
    torch.manual_seed(0)
    return Reader(nn.GRU(8, 10, num_layers=2, bidirectional=True, batch_first=True))
