"""Ported OCR models against Paddle's own inference predictor, on a real photograph, at two sizes.

`weightport port` already checks a ported program against Paddle's executor; this script checks the
end a user sees: the folder's torch twin (`weightport.create_model(DIR, framework="torch")` with
`DIR/model.pth`) against `paddle.inference` running the released model as shipped, on a photograph
preprocessed as PaddleOCR does (resize, ImageNet normalisation; a detector at sizes divisible by 32,
a recogniser at height 48 and two widths). Prints one line per model and size; exit 1 when an error
exceeds 1e-4 of the output's largest magnitude.

    python scripts/paddle_port_photo.py PHOTO [--det DET_DIR] [--rec REC_DIR] [--cls CLS_DIR] [--work DIR]

(an orientation classifier is fed as PaddleOCR feeds it: height 48, normalised as a recogniser.)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

GATE = 1e-4
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def preprocessed(photo: Path, height: int, width: int, recogniser: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(photo) as image:
        array = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), np.float32) / 255.0
    array = (array - 0.5) / 0.5 if recogniser else (array - MEAN) / STD  # PaddleOCR's rec / det normalisation
    return array.transpose(2, 0, 1)[None].copy()


def paddle_predictor(model_dir: Path):
    from weightport.formats import paddle_inference
    from weightport.frameworks import quiet_paddle_import

    quiet_paddle_import()
    from paddle import inference

    program, params = paddle_inference.locate(model_dir)
    config = inference.Config(str(program), str(params))
    config.disable_gpu()
    config.disable_mkldnn()
    config.disable_glog_info()
    config.switch_ir_optim(False)  # Paddle's own kernels, without fusion passes
    predictor = inference.create_predictor(config)

    def run(batch: np.ndarray) -> np.ndarray:
        handle = predictor.get_input_handle(predictor.get_input_names()[0])
        handle.reshape(batch.shape)
        handle.copy_from_cpu(batch)
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    return run


def torch_twin(model_dir: Path, work: Path, name: str):
    import torch

    import weightport
    from weightport.port import port

    folder = work / name
    port(str(model_dir), folder, force=True, verify=False)
    model = weightport.create_model(str(folder), framework="torch")
    model.load_state_dict(torch.load(folder / "model.pth"), strict=True)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--det", type=Path)
    parser.add_argument("--rec", type=Path)
    parser.add_argument("--cls", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="weightport-photo-"))
    cases = []
    if args.det:
        cases += [("det", args.det, False, [(448, 640), (736, 1024)])]
    if args.rec:
        cases += [("rec", args.rec, True, [(48, 320), (48, 160)])]
    if args.cls:
        cases += [("cls", args.cls, True, [(48, 192), (48, 96)])]
    failed = False
    for name, model_dir, recogniser, sizes in cases:
        ours, theirs = torch_twin(model_dir, work, name), paddle_predictor(model_dir)
        for height, width in sizes:
            batch = preprocessed(args.photo, height, width, recogniser)
            reference, output = theirs(batch), ours(batch)
            error, scale = float(np.abs(reference - output).max()), float(np.abs(reference).max())
            passed = error <= GATE * scale
            failed |= not passed
            print(f"{name} {model_dir.name} {height}x{width}: output {list(reference.shape)}, max abs error {error:.3g} "
                  f"(largest magnitude {scale:.3g}, {error / scale if scale else 0:.2g} of it): {'pass' if passed else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
