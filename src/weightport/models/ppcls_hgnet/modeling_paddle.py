"""Paddle twins of PP-HGNet and PP-HGNetV2 in PaddleClas's own layout.

Written after PaddleClas @d178931 `ppcls/arch/backbone/legendary_models/pp_hgnet.py` (PPHGNet_*)
and `pp_hgnet_v2.py` (PPHGNetV2_B*): the same layer names (`stem.N` / `stem.stem1`,
`stages.i.blocks.j.layers.k`, `aggregation_conv` + `att` or `aggregation_squeeze_conv` +
`aggregation_excitation_conv`, `last_conv`, `lab`, `fc`), defaults (BatchNorm momentum 0.9,
epsilon 1e-5; `use_last_conv=True`, `class_expand=2048`), parameter attributes (no weight decay
on BatchNorm, `lr_mult`, the LearnableAffineBlock's 0.01 learning rate) and forward arithmetic
(2x2 convs and max-pool of the V2 stem padded "SAME"; `Dropout(mode="downscale_in_infer")` before
`fc`), so PaddleClas's `.pdparams` load into them strictly. PaddleClas's `TheseusLayer` base only
adds feature-hook machinery without parameters; these twins are plain `nn.Layer`s.
"""
from __future__ import annotations

from weightport.frameworks import quiet_paddle_import

paddle = quiet_paddle_import()
nn = paddle.nn
ParamAttr = paddle.ParamAttr
L2Decay = paddle.regularizer.L2Decay
KaimingNormal = nn.initializer.KaimingNormal
Constant = nn.initializer.Constant


def _init_weights(model) -> None:
    """PaddleClas's initialisation: Kaiming-normal convs, BatchNorm 1 / 0, Linear bias 0."""
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            KaimingNormal()(layer.weight)
        elif isinstance(layer, nn.BatchNorm2D):
            Constant(1.0)(layer.weight)
            Constant(0.0)(layer.bias)
        elif isinstance(layer, nn.Linear):
            Constant(0.0)(layer.bias)


class _Head(nn.Layer):
    """What both versions share after the stages: pool, the optional 1x1 `last_conv` + ReLU (+ LAB
    for V2) and a downscale-in-infer dropout, flatten, `fc`. Its layers are attributes of the model
    itself in PaddleClas, so the models below inherit from it rather than hold it."""

    def _build_head(self, in_channels: int, use_last_conv: bool, class_expand: int, dropout_prob: float,
                    class_num: int, use_lab: bool = False) -> None:
        self.use_last_conv = use_last_conv
        self.class_expand = class_expand
        self.use_lab = use_lab
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        if use_last_conv:
            self.last_conv = nn.Conv2D(in_channels, class_expand, kernel_size=1, stride=1, padding=0, bias_attr=False)
            self.act = nn.ReLU()
            if use_lab:
                self.lab = LearnableAffineBlock()
            # At inference this multiplies by 1 - dropout_prob (the table folds that into fc for timm).
            self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(class_expand if use_last_conv else in_channels, class_num)

    def _head(self, x):
        x = self.avg_pool(x)
        if self.use_last_conv:
            x = self.act(self.last_conv(x))
            if self.use_lab:
                x = self.lab(x)
            x = self.dropout(x)
        return self.fc(self.flatten(x))


# --- PP-HGNet (pp_hgnet.py) -------------------------------------------------------------------------


