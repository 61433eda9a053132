"""ResNet-50-MHSA, the BoTNet implementation that tutorials quote (leaderj1001/BottleneckTransformers)."""
from weightport.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

_MODULE = "weightport.models.botnet_mhsa"

MODELS = [
    ModelSpec(
        name="botnet50_mhsa",
        family="botnet_mhsa",
        table="botnet_mhsa",
        torch_factory=f"{_MODULE}.modeling_torch:botnet50_mhsa",
        paddle_factory=f"{_MODULE}.modeling_paddle:botnet50_mhsa",
        input_size=224,
        num_classes=1000,
        # The reference repo ships no data pipeline and reports CIFAR-10 results only; at its default
        # 224 input (ImageNet stem) we assume the usual ImageNet evaluation: bilinear, 0.875 crop.
        preprocessing=Preprocessing(interpolation="bilinear", crop_pct=0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description="ResNet-50 with MHSA in all layer4 blocks, as in leaderj1001/BottleneckTransformers model.py "
        "(ResNet50(resolution=(224, 224), heads=4); the repo itself reports CIFAR-10 only)",
    ),
]
