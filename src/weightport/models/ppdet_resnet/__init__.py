"""PaddleDetection's ResNet backbones (variants b and d) against timm's feature extractors, and the
published BoTNet port's backbone (res5's 3x3 convs replaced by leaderj1001-style MHSA).

Paddle twins: PaddleDetection @666f597 `ppdet/modeling/backbones/resnet.py` (`ConvNormLayer`,
`BottleNeck`, `Blocks`, `ResNet`) and `name_adapter.py`, rewritten in `modeling_paddle.py`. Torch
twins: `timm.create_model(..., features_only=True, out_indices=(1, 2, 3, 4))` and the project's
botnet50_mhsa without its classifier. Both return the four maps of stages 2-5 (strides 4-32).
Detectors hold these weights under `backbone.`: `weightport convert ... --prefix backbone.`.
"""
from weightport.models.registry import ModelSpec, Preprocessing

_MODULE = "weightport.models.ppdet_resnet"
# Detectors resize whole images to their own scales; these are the ImageNet evaluations the backbones'
# classification checkpoints come from: timm's resnet configs (bicubic, crop 0.95) and, for the
# BoTNet, what botnet50_mhsa assumes (bilinear, 0.875).
_TIMM_RESNET = Preprocessing(interpolation="bicubic", crop_pct=0.95)
_BOTNET = Preprocessing(interpolation="bilinear", crop_pct=0.875)


def _spec(name: str, table: str, timm_name: str, preprocessing: Preprocessing, what: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="ppdet_resnet",
        table=table,
        torch_factory=f"{_MODULE}.modeling_torch:{name}",
        paddle_factory=f"{_MODULE}.modeling_paddle:{name}",
        input_size=224,
        num_classes=0,
        preprocessing=preprocessing,
        description=f"{what}: PaddleDetection ResNet backbone (ppdet resnet.py @666f597, four maps) <-> "
        f"timm `{timm_name}` features_only",
    )


MODELS = [
    _spec("ppdet_resnet50", "ppdet_resnet50", "resnet50", _TIMM_RESNET, "ResNet-50 (variant b)"),
    _spec("ppdet_resnet101", "ppdet_resnet101", "resnet101", _TIMM_RESNET, "ResNet-101 (variant b)"),
    _spec("ppdet_resnet50_vd", "ppdet_resnet50_vd", "resnet50d", _TIMM_RESNET, "ResNet-50-vd (variant d)"),
    _spec("ppdet_resnet101_vd", "ppdet_resnet101_vd", "resnet101d", _TIMM_RESNET, "ResNet-101-vd (variant d)"),
    ModelSpec(
        name="ppdet_botnet50_mhsa",
        family="ppdet_resnet",
        table="ppdet_botnet50_mhsa",
        torch_factory=f"{_MODULE}.modeling_torch:ppdet_botnet50_mhsa",
        paddle_factory=f"{_MODULE}.modeling_paddle:ppdet_botnet50_mhsa",
        input_size=224,
        num_classes=0,
        preprocessing=_BOTNET,
        description="BoTNet port's backbone: PaddleDetection ResNet-50 with leaderj1001-style MHSA as every res5 "
        "branch2b (four maps) <-> botnet50_mhsa without its classifier; twins for another input size take rel_h/rel_w resized",
        training_differs="the reference's projection shortcut convs have a bias that PaddleDetection's ConvNormLayer "
        "lacks: the table folds it into the following BatchNorm's running mean (exact in eval; in training the batch "
        "mean cancels it and the running means stay m - b apart), but it is trainable in torch and absent in Paddle",
    ),
]