class ConvBNAct(nn.Layer):
    """PP-HGNet's conv (no bias, padding (k - 1) // 2) + BatchNorm (no weight decay) + optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, groups=1, use_act=True):
        super().__init__()
        self.use_act = use_act
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels, weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
                                 bias_attr=ParamAttr(regularizer=L2Decay(0.0)))
        if use_act:
            self.act = nn.ReLU()

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.use_act else x


class ESEModule(nn.Layer):
    """Effective squeeze-excitation: global average, a 1x1 conv with bias, sigmoid gate."""

    def __init__(self, channels):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv = nn.Conv2D(channels, channels, kernel_size=1, stride=1, padding=0)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return paddle.multiply(x, self.sigmoid(self.conv(self.avg_pool(x))))


class HG_Block(nn.Layer):
    """layer_num 3x3 ConvBNActs in a chain, the input and every output concatenated, a 1x1
    aggregation conv, ESE, and the identity added in all but a stage's first block."""

    def __init__(self, in_channels, mid_channels, out_channels, layer_num, identity=False):
        super().__init__()
        self.identity = identity
        self.layers = nn.LayerList(
            [ConvBNAct(in_channels if i == 0 else mid_channels, mid_channels, kernel_size=3, stride=1)
             for i in range(layer_num)])
        self.aggregation_conv = ConvBNAct(in_channels + layer_num * mid_channels, out_channels, kernel_size=1, stride=1)
        self.att = ESEModule(out_channels)

    def forward(self, x):
        identity = x
        outputs = [x]
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        x = self.att(self.aggregation_conv(paddle.concat(outputs, axis=1)))
        return x + identity if self.identity else x


class HG_Stage(nn.Layer):
    """An optional stride-2 depthwise 3x3 ConvBN (no activation), then block_num HG_Blocks."""

    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num, downsample=True):
        super().__init__()
        self.downsample = (ConvBNAct(in_channels, in_channels, kernel_size=3, stride=2, groups=in_channels,
                                     use_act=False) if downsample else None)
        self.blocks = nn.Sequential(
            *[HG_Block(in_channels if i == 0 else out_channels, mid_channels, out_channels, layer_num, identity=i > 0)
              for i in range(block_num)])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNet(_Head):
    """PP-HGNet: a stem of 3x3 ConvBNActs (the first stride 2) and a 3x3/2 max-pool, four HG_Stages,
    the shared head."""

    def __init__(self, stem_channels, stage_config, layer_num, use_last_conv=True, class_expand=2048,
                 dropout_prob=0.0, class_num=1000):
        super().__init__()
        channels = [3, *stem_channels]
        self.stem = nn.Sequential(
            *[ConvBNAct(channels[i], channels[i + 1], kernel_size=3, stride=2 if i == 0 else 1)
              for i in range(len(channels) - 1)])
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = nn.LayerList(
            [HG_Stage(in_c, mid_c, out_c, blocks, layer_num, downsample)
             for in_c, mid_c, out_c, blocks, downsample in stage_config.values()])
        self._build_head(stage_config["stage4"][2], use_last_conv, class_expand, dropout_prob, class_num)
        _init_weights(self)

    def forward(self, x):
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self._head(x)


# in_channels, mid_channels, out_channels, blocks, downsample
PPHGNET_CONFIGS = {
    "tiny": dict(stem_channels=[48, 48, 96], layer_num=5, dropout_prob=0.0, stage_config={
        "stage1": [96, 96, 224, 1, False], "stage2": [224, 128, 448, 1, True],
        "stage3": [448, 160, 512, 2, True], "stage4": [512, 192, 768, 1, True]}),
    "small": dict(stem_channels=[64, 64, 128], layer_num=6, dropout_prob=0.0, stage_config={
        "stage1": [128, 128, 256, 1, False], "stage2": [256, 160, 512, 1, True],
        "stage3": [512, 192, 768, 2, True], "stage4": [768, 224, 1024, 1, True]}),
    "base": dict(stem_channels=[96, 96, 160], layer_num=7, dropout_prob=0.2, stage_config={
        "stage1": [160, 192, 320, 1, False], "stage2": [320, 224, 640, 2, True],
        "stage3": [640, 256, 960, 3, True], "stage4": [960, 288, 1280, 2, True]}),
}


# --- PP-HGNetV2 (pp_hgnet_v2.py) --------------------------------------------------------------------


