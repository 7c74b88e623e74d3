"""The CUDA path: what training, evaluation and inference switch on with a GPU, run on one.

Every test here needs a CUDA GPU and is skipped without one (`pytest -m cuda` selects them).
They check that each speed-up TrainConfig turns on for CUDA (float16 autocast with a
gradient scaler, channels_last, cuDNN benchmark, pinned memory, persistent workers, the
resized-image cache, torch.compile behind its flag) trains, resumes and saves checkpoints
that a CPU can use, and that reduced precision does not change what a model predicts.
"""

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from petseg_lib.data.oxford_pet import collate, load_dataset
from petseg_lib.evaluation.evaluate import evaluate
from petseg_lib.evaluation.predict import model_device, predict_logits, probabilities_at_model_size
from petseg_lib.inference import load_model
from petseg_lib.inference import main as inference_main
from petseg_lib.models import build_model
from petseg_lib.speed import speedups
from petseg_lib.train import train, train_one_epoch
from petseg_lib.training.config import TrainConfig
from petseg_lib.training.loaders import make_loaders

from .conftest import tiny_config
from .test_bench import load_benchmark

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


def gpu_config(root, tmp_path, **overrides) -> TrainConfig:
    """A small run on the GPU with every default speed-up: 64 px, 2 workers."""
    settings = dict(device="cuda", image_size=64, limit=16, num_workers=2)
    return tiny_config(root, tmp_path, **{**settings, **overrides})


def test_training_on_cuda_uses_the_gradient_scaler_and_saves_cpu_checkpoints(
        sample_root, tmp_path, capsys):
    history = train(gpu_config(sample_root, tmp_path, augment=True, run_name="g"))
    assert all(len(v) == 2 and all(map(torch.isfinite, torch.tensor(v)))
               for v in history.values())
    assert "float16 autocast with a gradient scaler" in capsys.readouterr().out
    last = torch.load(tmp_path / "ckpt/g_last.pth", map_location="cpu", weights_only=True)
    assert last["scaler"]["scale"] > 0  # an enabled GradScaler saved its state
    assert last["rng"].device.type == "cpu"
    model = load_model(tmp_path / "ckpt/g_best.pth", "cpu")  # trained on CUDA, used on a CPU
    assert model_device(model).type == "cpu"


