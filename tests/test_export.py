"""ONNX export: ONNX Runtime gives PyTorch's logits, for both models, any batch and size."""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib import cli, inference
from petseg_lib.cli import UserError
from petseg_lib.data.oxford_pet import collate, load_dataset
from petseg_lib.export import DEFAULT_OPSET, export_onnx, main
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.use.onnx_segmenter import OnnxSegmenter
from petseg_lib.use.photos import segment

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch.onnx.export needs it

ROOT = Path(__file__).resolve().parents[1]
TRAINED_AT = 64
MAX_ABS_DIFF = 1e-3  # ONNX Runtime vs PyTorch logits, float32 on the CPU: about 1e-5 seen
MIN_SAME_PIXELS = 0.999  # fraction of mask pixels (logit > 0) that must agree
MODELS = {"unet": {"base_channels": 8}, "resnet34_unet": {"normalize_input": True}}


def save_checkpoint(name: str, path: Path, images: np.ndarray | None = None) -> Path:
    """A checkpoint with the entries petseg_lib.train writes, of a model made to look trained.

    A freshly built model gives nearly the same logit everywhere, all of one sign, so its masks
    would agree trivially. Random BatchNorm statistics make the logits vary, and the output
    convolution is rescaled so that on IMAGES their median is 0 (half the pixels are pet) and
    their standard deviation 2, as after training.
    """
    torch.manual_seed(0)
    model = build_model(name, **MODELS[name]).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
        if images is not None:
            logits = model(torch.from_numpy(images))
            scale = 2 / logits.std()
            model.outc.bias.copy_((model.outc.bias - logits.median()) * scale)
            model.outc.weight.mul_(scale)
    torch.save({"format": "petseg-checkpoint", "model_name": name,
                "model_kwargs": dict(model.config), "state_dict": model.state_dict(),
                "image_size": TRAINED_AT, "epoch": 1, "metrics": {}}, path)
    return path