class LearnableAffineBlock(nn.Layer):
    """scale * x + bias with scalar parameters, trained at lr_mult x lab_lr of the learning rate."""

    def __init__(self, scale_value=1.0, bias_value=0.0, lr_mult=1.0, lab_lr=0.01):
        super().__init__()
        self.scale = self.create_parameter(shape=[1], default_initializer=Constant(scale_value),
                                           attr=ParamAttr(learning_rate=lr_mult * lab_lr))
        self.bias = self.create_parameter(shape=[1], default_initializer=Constant(bias_value),
                                          attr=ParamAttr(learning_rate=lr_mult * lab_lr))

    def forward(self, x):
        return self.scale * x + self.bias


class ConvBNActV2(nn.Layer):
    """PP-HGNetV2's ConvBNAct: padding (k - 1) // 2 unless given as a string ("SAME"), the LAB after
    the ReLU where use_lab, lr_mult on every parameter."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, groups=1, use_act=True,
                 use_lab=False, lr_mult=1.0):
        super().__init__()
        self.use_act = use_act
        self.use_lab = use_lab
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride,
                              padding=padding if isinstance(padding, str) else (kernel_size - 1) // 2,
                              groups=groups, weight_attr=ParamAttr(learning_rate=lr_mult), bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels,
                                 weight_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
                                 bias_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult))
        if use_act:
            self.act = nn.ReLU()
            if use_lab:
                self.lab = LearnableAffineBlock(lr_mult=lr_mult)

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.use_act:
            x = self.act(x)
            if self.use_lab:
                x = self.lab(x)
        return x


class LightConvBNAct(nn.Layer):
    """A 1x1 ConvBN (no activation), then a depthwise kxk ConvBNAct."""

    def __init__(self, in_channels, out_channels, kernel_size, use_lab=False, lr_mult=1.0):
        super().__init__()
        self.conv1 = ConvBNActV2(in_channels, out_channels, kernel_size=1, use_act=False, use_lab=use_lab,
                                 lr_mult=lr_mult)
        self.conv2 = ConvBNActV2(out_channels, out_channels, kernel_size=kernel_size, groups=out_channels,
                                 use_act=True, use_lab=use_lab, lr_mult=lr_mult)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class StemBlock(nn.Layer):
    """stem1 (3x3/2); a branch of two 2x2 convs and a 2x2/1 max-pool, both padded "SAME" (one row and
    column after: the pool ignores them, the convs read zeros), concatenated; stem3 (3x3/2); stem4 (1x1)."""

    def __init__(self, in_channels, mid_channels, out_channels, use_lab=False, lr_mult=1.0):
        super().__init__()
        self.stem1 = ConvBNActV2(in_channels, mid_channels, kernel_size=3, stride=2, use_lab=use_lab, lr_mult=lr_mult)
        self.stem2a = ConvBNActV2(mid_channels, mid_channels // 2, kernel_size=2, stride=1, padding="SAME",
                                  use_lab=use_lab, lr_mult=lr_mult)
        self.stem2b = ConvBNActV2(mid_channels // 2, mid_channels, kernel_size=2, stride=1, padding="SAME",
                                  use_lab=use_lab, lr_mult=lr_mult)
        self.stem3 = ConvBNActV2(mid_channels * 2, mid_channels, kernel_size=3, stride=2, use_lab=use_lab,
                                 lr_mult=lr_mult)
        self.stem4 = ConvBNActV2(mid_channels, out_channels, kernel_size=1, stride=1, use_lab=use_lab, lr_mult=lr_mult)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x):
        x = self.stem1(x)
        branch = self.stem2b(self.stem2a(x))
        x = paddle.concat([self.pool(x), branch], 1)
        return self.stem4(self.stem3(x))


class HGV2_Block(nn.Layer):
    """layer_num ConvBNActs (or light blocks) in a chain, the input and every output concatenated,
    squeeze (1x1 to out / 2) and excitation (1x1 to out) ConvBNActs, the identity added in all but a
    stage's first block."""

    def __init__(self, in_channels, mid_channels, out_channels, kernel_size=3, layer_num=6, identity=False,
                 light_block=True, use_lab=False, lr_mult=1.0):
        super().__init__()
        self.identity = identity
        layers = []
        for i in range(layer_num):
            block_in = in_channels if i == 0 else mid_channels
            if light_block:
                layers.append(LightConvBNAct(block_in, mid_channels, kernel_size, use_lab=use_lab, lr_mult=lr_mult))
            else:
                layers.append(ConvBNActV2(block_in, mid_channels, kernel_size=kernel_size, stride=1, use_lab=use_lab,
                                          lr_mult=lr_mult))
        self.layers = nn.LayerList(layers)
        self.aggregation_squeeze_conv = ConvBNActV2(in_channels + layer_num * mid_channels, out_channels // 2,
                                                    kernel_size=1, stride=1, use_lab=use_lab, lr_mult=lr_mult)
        self.aggregation_excitation_conv = ConvBNActV2(out_channels // 2, out_channels, kernel_size=1, stride=1,
                                                       use_lab=use_lab, lr_mult=lr_mult)

    def forward(self, x):
        identity = x
        outputs = [x]
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        x = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(paddle.concat(outputs, axis=1)))
        return x + identity if self.identity else x


