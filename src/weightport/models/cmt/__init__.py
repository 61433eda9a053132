"""CMT (arXiv 2107.06263): the four released variants, each at the resolution it was trained at.

Reference: huawei-noah/Efficient-AI-Backbones `cmt_pytorch/cmt.py`. Its relative position biases
are sized by the input resolution; `resize.py` adapts them when converting to another `img_size`.
This module imports neither framework: it only registers the models and holds what both twins share.
"""
from weightport.errors import UserError
from weightport.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

STAGES = ("a", "b", "c", "d")  # suffixes of the reference's per-stage attributes (blocks_a, relative_pos_a, ...)


class ImageSizeError(UserError, ValueError):
    """An input size no CMT can be built for (a ValueError to callers, a one-line message in the CLI)."""


def check_img_size(img_size: int) -> None:
    """A stride-2 stem and four stride-2 patch embeddings need a positive multiple of 32.

    The reference accepts other sizes and fails later, in the forward pass or with relative
    position biases sized for key grids the spatial reduction never produces.
    """
    if not isinstance(img_size, int) or img_size <= 0 or img_size % 32:
        raise ImageSizeError(f"CMT needs an img_size that is a positive multiple of 32, got {img_size!r}")


# The reference evaluates with Resize(int(256 / 224 * size), bicubic) + CenterCrop(size)
# (cmt_pytorch/datasets.py build_transform), i.e. crop_pct 0.875 at every size; the 0.9 in its
# timm-style _cfg is never used by its evaluation.
_PREPROCESSING = Preprocessing(interpolation="bicubic", crop_pct=0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _spec(name: str, input_size: int, title: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="cmt",
        table="cmt",
        torch_factory=f"weightport.models.cmt.modeling_torch:{name}",
        paddle_factory=f"weightport.models.cmt.modeling_paddle:{name}",
        input_size=input_size,
        num_classes=1000,
        preprocessing=_PREPROCESSING,
        description=f"{title} at {input_size}px (huawei-noah/Efficient-AI-Backbones cmt_pytorch/cmt.py)",
    )


MODELS = [
    _spec("cmt_ti", 160, "CMT-Ti"),
    _spec("cmt_xs", 192, "CMT-XS"),
    _spec("cmt_s", 224, "CMT-S"),
    _spec("cmt_b", 256, "CMT-B"),
]
