"""A pair of small twins written for the tests: a conv, BatchNorm, a square Linear, a
non-square Linear and LayerNorm, with attribute names that differ between the two sides."""
from __future__ import annotations

from weightport.models.registry import ModelSpec

SPEC = ModelSpec(
    name="tiny_test_net",
    family="tests",
    table="tests/tiny_twins.toml",
    torch_factory="tests.tiny_twins:torch_tiny",
    paddle_factory="tests.tiny_twins:paddle_tiny",
    input_size=8,
    num_classes=5,
)


def torch_tiny(num_classes: int = 5):
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 6, 3, padding=1)
            self.stem_bn = nn.BatchNorm2d(6)
            self.square = nn.Linear(6, 6)  # a shape comparison cannot tell it needs transposing
            self.norm = nn.LayerNorm(6)
            self.head = nn.Linear(6, num_classes)

        def forward(self, x):
            x = torch.relu(self.stem_bn(self.stem(x))).mean((2, 3))
            return self.head(self.norm(self.square(x)))

    return TinyNet()


def paddle_tiny(num_classes: int = 5):
    from weightport.frameworks import quiet_paddle_import

    quiet_paddle_import()
    from tests.tiny_paddle_twin import TinyNet

    return TinyNet(num_classes)
