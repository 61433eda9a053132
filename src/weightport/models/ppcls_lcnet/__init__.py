"""PP-LCNet in PaddleClas's layout (`ppcls/arch/backbone/legendary_models/pp_lcnet.py` @d178931) <-> timm `lcnet_*`.

The torch twins are timm's; the Paddle twins are written here after PaddleClas's `PPLCNet`, whose
package does not import on current Paddle. The networks are the same except at the head, which the
table handles: PaddleClas's `Dropout(p=0.2, mode="downscale_in_infer")` before `fc` multiplies by
0.8 at inference (the classifier weight is scaled by 1.25 on the way to Paddle), and timm's
`conv_head` has a bias where PaddleClas's `last_conv` has none (a zero bias converts, a trained one
is refused by name).
"""
from ..registry import ModelSpec, Preprocessing

# PaddleClas's evaluation transforms for PP-LCNet: resize the short side to 256, centre crop 224,
# bilinear (cv2), ImageNet mean/std.
_PADDLECLAS_EVAL = Preprocessing(interpolation="bilinear", crop_pct=224 / 256)
_TRAINING_DIFFERS = (
    "PaddleClas's Dropout(p=0.2, mode='downscale_in_infer') before fc scales at inference, timm at training: the table "
    "scales the fc weight by 1.25, so its gradient and optimizer steps differ; and timm's conv_head bias, which "
    "PaddleClas's last_conv lacks, learns in timm only"
)
_SCALES = {"x0_5": "lcnet_050", "x0_75": "lcnet_075", "x1_0": "lcnet_100"}

MODELS = [
    ModelSpec(
        name=f"ppcls_pplcnet_{scale}",
        family="ppcls_lcnet",
        table="ppcls_pplcnet",
        torch_factory=f"weightport.models.ppcls_lcnet.modeling_torch:ppcls_pplcnet_{scale}",
        paddle_factory=f"weightport.models.ppcls_lcnet.modeling_paddle:ppcls_pplcnet_{scale}",
        input_size=224,
        preprocessing=_PADDLECLAS_EVAL,
        description=f"PP-LCNet {scale[1:].replace('_', '.')}: timm `{timm_name}` <-> PaddleClas layout `PPLCNet_{scale}` "
                    "(pp_lcnet.py)",
        training_differs=_TRAINING_DIFFERS,
    )
    for scale, timm_name in _SCALES.items()
]