class HGV2_Stage(nn.Layer):
    """An optional stride-2 depthwise 3x3 ConvBN (no activation, so no LAB), then block_num HGV2_Blocks."""

    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num=6, is_downsample=True,
                 light_block=True, kernel_size=3, use_lab=False, lr_mult=1.0):
        super().__init__()
        self.is_downsample = is_downsample
        if is_downsample:
            self.downsample = ConvBNActV2(in_channels, in_channels, kernel_size=3, stride=2, groups=in_channels,
                                          use_act=False, use_lab=use_lab, lr_mult=lr_mult)
        self.blocks = nn.Sequential(
            *[HGV2_Block(in_channels if i == 0 else out_channels, mid_channels, out_channels, kernel_size=kernel_size,
                         layer_num=layer_num, identity=i > 0, light_block=light_block, use_lab=use_lab, lr_mult=lr_mult)
              for i in range(block_num)])

    def forward(self, x):
        if self.is_downsample:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNetV2(_Head):
    """PP-HGNetV2: StemBlock, four HGV2_Stages, the shared head (with a LAB after last_conv's ReLU
    where use_lab)."""

    def __init__(self, stage_config, stem_channels=(3, 32, 64), use_lab=False, use_last_conv=True,
                 class_expand=2048, dropout_prob=0.0, class_num=1000, lr_mult_list=(1.0, 1.0, 1.0, 1.0, 1.0)):
        super().__init__()
        self.stem = StemBlock(*stem_channels, use_lab=use_lab, lr_mult=lr_mult_list[0])
        self.stages = nn.LayerList(
            [HGV2_Stage(in_c, mid_c, out_c, blocks, layer_num, downsample, light, kernel, use_lab,
                        lr_mult=lr_mult_list[i + 1])
             for i, (in_c, mid_c, out_c, blocks, downsample, light, kernel, layer_num)
             in enumerate(stage_config.values())])
        self._build_head(stage_config["stage4"][2], use_last_conv, class_expand, dropout_prob, class_num, use_lab)
        _init_weights(self)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self._head(x)


