"""A small residual network and Paddle twins of it that are faithful in eval mode but wrong for
training, each in one way (`fault`): the kind of mistake `verify --train` exists to catch.

- "bn_momentum": `block2.bn1` keeps torch's momentum value (0.1) instead of Paddle's 1 - 0.1;
- "cut_residual": `block2`'s residual branch is added with its gradient stopped (`detach`);
- "unused_parameter": the Paddle twin creates `extra_scale`, which its forward never uses (the
  table fills it, so that weights convert and eval-mode outputs agree).

Both twins also hold a Dropout(0.5) before the head, which the training check must switch off.
"""
from __future__ import annotations

FAULTS = ("bn_momentum", "cut_residual", "unused_parameter")
WIDTH = 6


def torch_net(num_classes: int = 4, fault: str | None = None):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(WIDTH)
            self.conv2 = nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(WIDTH)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, WIDTH, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(WIDTH)
            self.block1, self.block2 = Block(), Block()
            self.drop = nn.Dropout(0.5)
            self.head = nn.Linear(WIDTH, num_classes)

        def forward(self, x):
            x = self.block2(self.block1(torch.relu(self.bn(self.stem(x)))))
            return self.head(self.drop(x.mean((2, 3))))

    return Net()


def paddle_net(num_classes: int = 4, fault: str | None = None):
    if fault not in (None, *FAULTS):
        raise ValueError(f"unknown fault {fault!r}")
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    nn, F = paddle.nn, paddle.nn.functional

    class Block(nn.Layer):
        def __init__(self, wrong: bool):
            super().__init__()
            self.conv1 = nn.Conv2D(WIDTH, WIDTH, 3, padding=1, bias_attr=False)
            self.bn1 = nn.BatchNorm2D(WIDTH, momentum=0.1 if wrong and fault == "bn_momentum" else 0.9)
            self.conv2 = nn.Conv2D(WIDTH, WIDTH, 3, padding=1, bias_attr=False)
            self.bn2 = nn.BatchNorm2D(WIDTH)
            self.cut = wrong and fault == "cut_residual"

        def forward(self, x):
            branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(x + (branch.detach() if self.cut else branch))

    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2D(3, WIDTH, 3, padding=1, bias_attr=False)
            self.bn = nn.BatchNorm2D(WIDTH)
            self.block1, self.block2 = Block(False), Block(True)
            self.drop = nn.Dropout(0.5)
            self.head = nn.Linear(WIDTH, num_classes)
            if fault == "unused_parameter":
                self.extra_scale = self.create_parameter([1], default_initializer=nn.initializer.Constant(1.0))

        def forward(self, x):
            x = self.block2(self.block1(F.relu(self.bn(self.stem(x)))))
            return self.head(self.drop(x.mean((2, 3))))

    return Net()
