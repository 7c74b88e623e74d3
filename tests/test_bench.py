"""The benchmark scripts in smoke mode: every row of their tables is printed."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
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
    assert "torch " + torch.__version__ in text and "peak per precision" in text
    assert any(line.startswith("  fp32: ") and "torch.mm" in line and "conv 3x3" in line
               for line in lines)
    for label in ("UNet base 8", "UNet base 4", "ResNet34_UNet", "LR-ASPP MobileNetV3",
                  "DeepLabV3 ResNet50"):
        rows = [line for line in lines if line[:20].strip() == label]
        assert [row.split()[-7] for row in rows] == ["NCHW", "NHWC"], label
        for row in rows:
            train_rate, mfu = float(row.split()[-6]), row.split()[-1]
            assert train_rate > 0 and mfu.endswith("%") and 0 < float(mfu[:-1]) <= 100
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
    real = lines.index(next(line for line in lines if line.startswith("real photos: ")))
    size, plain, augmented, train = lines[real + 2].split()[:4]
    assert size == "32" and float(plain) > 0 and float(augmented) > 0 and float(train) > 0
    busy = {line[:28].strip(): line.split()[-3:] for line in lines
            if line.startswith(("plain samples/s", "augmented samples/s", "demo photo s"))}
    precision = "bf16" if bench.amp_helps(torch.device("cpu")) else "fp32"
    assert set(busy) == {"plain samples/s, 32 px", "augmented samples/s, 32 px",
                         f"demo photo s ({precision})"}
    for alone, with_competitor, ratio in busy.values():
        assert float(alone) > 0 and float(with_competitor) > 0 and float(ratio) > 0


def test_real_rows_are_skipped_without_the_real_photos(tmp_path, capsys):
    bench = load_benchmark("bench")
    threads = torch.get_num_threads()
    try:
        lines = bench.main(["--smoke", "--only", "real", "--data", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert lines[-1] == f"real photos: none at {tmp_path} (--data PATH); their rows are skipped"


class FixedRunner:
    """A model's runner whose steps take SECONDS, whatever the machine."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def train_step(self) -> float:
        return self.seconds

    def infer_step(self) -> float:
        return self.seconds / 3


def test_each_precision_is_divided_by_its_own_peak_which_no_model_exceeds(monkeypatch):
    bench = load_benchmark("bench")
    kernels = {torch.float32: {"mm": 100.0, "conv": 150.0}, torch.bfloat16: {"mm": 400.0}}
    monkeypatch.setattr(bench, "kernel_gflops", lambda device, dtype, n, smoke: kernels[dtype])
    cases = [dict(memory=None, label="slow", layout="NHWC", precision="fp32", flops=1e9,
                  runner=FixedRunner(8 / 75), train=[], infer=[], mfu=[]),  # 75 GFLOP/s
             dict(memory=None, label="slow", layout="NHWC bf16", precision="bf16", flops=1e9,
                  runner=FixedRunner(8 / 200), train=[], infer=[], mfu=[]),  # 200
             dict(memory=None, label="fast", layout="NHWC bf16", precision="bf16", flops=1e9,
                  runner=FixedRunner(8 / 500), train=[], infer=[], mfu=[])]  # 500 > 400
    args = bench.parse_args(["--smoke", "--repeats", "2", "--batch_size", "8"])
    peaks = bench.time_models(cases, args, torch.device("cpu"))
    assert [repeat["fp32"]["peak"] for repeat in peaks] == [150.0, 150.0]  # the faster kernel
    assert [repeat["bf16"]["peak"] for repeat in peaks] == pytest.approx([500.0, 500.0])
    assert peaks[0]["bf16"]["raised by"] == {"fast NHWC bf16": pytest.approx(500.0)}
    assert [case["mfu"][0] for case in cases] == pytest.approx([0.5, 0.4, 1.0])
    text = "\n".join(bench.model_table(cases, peaks, torch.device("cpu")))
    assert "fast NHWC bf16 trained at 500 GFLOP/s, faster than every kernel" in text
    assert "  fp32: 150 GFLOP/s (repeats: 150, 150); kernels, medians: mm 100, conv 150" in text


