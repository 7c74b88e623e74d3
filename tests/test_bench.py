"""The benchmark scripts in smoke mode: every row of their tables is printed."""

import importlib.util
import json
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"petseg_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_smoke_mode_prints_the_whole_table(tmp_path, capsys):
    bench = load_benchmark("bench")
    threads = torch.get_num_threads()
    try:
        lines = bench.main(["--smoke"])
    finally:
        torch.set_num_threads(threads)
    text = "\n".join(lines)
    assert capsys.readouterr().out.strip().endswith(lines[-1].strip())
    assert "torch " + torch.__version__ in text and "matmul peak" in text
    for label in ("UNet base 8", "UNet base 4", "ResNet34_UNet", "LR-ASPP MobileNetV3",
                  "DeepLabV3 ResNet50"):
        rows = [line for line in lines if line[:20].strip() == label]
        assert [row.split()[-7] for row in rows] == ["NCHW", "NHWC"], label
        train_rate, mfu = float(rows[1].split()[-6]), rows[1].split()[-1]
        assert train_rate > 0 and mfu.endswith("%") and float(mfu[:-1]) > 0
    if bench.smp is None:
        assert "not installed" in text
    else:
        assert "ResNet34_UNet / SMP Unet resnet34, both NCHW: training" in text
    for kind in ("plain", "augmented"):
        for source in ("jpeg", "cache"):
            assert any(line.split()[:2] == [kind, source] for line in lines), (kind, source)
    assert "cache / jpeg, plain" in text
    assert "own photo on the CPU: 400 x 300 JPEG" in text
    photo_rows = [line for line in lines
                  if line.strip().startswith(("UNet base 8 at 64 px", "ResNet34_UNet at"))]
    assert len(photo_rows) == 2 and all(float(row.split()[-2]) > 0 for row in photo_rows)


def test_report_training_smoke_mode_prints_a_row_per_model(capsys):
    lines = load_benchmark("report_training").main(["--smoke"])
    rows = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert set(rows) == {"unet", "resnet34_unet"} and lines[3].split()[0] == "model"
    for numbers in rows.values():
        first, typical, rate, valid, test, _ = map(float, numbers)
        assert first > 0 and typical > 0 and rate > 0 and 0 <= valid <= 1 and 0 <= test <= 1
    assert "1 epochs, 32 px, batch 8" in lines[1]


def test_bf16_accuracy_smoke_mode_scores_both_precisions(capsys):
    scores = load_benchmark("bf16_accuracy").main(["--smoke"])
    assert set(scores) == {"float32", "bfloat16"}
    assert all(len(v) == 1 and 0 <= v[0] <= 1 for v in scores.values())
    assert "bfloat16 - float32, mean best valid Dice" in capsys.readouterr().out


def test_real_runs_trains_scores_and_records_each_run(tiny_root, tmp_path, capsys, monkeypatch):
    runs = load_benchmark("real_runs")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep the tests' threads
    out = tmp_path / "runs"
    runs.main(["--plan", "quick", "--only", "unet", "--data_path", str(tiny_root),
               "--seeds", "0", "1", "--jobs", "1", "--threads", "1", "--out", str(out),
               "--set", "epochs=1", "epoch_samples=8", "valid_limit=2", 'device="cpu"'])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in rows) == [0, 1]
    for row in rows:
        assert row["name"] == "unet" and row["epochs"] == 1 and 0 <= row["test_dice"] <= 1
        assert row["protocol"].startswith("test split")
    table = capsys.readouterr().out.splitlines()[-1]
    assert table.startswith("| unet | 2 | ") and " ± " in table
