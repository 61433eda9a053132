"""Small torch models called otherwise than with one image batch (sources of tests/test_port_calling.py)."""
from __future__ import annotations

import torch
from torch import nn


class Structured(nn.Module):
    """Returns a dict holding a tensor and a nested tuple (with a None in it)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        features = self.conv(x)
        return {"features": features, "pair": (self.fc(features.mean((2, 3))), (features.amax((1, 2, 3)), None))}


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Linear(8, 4)
        self.right = nn.Linear(6, 4)

    def forward(self, left, right, scale: float = 2.0):
        return self.left(left) * scale + self.right(right)


class Tokens(nn.Module):
    """Token ids and a padding mask in, one vector per sequence out."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids, mask):
        mask = mask.to(torch.float32)
        kept = self.embed(ids) * mask.unsqueeze(-1)
        return self.fc(kept.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))


class Clip(nn.Module):
    """A video classifier: N x C x T x H x W in."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, (1, 3, 3), padding=(0, 1, 1))
        self.norm = nn.BatchNorm3d(6)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.norm(self.conv(x)))).flatten(1))


def structured():
    return Structured()


def two_inputs():
    return TwoInputs()


def tokens():
    return Tokens()


def clip():
    return Clip()