def write_onnx(path: Path, metadata: dict[str, str], op: str = "ReduceMean") -> Path:
    """A tiny .onnx model with METADATA: the channel mean as logits, or with OP "Identity" the
    images themselves (three channels, not one)."""
    helper = onnx.helper
    images = helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["N", 3, "H", "W"])
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)
    axes = helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [1])
    node = (helper.make_node("ReduceMean", ["images", "axes"], ["logits"], keepdims=1)
            if op == "ReduceMean" else helper.make_node(op, ["images"], ["logits"]))
    graph = helper.make_graph([node], "g", [images], [logits], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m petseg_lib.export ARGS` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "petseg_lib.export", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def test_images(sample_root) -> dict[int, np.ndarray]:
    """The sample test split as float32 (N, 3, S, S) arrays, at two sizes."""
    return {size: collate(list(load_dataset(sample_root, "test", size)))["image"].numpy()
            for size in (64, 96)}


@pytest.fixture(scope="module", params=["unet", "resnet34_unet"])  # the course's models
def exported(request, tmp_path_factory, test_images) -> dict:
    """Each model saved as a checkpoint and exported once by the command line's main()."""
    folder = tmp_path_factory.mktemp(f"export_{request.param}")
    checkpoint = save_checkpoint(request.param, folder / "model.pth", test_images[TRAINED_AT])
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        path = main(["--model", str(checkpoint), "--output", str(folder / "onnx" / "m.onnx")])
    return {"name": request.param, "path": path, "printed": output.getvalue(),
            "model": load_model(checkpoint), "segmenter": OnnxSegmenter(path)}


def torch_logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """PyTorch's logits of IMAGES, as a numpy array."""
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


@pytest.mark.parametrize("size", [64, 96])
def test_onnx_runtime_gives_the_pytorch_logits(exported, test_images, size):
    images = test_images[size]
    expected = torch_logits(exported["model"], images)
    logits = exported["segmenter"].logits(images)
    assert logits.shape == expected.shape == (len(images), 1, size, size)
    assert np.abs(logits - expected).max() <= MAX_ABS_DIFF
    assert 0.2 < (expected > 0).mean() < 0.8  # pet and background both present
    assert ((logits > 0) == (expected > 0)).mean() >= MIN_SAME_PIXELS
    assert np.array_equal(exported["segmenter"].masks(images), logits > 0)  # threshold 0.5


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 64, 64), (3, 3, 64, 128)])
def test_batch_height_and_width_are_dynamic(exported, test_images, shape):
    images = test_images[64][:shape[0]]
    if shape[3] != 64:  # a non-square input: two images side by side
        images = np.concatenate([images, images[::-1]], axis=3)
    logits = exported["segmenter"].logits(images)
    assert logits.shape == (shape[0], 1, shape[2], shape[3])
    assert np.abs(logits - torch_logits(exported["model"], images)).max() <= MAX_ABS_DIFF


def test_the_file_passes_the_checker_and_holds_its_metadata(exported):
    path = exported["path"]
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain == ""] == [DEFAULT_OPSET]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model_name"] == exported["name"]
    assert meta["image_size"] == str(TRAINED_AT) and meta["threshold"] == "0.5"
    assert meta["opset"] == str(DEFAULT_OPSET)
    assert meta["description"] == "input: float32 (N,3,H,W) in [0,1]; output: logits (N,1,H,W)"
    segmenter = exported["segmenter"]
    assert segmenter.image_size == TRAINED_AT and segmenter.threshold == 0.5
    assert [i.name for i in segmenter.session.get_inputs()] == ["images"]
    assert os.listdir(path.parent) == [path.name]  # no temporary file left beside it
    lines = exported["printed"].splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Exported {exported['name']} ")


def test_the_segmenter_says_what_is_wrong_with_the_images(exported, test_images):
    images = test_images[64]
    with pytest.raises(ValueError, match="multiples of 32"):
        exported["segmenter"].logits(images[:, :, :48, :48])
    with pytest.raises(ValueError, match="divide uint8 images by 255"):
        exported["segmenter"].logits((images * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        exported["segmenter"].logits(images[0])


def test_the_segmenter_needs_neither_torch_nor_the_model_code(exported):
    # torch is blocked: importing it would fail, so the segmenter must do without it.
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from petseg_lib.use.onnx_segmenter import OnnxSegmenter\n"
            f"s = OnnxSegmenter({str(exported['path'])!r})\n"
            "print(s.logits(np.zeros((2, 3, 32, 64), np.float32)).shape, s.image_size)\n"
            "print(sorted(m for m in sys.modules if m.startswith('petseg_lib')))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"(2, 1, 32, 64) {TRAINED_AT}",
        str(["petseg_lib", "petseg_lib.evaluation", "petseg_lib.evaluation.threshold",
             "petseg_lib.use", "petseg_lib.use.onnx_segmenter"])]  # plain Python


def test_cli_missing_checkpoint_is_one_line_and_exit_2(tmp_path):
    result = run_cli("--model", str(tmp_path / "missing.pth"), "--output",
                     str(tmp_path / "m.onnx"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: No checkpoint at ")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("content", ["text", "dict without format"])
def test_cli_file_that_is_not_a_checkpoint_exits_2(tmp_path, capsys, content):
    crafted = tmp_path / "crafted.pth"
    if content == "text":
        crafted.write_text("not a checkpoint\nat all\n")
    else:
        torch.save({"state_dict": {}, "image_size": 64}, crafted)
    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main, ["--model", str(crafted), "--output", str(tmp_path / "m.onnx")])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: '{crafted}' is not a petseg checkpoint")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_unwritable_output_exits_2_before_exporting(tmp_path, capsys):
    checkpoint = save_checkpoint("unet", tmp_path / "model.pth")
    blocker = tmp_path / "a_file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main, ["--model", str(checkpoint), "--output", str(blocker / "m.onnx")])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: cannot write '{blocker / 'm.onnx'}'")


@pytest.mark.parametrize("opset", ["0", "5", "11", "99"])
def test_an_opset_the_exporter_cannot_write_is_refused_before_exporting(tmp_path, opset,
                                                                        capsys):
    images = np.zeros((1, 3, 64, 64), np.float32)
    checkpoint = save_checkpoint("unet", tmp_path / "model.pth", images)
    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main, ["--model", str(checkpoint), "--output", str(tmp_path / "m.onnx"),
                           "--opset", opset])
    assert stop.value.code == 2 and not (tmp_path / "m.onnx").exists()
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and "--opset must be from 16 to " in err
    assert f"not {opset} (" in err and "Traceback" not in out + err


def test_an_opset_it_converts_to_is_written_and_one_it_could_not_is_an_error(
        tmp_path, monkeypatch):
    images = np.zeros((1, 3, 64, 64), np.float32)
    checkpoint = save_checkpoint("unet", tmp_path / "model.pth", images)
    path = main(["--model", str(checkpoint), "--output", str(tmp_path / "m17.onnx"),
                 "--opset", "17"])
    assert OnnxSegmenter(path).metadata["opset"] == "17"
    from petseg_lib import export

    real = export.onnx_metadata
    monkeypatch.setattr(export, "onnx_metadata",  # as when the converter gives up silently
                        lambda model, size, opset: real(model, size, DEFAULT_OPSET))
    with pytest.raises(UserError, match="opset 17 was asked for; the exporter could not "
                                        r"convert to it and .*m\.onnx holds opset 18"):
        main(["--model", str(checkpoint), "--output", str(tmp_path / "m.onnx"),
              "--opset", "17"])


def test_export_asks_for_a_size_it_can_run_at(tmp_path):
    model = build_model("unet", base_channels=8).eval()
    for size in (100, 0, -64):  # 0 too: a size given, not the training size's stand-in
        with pytest.raises(ValueError, match=f"image size {size} is not a positive multiple"):
            export_onnx(model, tmp_path / "m.onnx", image_size=size)
    with pytest.raises(ValueError, match="records no training image size"):
        export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_own_photos_segmented_from_the_onnx_file_alone(exported, tmp_path, capsys):
    photo = np.zeros((150, 230, 3), np.uint8)
    photo[30:120, 60:170] = (230, 180, 120)  # a bright "pet" on a dark background
    Image.fromarray(photo).save(tmp_path / "pet.png")
    results = inference.main(["--onnx", str(exported["path"]), "--images",
                              str(tmp_path / "pet.png"), "--output_dir", str(tmp_path / "out")])
    mask = np.array(Image.open(results[0]["mask_path"]))
    assert mask.shape == (150, 230) and set(np.unique(mask)) <= {0, 255}
    # The same photo through the PyTorch checkpoint gives the same mask, or nearly.
    expected = segment(exported["model"], tmp_path / "pet.png", image_size=TRAINED_AT)
    assert ((mask > 0) == expected).mean() >= MIN_SAME_PIXELS
    with pytest.raises(UserError, match="--images"):
        inference.main(["--onnx", str(exported["path"])])


def test_a_file_that_is_not_an_onnx_model_is_one_line(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx file")
    with pytest.raises(ValueError, match="not a model ONNX Runtime can run") as info:
        OnnxSegmenter(garbage)
    assert str(garbage) in str(info.value)
    with pytest.raises(SystemExit):
        cli.run_cli(inference.main, ["--onnx", str(garbage), "--images", str(tmp_path)])
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: '{garbage}' is not a model")


@pytest.mark.parametrize("key, value", [("size_multiple", "0"), ("image_size", "sixty-four"),
                                        ("image_size", "-64"), ("image_size", "1000000"),
                                        ("size_multiple", "99999"), ("threshold", "1.5"),
                                        ("threshold", "nan"), ("image_size", "100")])
def test_impossible_metadata_is_refused_by_name(tmp_path, key, value):
    path = write_onnx(tmp_path / "m.onnx", {"image_size": "64", key: value})
    with pytest.raises(ValueError, match=re.escape(f"'{path}' has the metadata entry "
                                                   f"{key}={value!r}, not ")):
        OnnxSegmenter(path)


def test_a_model_that_is_not_a_petseg_export_is_refused_when_run(tmp_path):
    images = np.zeros((2, 3, 32, 64), np.float32)
    plain = OnnxSegmenter(write_onnx(tmp_path / "mean.onnx", {}))
    assert (plain.image_size, plain.size_multiple, plain.threshold) == (None, 32, 0.5)
    assert plain.logits(images).shape == (2, 1, 32, 64)
    other = OnnxSegmenter(write_onnx(tmp_path / "identity.onnx", {}, op="Identity"))
    with pytest.raises(ValueError, match=r"logits of shape \(2, 3, 32, 64\).*not a petseg export"):
        other.logits(images)


def test_a_wrong_image_size_is_told_a_size_the_model_takes(tmp_path):
    odd = np.zeros((1, 3, 50, 64), np.float32)
    trained = OnnxSegmenter(write_onnx(tmp_path / "a.onnx", {"image_size": "96"}))
    with pytest.raises(ValueError, match=r"got 50x64; resize the images, e\.g\. to 96x96"):
        trained.logits(odd)
    by_16 = OnnxSegmenter(write_onnx(tmp_path / "b.onnx", {"size_multiple": "16"}))
    with pytest.raises(ValueError, match=r"multiples of 16, got 50x64.*e\.g\. to 128x128"):
        by_16.logits(odd)
    assert by_16.logits(np.zeros((1, 3, 128, 128), np.float32)).shape == (1, 1, 128, 128)
