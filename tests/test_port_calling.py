"""`weightport port` (torch -> Paddle) for models called otherwise than with one image batch, and
for Hugging Face transformers models: keyword inputs, several inputs, token ids, video clips,
outputs that are dicts, nested tuples or ModelOutputs, and save_pretrained checkpoints.

Models are small (tests/calling_models.py, tiny transformers configs), so each port takes seconds.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

import weightport
from weightport.conversion import convert
from weightport.errors import UserError
from weightport.frameworks import quiet_paddle_import
from weightport.models.inputs import InputSpec, arrays, example_inputs
from weightport.parity.verification import verify
from weightport.port import port

paddle = quiet_paddle_import()
REPO = Path(__file__).resolve().parent.parent
VIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32, patch_size=8, num_labels=10)
BERT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)


def _outputs(result) -> dict[str, float]:
    return {o.name: o.metrics.max_abs for model in result.verify.models for o in model.outputs}


def test_example_inputs_resize_only_floating_inputs_of_four_dimensions_or_more():
    specs = [InputSpec("clip", (1, 3, 8, 112, 112), keyword=True), InputSpec("image", (1, 3, 64, 64)),
             InputSpec("ids", (1, 7), "int64", 5, 9, keyword=True), InputSpec("vector", (1, 6), keyword=True)]
    with pytest.raises(Exception, match="positional inputs come before keyword ones"):
        example_inputs(specs, 32)
    args, kwargs = example_inputs([specs[1], specs[0], *specs[2:]], 32, batch=3)
    assert [tuple(a.shape) for a in args] == [(3, 3, 32, 32)]
    assert {k: tuple(v.shape) for k, v in kwargs.items()} == {"clip": (3, 3, 8, 32, 32), "ids": (3, 7), "vector": (3, 6)}
    assert kwargs["ids"].dtype == torch.int64 and 5 <= int(kwargs["ids"].min()) and int(kwargs["ids"].max()) < 9
    again = arrays([specs[1], specs[0], *specs[2:]], 32, batch=3)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(again, [*args, *kwargs.values()], strict=True))


@pytest.mark.slow
def test_a_transformers_vit_ports_and_its_save_pretrained_files_convert_into_the_folder(tmp_path):
    torch.manual_seed(0)
    reference = transformers.ViTForImageClassification(transformers.ViTConfig(**VIT)).eval()
    reference.save_pretrained(tmp_path / "saved")
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()

    folder = tmp_path / "vit"
    result = port("transformers:ViTForImageClassification", folder, model_args=VIT,
                  torch_ckpt=str(tmp_path / "saved" / "model.safetensors"))
    assert result.passed and set(_outputs(result)) == {"logits"}
    manifest = json.loads((folder / "weightport.json").read_text())
    assert manifest["inputs"] == [{"name": "pixel_values", "shape": [2, 3, 32, 32], "dtype": "float32", "keyword": True}]
    assert manifest["num_classes"] == 10 and manifest["torch"]["checkpoint_keys"]  # the saved files' legacy names

    twin = weightport.create_model(str(folder), "paddle")
    assert set(twin.state_dict()) == set(reference.state_dict())  # the transformers model's own keys
    twin.set_state_dict(paddle.load(str(folder / "model.pdparams")))
    pixels = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(pixel_values=torch.from_numpy(pixels)).logits.numpy()
    got = twin(pixel_values=paddle.to_tensor(pixels))
    assert list(got) == ["logits"]
    assert np.abs(got["logits"].numpy() - expected).max() < 1e-5

    convert(str(folder), str(tmp_path / "sharded"), str(tmp_path / "sharded.pdparams"))
    single, sharded = paddle.load(str(folder / "model.pdparams")), paddle.load(str(tmp_path / "sharded.pdparams"))
    assert single.keys() == sharded.keys() and all(np.array_equal(single[k], sharded[k]) for k in single)


@pytest.mark.slow
def test_bert_takes_token_ids_and_a_mask_and_verify_reports_each_named_output(tmp_path):
    result = port("transformers:BertModel", tmp_path / "bert", model_args=BERT)
    assert result.passed
    errors = _outputs(result)
    assert list(errors) == ["last_hidden_state", "pooler_output"] and max(errors.values()) < 1e-5
    inputs = json.loads((tmp_path / "bert" / "weightport.json").read_text())["inputs"]
    assert [(i["name"], i["dtype"], i["range"]) for i in inputs] == [("input_ids", "int64", [0, 99]), ("attention_mask", "int64", [0, 2])]
    again = verify(str(tmp_path / "bert"), seed=3, batch_size=3)
    assert again.passed and "input_ids=3x16 int64 in [0, 99)" in again.models[0].inputs


@pytest.mark.slow
def test_a_dict_with_a_nested_tuple_comes_out_of_the_twin_with_its_structure(tmp_path):
    result = port("tests.calling_models:structured", tmp_path / "structured", input_size=12)
    assert result.passed and list(_outputs(result)) == ["features", "pair[0]", "pair[1][0]"]
    twin = weightport.create_model(str(tmp_path / "structured"), "paddle")
    out = twin(paddle.randn([2, 3, 12, 12]))
    assert list(out) == ["features", "pair"] and len(out["pair"]) == 2 and out["pair"][1][1] is None


@pytest.mark.slow
def test_two_inputs_by_keyword_and_token_ids_in_range(tmp_path):
    two = [InputSpec("left", (2, 8), keyword=True), InputSpec("right", (2, 6), keyword=True)]
    assert port("tests.calling_models:two_inputs", tmp_path / "two", inputs=two).passed
    ids = [InputSpec("ids", (2, 7), "int64", 0, 50, keyword=True), InputSpec("mask", (2, 7), "int64", 0, 2, keyword=True)]
    result = port("tests.calling_models:tokens", tmp_path / "tokens", inputs=ids)
    assert result.passed and max(_outputs(result).values()) < 1e-5
    with pytest.raises(UserError, match="called with ids=2x7 int64"):
        verify(str(tmp_path / "tokens"), images=str(tmp_path))


@pytest.mark.slow
def test_a_video_clip_through_the_input_shape_option(tmp_path):
    folder = tmp_path / "clip"
    result = subprocess.run([sys.executable, "-m", "weightport", "port", "tests.calling_models:clip", "--input-shape", "1,3,4,16,16",
                             "--out", str(folder), "--json"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verify"]["passed"] and report["input_size"] == 16
    assert json.loads((folder / "weightport.json").read_text())["inputs"][0]["shape"] == [2, 3, 4, 16, 16]


def test_malformed_input_options_are_one_line_errors(tmp_path):
    for options, message in ((["--input-shape", "1,x,3"], "--input-shape '1,x,3'"),
                             (["--input-dtype", "int64:0"], "DTYPE:LOW:HIGH"),
                             (["--input-name", "a", "--input-shape", "1,2", "--input-shape", "1,3"], "name every input")):
        result = subprocess.run([sys.executable, "-m", "weightport", "port", "tests.calling_models:two_inputs", *options,
                                 "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "x").exists()