# in_channels, mid_channels, out_channels, blocks, is_downsample, light_block, kernel_size, layer_num
PPHGNETV2_CONFIGS = {
    "b0": dict(stem_channels=[3, 16, 16], use_lab=True, stage_config={
        "stage1": [16, 16, 64, 1, False, False, 3, 3], "stage2": [64, 32, 256, 1, True, False, 3, 3],
        "stage3": [256, 64, 512, 2, True, True, 5, 3], "stage4": [512, 128, 1024, 1, True, True, 5, 3]}),
    "b1": dict(stem_channels=[3, 24, 32], use_lab=True, stage_config={
        "stage1": [32, 32, 64, 1, False, False, 3, 3], "stage2": [64, 48, 256, 1, True, False, 3, 3],
        "stage3": [256, 96, 512, 2, True, True, 5, 3], "stage4": [512, 192, 1024, 1, True, True, 5, 3]}),
    "b2": dict(stem_channels=[3, 24, 32], use_lab=True, stage_config={
        "stage1": [32, 32, 96, 1, False, False, 3, 4], "stage2": [96, 64, 384, 1, True, False, 3, 4],
        "stage3": [384, 128, 768, 3, True, True, 5, 4], "stage4": [768, 256, 1536, 1, True, True, 5, 4]}),
    "b3": dict(stem_channels=[3, 24, 32], use_lab=True, stage_config={
        "stage1": [32, 32, 128, 1, False, False, 3, 5], "stage2": [128, 64, 512, 1, True, False, 3, 5],
        "stage3": [512, 128, 1024, 3, True, True, 5, 5], "stage4": [1024, 256, 2048, 1, True, True, 5, 5]}),
    "b4": dict(stem_channels=[3, 32, 48], use_lab=False, stage_config={
        "stage1": [48, 48, 128, 1, False, False, 3, 6], "stage2": [128, 96, 512, 1, True, False, 3, 6],
        "stage3": [512, 192, 1024, 3, True, True, 5, 6], "stage4": [1024, 384, 2048, 1, True, True, 5, 6]}),
    "b5": dict(stem_channels=[3, 32, 64], use_lab=False, stage_config={
        "stage1": [64, 64, 128, 1, False, False, 3, 6], "stage2": [128, 128, 512, 2, True, False, 3, 6],
        "stage3": [512, 256, 1024, 5, True, True, 5, 6], "stage4": [1024, 512, 2048, 2, True, True, 5, 6]}),
    "b6": dict(stem_channels=[3, 48, 96], use_lab=False, stage_config={
        "stage1": [96, 96, 192, 2, False, False, 3, 6], "stage2": [192, 192, 512, 3, True, False, 3, 6],
        "stage3": [512, 384, 1024, 6, True, True, 5, 6], "stage4": [1024, 768, 2048, 3, True, True, 5, 6]}),
}


def _pphgnet(variant: str, num_classes: int = 1000, **kwargs):
    return PPHGNet(**{**PPHGNET_CONFIGS[variant], **kwargs}, class_num=num_classes)


def _pphgnetv2(variant: str, num_classes: int = 1000, **kwargs):
    return PPHGNetV2(**{**PPHGNETV2_CONFIGS[variant], **kwargs}, class_num=num_classes)


def ppcls_pphgnet_tiny(**kwargs):
    return _pphgnet("tiny", **kwargs)


def ppcls_pphgnet_small(**kwargs):
    return _pphgnet("small", **kwargs)


def ppcls_pphgnet_base(**kwargs):
    return _pphgnet("base", **kwargs)


def ppcls_pphgnetv2_b0(**kwargs):
    return _pphgnetv2("b0", **kwargs)


def ppcls_pphgnetv2_b1(**kwargs):
    return _pphgnetv2("b1", **kwargs)


def ppcls_pphgnetv2_b2(**kwargs):
    return _pphgnetv2("b2", **kwargs)


def ppcls_pphgnetv2_b3(**kwargs):
    return _pphgnetv2("b3", **kwargs)


def ppcls_pphgnetv2_b4(**kwargs):
    return _pphgnetv2("b4", **kwargs)


def ppcls_pphgnetv2_b5(**kwargs):
    return _pphgnetv2("b5", **kwargs)


def ppcls_pphgnetv2_b6(**kwargs):
    return _pphgnetv2("b6", **kwargs)
