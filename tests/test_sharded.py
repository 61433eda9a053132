"""Folders of shards: every layout read and written, broken indexes refused, nothing half-written."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from weightport.cli import cli
from weightport.errors import CheckpointError, UserError
from weightport.formats import read_checkpoint, write_sharded
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.sharded import LAYOUTS, parse_size, plan


def _tensors(count: int = 7, size: int = 1000, seed: int = 0) -> dict[str, LazyTensor]:
    rng = np.random.default_rng(seed)
    arrays = {f"layer{i}.weight": rng.standard_normal((size,)).astype(np.float32) for i in range(count)}
    arrays["steps"] = np.arange(3, dtype=np.int64)
    return {k: LazyTensor.of(v, "float32" if v.dtype == np.float32 else "int64") for k, v in arrays.items()}


def _same(a: dict[str, LazyTensor], b: dict[str, LazyTensor]) -> None:
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].load_contiguous().tobytes() == b[key].load_contiguous().tobytes(), key


@pytest.mark.parametrize("side, file_format", sorted(LAYOUTS))
def test_each_layout_is_written_in_planned_shards_and_read_back(tmp_path, side, file_format):
    tensors = _tensors()
    files = write_sharded(tmp_path / "out", list(tensors.items()), side, file_format, max_shard_size=13000)
    layout = LAYOUTS[side, file_format]
    assert [p.name for p in files] == [layout.shard_name(i, 4) for i in range(1, 5)] + [layout.index_name]
    assert all(p.stat().st_size <= 13000 for p in files[:-1])
    index = json.loads(files[-1].read_text())
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in tensors.values())
    for folder_or_index in (tmp_path / "out", files[-1]):
        checkpoint = read_checkpoint(folder_or_index)
        assert checkpoint.shards == tuple(p.name for p in files[:-1])
        _same(tensors, checkpoint.tensors)
    if layout.safetensors_format:
        import safetensors

        with safetensors.safe_open(str(files[0]), "np") as f:
            assert f.metadata() == {"format": layout.safetensors_format}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left


def test_everything_in_one_shard_is_one_file_without_index(tmp_path):
    tensors = _tensors()
    files = write_sharded(tmp_path / "out", list(tensors.items()), "paddle")
    assert [p.name for p in files] == ["model_state.pdparams"]
    _same(tensors, read_checkpoint(tmp_path / "out").tensors)


def test_plan_packs_greedily_and_puts_a_large_tensor_alone():
    small = LazyTensor.of(np.zeros(100, np.float32), "float32")  # 400 bytes
    large = LazyTensor.of(np.zeros(5000, np.float32), "float32")  # 20 kB, over the limit
    shards = plan([("a", small), ("b", small), ("big", large), ("c", small)], 6000)
    assert [[name for name, _ in shard] for shard in shards] == [["a", "b"], ["big"], ["c"]]


def test_sizes_use_decimal_units_as_hugging_face_does():
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("30MB") == 30 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1000") == 1000
    for bad in ("5 parsecs", "-1GB", "0", "GB"):
        with pytest.raises(UserError, match="max_shard_size="):
            parse_size(bad)


def test_folders_written_by_the_reference_libraries_are_read(tmp_path):
    """Hugging Face's safetensors shards (huggingface_hub's split) and the older torch.save'd .bin shards."""
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    state = {f"blocks.{i}.weight": torch.randn(50, 20).to(torch.bfloat16) for i in range(5)}
    state["blocks.0.weight"] = state["blocks.0.weight"].float()
    split = split_torch_state_dict_into_shards(state, max_shard_size=5000)
    assert split.is_sharded
    hf, legacy = tmp_path / "hf", tmp_path / "legacy"
    hf.mkdir()
    legacy.mkdir()
    bin_map = {}
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, hf / filename, metadata={"format": "pt"})
        bin_name = filename.replace("model", "pytorch_model").replace(".safetensors", ".bin")
        torch.save({n: state[n] for n in names}, legacy / bin_name)
        bin_map.update(dict.fromkeys(names, bin_name))
    (hf / "model.safetensors.index.json").write_text(json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename}))
    (legacy / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": bin_map}))
    for folder in (hf, legacy):
        checkpoint = read_checkpoint(folder)
        assert len(checkpoint.shards) == len(split.filename_to_tensors)
        assert sorted(checkpoint.tensors) == sorted(state)
        for name, tensor in state.items():
            got = checkpoint.tensors[name]
            assert got.dtype == str(tensor.dtype).removeprefix("torch.")
            want = tensor.view(torch.int16).numpy().view(np.uint16) if tensor.dtype == torch.bfloat16 else tensor.numpy()
            assert got.load().tobytes() == want.tobytes()


def _folder(tmp_path, name="src") -> tuple:
    folder = tmp_path / name
    write_sharded(folder, list(_tensors().items()), "paddle", "safetensors", max_shard_size=13000)
    index_path = folder / "model.safetensors.index.json"
    return folder, index_path, json.loads(index_path.read_text())


def _broken_missing_shard(folder, index_path, index):
    (folder / "model-00002-of-00004.safetensors").unlink()


def _broken_tensor_in_two_shards(folder, index_path, index):
    tensors = _tensors()
    write_sharded(folder / "extra", [("layer0.weight", tensors["layer0.weight"]), ("layer1.weight", tensors["layer1.weight"])],
                  "paddle", "safetensors")
    (folder / "extra" / "model.safetensors").rename(folder / "model-00004-of-00004.safetensors")


def _broken_unnamed_tensor(folder, index_path, index):
    del index["weight_map"]["steps"]
    index_path.write_text(json.dumps(index))


def _broken_wrong_shard(folder, index_path, index):
    index["weight_map"]["layer0.weight"] = "model-00003-of-00004.safetensors"
    index_path.write_text(json.dumps(index))


def _broken_shard_outside(folder, index_path, index):
    index["weight_map"]["layer0.weight"] = "../elsewhere.safetensors"
    index_path.write_text(json.dumps(index))


def _broken_no_weight_map(folder, index_path, index):
    index_path.write_text(json.dumps({"metadata": index["metadata"]}))


BROKEN = {
    "missing shard": (_broken_missing_shard, "names shard model-00002-of-00004.safetensors, which is missing"),
    "tensor in two shards": (_broken_tensor_in_two_shards, "is found in two shards"),
    "tensor the index does not name": (_broken_unnamed_tensor, "holds tensor 'steps', but the index does not name it"),
    "tensor in another shard than the index says": (_broken_wrong_shard, "but the index puts it in"),
    "shard outside the folder": (_broken_shard_outside, "not a file beside the index"),
    "no weight_map": (_broken_no_weight_map, "no weight_map"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_index_is_refused_with_exit_2_and_nothing_written(tmp_path, case):
    breaks, message = BROKEN[case]
    folder, index_path, index = _folder(tmp_path)
    breaks(folder, index_path, index)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(folder)
    for args in (["inspect", str(folder)], ["convert", "resnet50", str(folder), str(tmp_path / "out") + "/", "--to", "torch"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert message.split(",")[0] in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_an_existing_checkpoint_folder_is_replaced_only_with_force(tmp_path):
    folder, _, _ = _folder(tmp_path, "dst")
    (folder / "config.json").write_text("{}")
    before = sorted(p.name for p in folder.iterdir())
    tensors = list(_tensors(seed=1).items())
    with pytest.raises(UserError, match="already holds a checkpoint"):
        write_sharded(folder, tensors, "paddle")
    assert sorted(p.name for p in folder.iterdir()) == before
    files = write_sharded(folder, tensors, "paddle", force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model_state.pdparams"]  # the old shards gone
    _same(dict(tensors), read_checkpoint(folder).tensors)
    assert files == [folder / "model_state.pdparams"]


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_write_leaves_no_shard_under_its_final_name(tmp_path, existing):
    folder = tmp_path / "out"
    if existing:
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    written = []

    def interrupt(name, tensor):
        written.append(name)
        if len(written) == 4:  # half-way: two shards complete, the third begun
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sharded(folder, list(_tensors().items()), "torch", max_shard_size=13000, on_tensor=interrupt)
    assert written == ["layer0.weight", "layer1.weight", "layer2.weight", "layer3.weight"]
    if existing:
        assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    else:
        assert not folder.exists()


def _resnet50_hf_folder(folder):
    """torchvision's resnet50, random weights and BatchNorm statistics, as three Hugging Face safetensors shards."""
    import torch
    import torchvision
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    from weightport.models.weights import randomize_torch

    model = torchvision.models.resnet50()
    randomize_torch(model, seed=5)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    split = split_torch_state_dict_into_shards(state, max_shard_size=40 * 10**6)
    assert len(split.filename_to_tensors) == 3
    folder.mkdir()
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, folder / filename, metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename}))
    return model, state, torch


@pytest.mark.slow
def test_resnet50_from_hugging_face_shards_to_paddle_shards_and_back_bit_for_bit(tmp_path):
    from weightport.frameworks import quiet_paddle_import
    from weightport.testing import load_paddle_strictly

    model, state, torch = _resnet50_hf_folder(tmp_path / "hf")
    paddle = quiet_paddle_import()
    hf, pd, back = tmp_path / "hf", tmp_path / "pd", tmp_path / "back"
    result = CliRunner().invoke(cli, ["convert", "resnet50", f"{hf}/", f"{pd}/", "--to", "paddle", "--max-shard-size", "30MB", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["source_shards"] == 3 and summary["shards"][-1] == "model_state.pdparams.index.json"
    shards = sorted(pd.glob("model_state-*.pdparams"))
    assert len(shards) == len(summary["shards"]) - 1 >= 4
    union = {}
    for shard in shards:
        assert shard.stat().st_size <= 30 * 10**6
        union.update(paddle.load(str(shard)))
    twin = paddle.vision.models.resnet50()
    load_paddle_strictly(twin, union)
    twin.eval()
    batch = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    got = twin(paddle.to_tensor(batch)).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

    result = CliRunner().invoke(cli, ["convert", "resnet50", str(pd), f"{back}/", "--max-shard-size", "40MB", "--json"])
    assert result.exit_code == 0, result.output
    returned = read_checkpoint(back)
    assert len(returned.shards) == 3
    _same({k: LazyTensor.of(v.numpy(), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}, returned.tensors)


GIANT = '''
import torch, paddle

def torch_net():  # 2**36 values: 275 GB in float32, far beyond any machine's memory
    return torch.nn.Sequential(torch.nn.Embedding(2**23, 8192), torch.nn.LayerNorm(8192))

def paddle_net():
    return paddle.nn.Sequential(paddle.nn.Embedding(2**23, 8192), paddle.nn.LayerNorm(8192))
'''


@pytest.mark.slow
def test_the_layout_of_a_twin_beyond_the_machines_memory_is_read_without_allocating_it(tmp_path):
    import subprocess
    import sys

    (tmp_path / "giant.py").write_text(GIANT)
    script = (
        "from weightport.models.pair import TwinPair\n"
        "pair = TwinPair.from_factories('giant:torch_net', 'giant:paddle_net')\n"
        "twins = [pair.skeleton(side) for side in ('torch', 'paddle')]  # alive while memory is read\n"
        "for side in ('torch', 'paddle'):\n"
        "    print(side, pair.layout(side)['0.weight'])\n"
        "print(*[line for line in open('/proc/self/status') if line.startswith('RssAnon')])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines[0] == "torch ((8388608, 8192), 'float32')" and lines[1] == "paddle ((8388608, 8192), 'float32')"
    # Anonymous memory, not RSS: the frameworks' libraries count in RSS as far as the page cache maps them.
    assert int(lines[2].split()[1]) < 1500 * 1024  # kB: the interpreter and both frameworks, no weights


@pytest.mark.parametrize("model", ["resnet50", "cmt_ti", "vgg11_bn", "ppcls_pphgnetv2_b0"])
def test_twins_built_without_weights_have_their_manifests_layouts(model):
    """Twins built on torch's meta device and under Paddle's LazyGuard (or, where a twin computes
    with its values while being built, as CMT's does, built to be overwritten)."""
    from weightport.models.pair import resolve
    from weightport.tables.layouts import manifest_layout, model_layout

    pair = resolve(model)
    for side in ("torch", "paddle"):
        assert model_layout(pair.skeleton(side), side) == manifest_layout(pair.manifest(), side)


def test_a_folder_of_two_checkpoints_and_format_for_a_file_are_refused(tmp_path):
    folder, _, _ = _folder(tmp_path)
    write_sharded(tmp_path / "other", list(_tensors().items()), "paddle", max_shard_size=13000)
    for path in (tmp_path / "other").iterdir():
        path.rename(folder / path.name)
    with pytest.raises(CheckpointError, match="holds 2 sharded checkpoints"):
        read_checkpoint(folder)
    assert sorted(read_checkpoint(folder / "model_state.pdparams.index.json").tensors) == sorted(_tensors())
    result = CliRunner().invoke(cli, ["convert", "resnet50", str(folder / "model.safetensors.index.json"),
                                      str(tmp_path / "one.pth"), "--format", "bin"])
    assert result.exit_code == 2 and "--format 'bin': a format is for a folder of shards" in result.output
