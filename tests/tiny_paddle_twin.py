"""The tiny Paddle twin, self-contained (paddle only), so that a ported folder's modeling_paddle.py
can be this file's text (tests/test_pair.py); tests/tiny_twins.py builds it as a registered twin."""
from paddle import nn


class TinyNet(nn.Layer):
    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.conv = nn.Conv2D(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2D(6)
        self.mix = nn.Linear(6, 6)
        self.ln = nn.LayerNorm(6)
        self.classifier = nn.Linear(6, num_classes)

    def forward(self, x):
        x = nn.functional.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.classifier(self.ln(self.mix(x)))