def test_fp16_steps_with_the_scaler_lower_the_loss():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 64, 64, device=CUDA).contiguous(memory_format=torch.channels_last)
    masks = (images[:, :1] > 0.5).float()  # learnable: pet where the red channel is bright
    batch = {"image": images, "mask": masks}
    model = build_model("unet", base_channels=8).to(CUDA, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cuda")
    run = dict(progress=False, amp=True, scaler=scaler, channels_last=True)
    first, _ = train_one_epoch(model, [batch], nn.BCEWithLogitsLoss(), optimizer, CUDA, **run)
    train_one_epoch(model, [batch] * 30, nn.BCEWithLogitsLoss(), optimizer, CUDA, **run)
    after, _ = train_one_epoch(model, [batch], nn.BCEWithLogitsLoss(), optimizer, CUDA, **run)
    assert after < 0.5 * first, (first, after)
    assert scaler.get_scale() > 1  # float16 gradients were scaled up


def test_resuming_on_cuda_continues_the_same_run(sample_root, tmp_path):
    whole = train(gpu_config(sample_root, tmp_path / "a", epochs=2))
    train(gpu_config(sample_root, tmp_path / "b", epochs=1))
    trained = []  # the epochs the resumed run trains: only the second
    resumed = train(gpu_config(sample_root, tmp_path / "b", epochs=2, resume=True),
                    lambda epoch, history: trained.append(epoch))
    assert trained == [1]
    # Two float16 runs on a GPU may round apart (cuDNN picks its kernels by timing), hence a
    # tolerance; on a CPU, a resume that lost the optimizer's state or the shuffling order
    # ends epoch 2 3e-3 or more away (tests/test_train.py checks the CPU run bit for bit).
    for key, values in whole.items():
        assert resumed[key] == pytest.approx(values, rel=1e-3, abs=1e-3), key


def test_batches_come_pinned_from_persistent_workers(sample_root, tmp_path):
    config = gpu_config(sample_root, tmp_path)
    train_loader, _ = make_loaders(config, sample_root, speedups(config, CUDA))
    assert train_loader.pin_memory and train_loader.persistent_workers
    assert next(iter(train_loader))["image"].is_pinned()


def test_a_cuda_model_predicts_what_it_predicts_on_the_cpu(sample_root, tmp_path):
    train(gpu_config(sample_root, tmp_path, run_name="p"))
    best = tmp_path / "ckpt/p_best.pth"
    on_gpu, on_cpu = load_model(best, CUDA), load_model(best, "cpu")
    images = torch.rand(4, 3, 64, 64)
    expected = predict_logits(on_cpu, images)
    got = predict_logits(on_gpu, images.to(CUDA)).cpu()
    assert torch.allclose(got, expected, atol=1e-3 * (1 + expected.abs().max().item()))
    half = predict_logits(on_gpu, images.to(CUDA), amp=True).cpu()
    assert ((half > 0) == (expected > 0)).float().mean() > 0.98  # float16: the same masks
    # a CPU image batch given to a GPU model comes back on the CPU
    probabilities = probabilities_at_model_size(on_gpu, images)
    assert probabilities.device.type == "cpu" and probabilities.shape == (4, 1, 64, 64)


def test_evaluation_in_float16_scores_like_float32(sample_root, tmp_path):
    train(gpu_config(sample_root, tmp_path, run_name="e"))
    model = load_model(tmp_path / "ckpt/e_best.pth", CUDA)
    loader = DataLoader(load_dataset(sample_root, "test", 64), batch_size=4, collate_fn=collate)
    full = evaluate(model, loader, CUDA)
    half = evaluate(model, loader, CUDA, amp=True)
    assert half["dice"] == pytest.approx(full["dice"], abs=0.01)


def test_compiled_training_on_cuda(sample_root, tmp_path):
    eager = train(gpu_config(sample_root, tmp_path, epochs=1, run_name="e"))
    config = gpu_config(sample_root, tmp_path, epochs=1, compile=True, run_name="c")
    compiled = train(config)
    # Inductor fuses float16 operations and rounds them otherwise than eager mode, hence the
    # tolerance; a compiled model that trained a copy of the weights would match no better
    # than an untrained one.
    for key, values in eager.items():
        assert compiled[key] == pytest.approx(values, rel=1e-2, abs=1e-2), key
    model = load_model(tmp_path / "ckpt/c_best.pth", "cpu")  # the weights that were validated
    _, valid_loader = make_loaders(config, sample_root)
    scores = evaluate(model, valid_loader, "cpu", nn.BCEWithLogitsLoss())  # float32 on a CPU
    assert scores["loss"] == pytest.approx(compiled["valid_loss"][0], rel=1e-3)
    assert scores["dice"] == pytest.approx(compiled["valid_dice"][0], abs=0.01)


def test_inference_on_cuda_scores_a_split_and_segments_photos(sample_root, tmp_path, capsys):
    train(gpu_config(sample_root, tmp_path, run_name="i"))
    checkpoint = str(tmp_path / "ckpt/i_best.pth")
    scores = inference_main(["--model", checkpoint, "--data_path", str(sample_root),
                             "--limit", "4", "--device", "cuda", "--num_figures", "1",
                             "--output_dir", str(tmp_path / "split")])
    assert 0 <= scores["dice"] <= 1
    assert "float16" in capsys.readouterr().out
    photo = next((sample_root / "images").glob("*.jpg"))
    results = inference_main(["--model", checkpoint, "--images", str(photo), "--device", "cuda",
                              "--output_dir", str(tmp_path / "photos")])
    assert Path(results[0]["mask_path"]).is_file()


def test_benchmark_smoke_mode_runs_on_cuda():
    bench = load_benchmark("bench")
    text = "\n".join(bench.main(["--smoke", "--skip_data", "--bf16", "--models", "ResNet34"]))
    assert "cuda" in text.lower() and "NHWC fp16" in text
