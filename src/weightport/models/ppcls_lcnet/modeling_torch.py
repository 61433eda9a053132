"""Torch twins of PP-LCNet: timm's own `lcnet_*` (MobileNetV3 builder, `timm/models/mobilenetv3.py`)."""
import timm


def ppcls_pplcnet_x0_5(num_classes: int = 1000):
    return timm.create_model("lcnet_050", pretrained=False, num_classes=num_classes)


def ppcls_pplcnet_x0_75(num_classes: int = 1000):
    return timm.create_model("lcnet_075", pretrained=False, num_classes=num_classes)


def ppcls_pplcnet_x1_0(num_classes: int = 1000):
    return timm.create_model("lcnet_100", pretrained=False, num_classes=num_classes)