def test_the_theoretical_peak_is_cores_times_clock_times_the_vector_units(monkeypatch):
    bench = load_benchmark("bench")
    monkeypatch.setattr(bench, "lscpu_fields",
                        lambda: {"Core(s) per socket": "4", "Socket(s)": "1"})
    monkeypatch.setattr(bench, "max_clock_ghz", lambda fields: 3.0)
    monkeypatch.setattr(bench, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "amx_bf16"}))
    assert bench.theoretical_peak("fp32", threads=2) == \
        "2 cores x 3.00 GHz x 64 FLOP/cycle (AVX-512, two FMA units assumed) = 384 GFLOP/s"
    assert bench.theoretical_peak("bf16", threads=8) == \
        "4 cores x 3.00 GHz x 1024 FLOP/cycle (AMX) = 12288 GFLOP/s"
    assert bench.theoretical_peak("fp16", threads=2) is None  # no CPU unit known for it
    monkeypatch.setattr(bench, "max_clock_ghz", lambda fields: None)
    assert bench.theoretical_peak("fp32", threads=2) is None  # the clock unknown: no line


def test_the_busy_competitor_is_stopped_even_when_the_measurement_fails():
    bench = load_benchmark("bench")
    with bench.busy_competitor() as process:
        assert process.poll() is None  # running
        assert os.getsid(process.pid) == process.pid != os.getsid(0)  # in a session of its own
    assert process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # gone, and reaped
    with pytest.raises(RuntimeError, match="measurement"), bench.busy_competitor() as process:
        raise RuntimeError("measurement failed")
    assert process.poll() is not None


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


def test_folds_validate_on_different_trainval_images_and_never_on_test_ones(tiny_root, tmp_path):
    from petseg_lib.data.oxford_pet import split_names

    runs = load_benchmark("real_runs")
    roots = [runs.fold_dataset(tiny_root, k, 5, tmp_path) for k in range(5)]
    trainval = set(split_names(tiny_root, "train")) | set(split_names(tiny_root, "valid"))
    valid_sets = [set(split_names(root, "valid")) for root in roots]
    assert valid_sets[0] == set(split_names(tiny_root, "valid"))  # fold 0: the course's split
    for root, valid in zip(roots, valid_sets, strict=True):
        train = set(split_names(root, "train"))
        assert valid and not valid & train and valid | train == trainval
        assert split_names(root, "test") == split_names(tiny_root, "test")
        assert (root / "images").resolve() == (tiny_root / "images").resolve()
        assert (root / "annotations" / "trainval.txt").read_text().startswith("Cat_")
    assert sum(map(len, valid_sets)) == len(set().union(*valid_sets))  # disjoint folds
    with pytest.raises(ValueError, match="folds must be 1 to 10"):
        runs.fold_dataset(tiny_root, 0, 11, tmp_path)


def test_paired_differences_match_runs_by_seed_and_fold():
    runs = load_benchmark("real_runs")
    scores = {("a", 0, "f0"): 0.70, ("a", 0, "f1"): 0.80, ("b", 0, "f0"): 0.75,
              ("b", 0, "f1"): 0.79, ("b", 1, "f0"): 0.99}  # b's seed 1 has no partner
    rows = [{"name": n, "seed": s, "fold": f, "last_valid_dice": v, "best_valid_dice": v,
             "test_dice": v} for (n, s, f), v in scores.items()]
    table = runs.paired(rows, "a").splitlines()
    assert table[0].startswith("| run - a | pairs |") and len(table) == 3
    assert table[2].startswith("| b | 2 | +0.0200 ± 0.0300 (1 higher) |")  # +0.05 and -0.01


def test_time_to_accuracy_smoke_mode_times_each_model_and_precision(tmp_path, monkeypatch):
    monkeypatch.delenv("PETSEG_DATA", raising=False)  # the sample dataset
    figure = tmp_path / "curves.png"
    lines = load_benchmark("time_to_accuracy").main(["--smoke", "--output", str(figure)])
    rows = [line.split(" | ") for line in lines[3:]]
    assert [(row[0], row[1]) for row in rows] == [
        ("| unet", "float32"), ("| unet", "bfloat16"),
        ("| resnet34_unet", "float32"), ("| resnet34_unet", "bfloat16")]
    for row in rows:
        if "not native" not in row[2]:
            assert 0.0 <= float(row[4]) <= 1.0 and row[5].endswith(" s |")
    assert figure.stat().st_size > 0


def test_time_to_accuracy_stops_a_run_when_its_budget_is_spent(tmp_path, monkeypatch):
    monkeypatch.delenv("PETSEG_DATA", raising=False)  # the sample dataset
    progress = tmp_path / "points.txt"
    lines = load_benchmark("time_to_accuracy").main([
        "--smoke", "--models", "unet", "--precisions", "float32", "--budget_s", "1e-6",
        "--output", str(tmp_path / "curves.png"), "--progress_file", str(progress)])
    assert "stopped after 0 s" in lines[0] and len(lines) == 4  # header, columns, rule, a row
    points = progress.read_text().split("\n")[:-1]
    assert len(points) == 1 and points[0].startswith("unet_fp32 1 ")  # one epoch of two
