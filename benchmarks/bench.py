"""Benchmark: training and inference speed of the course's models, and of the data pipeline.

Prints one table. Every figure is measured in this run on this machine; the comparisons are
ratios of medians over interleaved repeats (each repeat times every model once, in turn), so
that a busy machine slows all of them alike.

    python benchmarks/bench.py            # the full table: 256 px, batch 8, 3 repeats
    python benchmarks/bench.py --smoke    # tiny sizes, one repeat: checks that it still runs

Models: UNet (base 64 and 32), ResNet34_UNet, the torchvision baselines LR-ASPP MobileNetV3
and DeepLabV3 ResNet50, and, when the `bench` extra is installed
(`pip install -e ".[bench]"`), segmentation_models_pytorch's Unet with a ResNet34 encoder as
the reference. Each is timed as stored (NCHW) and in channels_last (NHWC) memory layout.

Columns: training images/s (forward, BCE loss, backward, Adam step), inference images/s,
the peak memory a training step adds on top of the idle model (resident set size on Linux,
allocated memory on CUDA), FLOPs per image for forward + backward (torch.utils.flop_counter:
convolutions and matrix products only), the achieved GFLOP/s in training, and that as a
fraction of the float32 matmul speed measured in the same run ("MFU").
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

from petseg_lib.models.baselines import DeepLabV3_ResNet50, LRASPP_MobileNetV3
from petseg_lib.models.resnet34_unet import ResNet34_UNet
from petseg_lib.models.unet import UNet
from petseg_lib.oxford_pet import SimpleOxfordPetDataset, collate
from petseg_lib.photos import mask_png, save_png, segment_logits, threshold_logits
from petseg_lib.sample import ensure_sample_dataset, make_sample_dataset
from petseg_lib.speed import (
    amp_dtype,
    amp_helps,
    glibc,
    keep_freed_memory,
    keep_memory_helps,
    synchronize,
)

try:
    import segmentation_models_pytorch as smp
except ImportError:  # the reference model is optional
    smp = None


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------

def cpu_name() -> str:
    """The processor's model name, as Linux reports it, else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines(device: torch.device) -> list[str]:
    """What the numbers were measured on: date, machine, torch, threads."""
    gpu = f", GPU {torch.cuda.get_device_name()}" if device.type == "cuda" else ""
    return [
        f"date: {datetime.datetime.now():%Y-%m-%d %H:%M}",
        f"machine: {cpu_name()}, {os.cpu_count()} logical cores{gpu}, {platform.system()}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"mkldnn {'on' if torch.backends.mkldnn.enabled else 'off'}, device {device}",
    ]


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 5, tries: int = 3) -> float:
    """float32 GFLOP/s of n x n matrix products, best of TRIES bursts: the peak to compare with."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = 0.0
    for _ in range(tries):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------

def _status_kib(key: str) -> int:
    """A value in kB from /proc/self/status, e.g. VmRSS or VmHWM (its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_memory_mb(fn, device: torch.device) -> float | None:
    """Peak memory that FN() adds on top of what was in use before, in MB (None: unknown)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        return (torch.cuda.max_memory_allocated() - before) / 1e6
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)  # give back freed memory kept by keep_freed_memory, so it counts
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) * 1024 / 1e6
    except (OSError, KeyError):
        return None


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

def model_builders(smoke: bool) -> dict:
    """Label -> function building the model; small widths in smoke mode."""
    wide, narrow = (8, 4) if smoke else (64, 32)
    builders = {
        f"UNet base {wide}": lambda: UNet(base_channels=wide),
        f"UNet base {narrow}": lambda: UNet(base_channels=narrow),
        "ResNet34_UNet": ResNet34_UNet,
        "LR-ASPP MobileNetV3": LRASPP_MobileNetV3,  # torchvision baselines (models/baselines.py)
        "DeepLabV3 ResNet50": DeepLabV3_ResNet50,
    }
    if smp is not None:
        builders["SMP Unet resnet34"] = lambda: smp.Unet("resnet34", encoder_weights=None,
                                                         classes=1)
    return builders


def train_flops_per_image(model: nn.Module, image_size: int) -> int:
    """FLOPs of one forward and backward pass, per image (convolutions and matmuls)."""
    x = torch.rand(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() // 2


class Runner:
    """One model, its optimizer and a fixed batch, with timed training and inference steps."""

    def __init__(self, model: nn.Module, batch_size: int, image_size: int,
                 device: torch.device, channels_last: bool, amp: bool = False, steps: int = 1):
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=layout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.criterion = nn.BCEWithLogitsLoss()
        self.images = torch.rand(batch_size, 3, image_size, image_size, device=device)
        self.images = self.images.contiguous(memory_format=layout)
        self.masks = (torch.rand(batch_size, 1, image_size, image_size, device=device) > 0.5)
        self.masks = self.masks.float()
        self.device, self.amp, self.steps = device, amp, steps
        self.amp_dtype = amp_dtype(device)  # as training: float16 on CUDA, bfloat16 on a CPU
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")

    def train_step(self) -> float:
        """Seconds per Adam step on the batch, the mean of STEPS steps in a row."""
        self.model.train()
        start = time.perf_counter()
        for _ in range(self.steps):
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                loss = self.criterion(self.model(self.images).float(), self.masks)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        synchronize(self.device)
        return (time.perf_counter() - start) / self.steps

    def infer_step(self) -> float:
        """Seconds per forward pass in eval mode without autograd, the mean of STEPS passes."""
        self.model.eval()
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype,
                                                    enabled=self.amp):
            for _ in range(self.steps):
                self.model(self.images)
        synchronize(self.device)
        return (time.perf_counter() - start) / self.steps


def amp_layout(device: torch.device) -> str:
    """The label of the mixed-precision rows: the reduced type that DEVICE uses in training."""
    return "NHWC fp16" if amp_dtype(device) == torch.float16 else "NHWC bf16"


def model_cases(args, device: torch.device) -> list[dict]:
    """Every (model, layout) to time, with its FLOPs per image and peak step memory."""
    cases = []
    for label, build in model_builders(args.smoke).items():
        if args.models and not any(word.lower() in label.lower() for word in args.models):
            continue
        torch.manual_seed(0)
        model = build()  # every variant starts from copies of these same weights
        flops = train_flops_per_image(copy.deepcopy(model), args.image_size)
        variants = [("NCHW", False, False), ("NHWC", True, False)]
        if args.bf16:
            variants.append((amp_layout(device), True, True))
        for layout, channels_last, amp in variants:
            torch.manual_seed(0)
            runner = Runner(copy.deepcopy(model), args.batch_size, args.image_size, device,
                            channels_last, amp, args.steps)
            started = time.perf_counter()
            runner.train_step()  # warm-up: first calls pick kernels and allocate Adam's state
            runner.infer_step()
            memory = peak_memory_mb(runner.train_step, device)
            print(f"{label} {layout}: warmed up in {time.perf_counter() - started:.0f} s",
                  flush=True)
            cases.append(dict(label=label, layout=layout, runner=runner, flops=flops,
                              memory=memory, train=[], infer=[], mfu=[]))
    if args.compile:
        cases.append(compiled_case(args, device))
    return cases


def compiled_case(args, device: torch.device) -> dict:
    """ResNet34_UNet under torch.compile, NHWC, checked against the same model run eagerly."""
    torch.manual_seed(0)
    model = ResNet34_UNet()
    flops = train_flops_per_image(model, args.image_size)
    runner = Runner(model, args.batch_size, args.image_size, device, True, steps=args.steps)
    runner.model = torch.compile(model)
    start = time.perf_counter()
    runner.train_step()
    runner.infer_step()
    print(f"torch.compile of ResNet34_UNet: {time.perf_counter() - start:.0f} s", flush=True)
    with torch.no_grad():
        expected = model.eval()(runner.images)  # `model` is the compiled one's own module
        got = runner.model.eval()(runner.images)
    difference = (got - expected).abs().max().item()
    print(f"compiled vs eager logits: max |difference| {difference:.1e}", flush=True)
    if difference > 1e-3 * (1 + expected.abs().max().item()):
        raise RuntimeError(f"torch.compile changed the outputs by {difference}")
    return dict(label="ResNet34_UNet", layout="NHWC compiled", runner=runner, flops=flops,
                memory=peak_memory_mb(runner.train_step, device), train=[], infer=[], mfu=[])


def time_models(cases: list[dict], args, device: torch.device) -> list[float]:
    """Interleaved repeats: each repeat measures the matmul peak, then every case once."""
    peaks = []
    for _ in range(args.repeats):
        peak = matmul_gflops(device, args.matmul_size)
        peaks.append(peak)
        for case in cases:
            train_rate = args.batch_size / case["runner"].train_step()
            case["train"].append(train_rate)
            case["infer"].append(args.batch_size / case["runner"].infer_step())
            case["mfu"].append(train_rate * case["flops"] / 1e9 / peak)
    return peaks


def model_table(cases: list[dict], peaks: list[float]) -> list[str]:
    """The models' rows, with medians over the repeats."""
    lines = [f"fp32 matmul peak: {statistics.median(peaks):.0f} GFLOP/s (median of the "
             f"repeats: {', '.join(f'{p:.0f}' for p in peaks)}; MFU uses each repeat's own)", "",
             f"{'model':<20} {'layout':<13} {'train img/s':>11} {'infer img/s':>11} "
             f"{'step MB':>8} {'GFLOP/img':>9} {'GFLOP/s':>8} {'MFU':>6}"]
    for c in cases:
        train = statistics.median(c["train"])
        memory = "n/a" if c["memory"] is None else f"{c['memory']:.0f}"
        lines.append(f"{c['label']:<20} {c['layout']:<13} {train:>11.2f} "
                     f"{statistics.median(c['infer']):>11.2f} {memory:>8} "
                     f"{c['flops'] / 1e9:>9.1f} {train * c['flops'] / 1e9:>8.1f} "
                     f"{statistics.median(c['mfu']):>6.1%}")
    return lines


def find_case(cases: list[dict], label: str, layout: str) -> dict | None:
    """The case of LABEL in LAYOUT, or None."""
    return next((c for c in cases if c["label"] == label and c["layout"] == layout), None)


def ratio_lines(cases: list[dict]) -> list[str]:
    """ResNet34_UNet / reference: medians of the per-repeat ratios, for each layout."""
    lines = []
    for layout in ("NCHW", "NHWC", "NHWC bf16", "NHWC fp16"):
        ours = find_case(cases, "ResNet34_UNet", layout)
        theirs = find_case(cases, "SMP Unet resnet34", layout)
        if ours is None or theirs is None:
            continue
        ratios = {kind: statistics.median(a / b for a, b in zip(ours[kind], theirs[kind],
                                                                 strict=True))
                  for kind in ("train", "infer")}
        lines.append(f"ResNet34_UNet / SMP Unet resnet34, both {layout}: training "
                     f"{ratios['train']:.2f} x, inference {ratios['infer']:.2f} x")
    if smp is None:
        lines.append("ResNet34_UNet / SMP: segmentation_models_pytorch is not installed "
                     "(pip install -e \".[bench]\"), reference skipped")
    return lines


# ---------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------

def samples_per_second(dataset, num_workers: int, batch_size: int, epochs: int) -> float:
    """Samples/s of a DataLoader over DATASET, after one untimed epoch starts the workers."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        collate_fn=collate, persistent_workers=num_workers > 0)
    for _ in loader:  # warm-up: workers start, files enter the page cache
        pass
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def data_table(root: Path, args, train_rate: float | None) -> list[str]:
    """Samples/s of plain and augmented training samples, from JPEG and from the cache."""
    lines = [f"data: {root.name}, image size {args.image_size}, batch {args.batch_size}"]
    start = time.perf_counter()
    cached = SimpleOxfordPetDataset(root, "train", args.image_size, augment=True, cache=True)
    build = time.perf_counter() - start
    decoded = SimpleOxfordPetDataset(root, "train", args.image_size, augment=True)
    n = len(decoded.names)
    lines.append(f"cache: first pass {n} images in {build:.1f} s ({n / build:.0f} images/s, "
                 "includes the dataset's own file checks)")
    header = f"{'samples':<10} {'source':<7} {'workers':>7} {'samples/s':>10}"
    if train_rate:
        header += f" {'x ResNet34_UNet training':>25}"
    lines.append(header)
    rates = {}
    for kind, indices in (("plain", range(0, 2 * n, 2)), ("augmented", range(1, 2 * n, 2))):
        for source, dataset in (("jpeg", decoded), ("cache", cached)):
            for workers in args.workers:
                rate = samples_per_second(Subset(dataset, list(indices)), workers,
                                          args.batch_size, args.data_epochs)
                rates[kind, source, workers] = rate
                line = f"{kind:<10} {source:<7} {workers:>7} {rate:>10.0f}"
                if train_rate:
                    line += f" {rate / train_rate:>24.0f}x"
                lines.append(line)
    for kind in ("plain", "augmented"):
        speedup = rates[kind, "cache", 0] / rates[kind, "jpeg", 0]
        lines.append(f"cache / jpeg, {kind}, 0 workers: {speedup:.1f} x")
    return lines


def data_root(args, workdir: Path) -> Path:
    """A private copy of the dataset, so that the cache is built from scratch and removed."""
    if args.data:
        source = Path(args.data)
    elif args.smoke:
        source = make_sample_dataset(workdir / "sample", n_trainval=12, n_test=2, seed=0)
    else:
        source = ensure_sample_dataset()
    copy = workdir / source.name
    if copy != source:
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("cache"))
    return copy


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def photo_table(args, workdir: Path) -> list[str]:
    """Own-photo latency: one big JPEG from file to mask PNG, for each model at its size."""
    width, height = (400, 300) if args.smoke else (4000, 3000)
    rng = np.random.default_rng(0)
    # Like a phone photo (about 3 MB): smooth colour fields, sensor noise, a "pet" in the middle.
    fields = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    pixels = np.asarray(fields.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    pixels = pixels + rng.integers(-12, 13, pixels.shape)
    pixels[height // 6:5 * height // 6, width // 4:3 * width // 4] = (230, 180, 120)
    path = workdir / "photo.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    lines = [f"own photo on the CPU: {width} x {height} JPEG -> decode, resize, predict, logits "
             "back to full size, threshold, write the mask PNG (median of "
             f"{args.repeats} after one warm-up)"]
    cases = (("UNet base 8 at 64 px (demo)", lambda: UNet(base_channels=8), 64),
             ("ResNet34_UNet at 256 px", ResNet34_UNet, 32 if args.smoke else 256))
    for name, build, size in cases:
        model = build().eval()
        model.image_size = size
        for amp in (False, amp_helps(torch.device("cpu"))) if not args.smoke else (False,):
            seconds = []
            for _ in range(args.repeats + 1):
                started = time.perf_counter()
                mask = threshold_logits(segment_logits(model, path, amp=amp))
                save_png(mask_png(mask), workdir / "photo_mask.png")
                seconds.append(time.perf_counter() - started)
            lines.append(f"  {name:<28} {'bf16' if amp else 'fp32'}: "
                         f"{statistics.median(seconds[1:]):.3f} s")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options; --smoke shrinks every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one repeat, to check that the script runs")
    parser.add_argument("--image_size", type=int, default=None, help="default 256 (smoke 32)")
    parser.add_argument("--batch_size", type=int, default=None, help="default 8 (smoke 2)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (smoke 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; smoke: 1)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the sample)")
    parser.add_argument("--skip_models", action="store_true", help="only the data pipeline")
    parser.add_argument("--skip_data", action="store_true", help="only the models")
    parser.add_argument("--models", nargs="*", default=None,
                        help="time only the models whose label contains one of these words")
    parser.add_argument("--compile", action="store_true",
                        help="also time ResNet34_UNet under torch.compile (minutes to compile)")
    parser.add_argument("--keep_memory", action=argparse.BooleanOptionalAction, default=None,
                        help="glibc keeps freed memory between steps, as training does "
                             "(default: on with a CPU)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time mixed precision as training uses it: bfloat16 autocast "
                             "on a CPU, float16 with a gradient scaler on CUDA (rows 'NHWC "
                             "bf16' or 'NHWC fp16'; compared with the fp32 peak in MFU)")
    parser.add_argument("--cudnn_benchmark", action=argparse.BooleanOptionalAction,
                        default=True, help="CUDA: cuDNN tries its kernels for each new shape "
                        "and keeps the fastest, as training does (slow warm-up)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps timed in a row per measurement (default: 1 on a CPU, 20 "
                             "on CUDA, where one step takes milliseconds)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.image_size = args.image_size or (32 if smoke else 256)
    args.batch_size = args.batch_size or (2 if smoke else 8)
    args.repeats = args.repeats or (1 if smoke else 3)
    args.matmul_size = 128 if smoke else 2048
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, not {args.steps}")
    args.steps = args.steps or (20 if torch.cuda.is_available() and not smoke else 1)
    if smoke and args.threads is None:
        args.threads = 1  # tiny ops on a busy machine: more threads mostly wait for each other
    args.workers = (0, 2) if smoke else (0, 1, 2)
    args.data_epochs = 1 if smoke else 3
    return args


def main(argv: list[str] | None = None) -> list[str]:
    """Run the benchmark and print its table; returns the table's lines."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark and device.type == "cuda"
    lines = machine_lines(device)
    if args.keep_memory is None:
        args.keep_memory = keep_memory_helps(device)  # as TrainConfig's default
    kept = args.keep_memory and glibc() is not None
    lines.append(f"image size {args.image_size}, batch {args.batch_size}, fp32, "
                 f"{args.repeats} interleaved repeats of {args.steps} step(s), medians; freed "
                 f"memory kept between steps as in training (keep_freed_memory): "
                 f"{'yes' if kept else 'no'}")
    print("\n".join(lines), flush=True)
    train_rate = None
    if not args.skip_models:
        with keep_freed_memory(args.keep_memory):
            cases = model_cases(args, device)
            peaks = time_models(cases, args, device)
        section = ["", *model_table(cases, peaks), "", *ratio_lines(cases)]
        print("\n".join(section), flush=True)
        lines += section
        best = find_case(cases, "ResNet34_UNet", "NHWC")
        train_rate = statistics.median(best["train"]) if best else None
    with tempfile.TemporaryDirectory(prefix="petseg-bench-") as workdir:
        section = ["", *photo_table(args, Path(workdir))]
    print("\n".join(section), flush=True)
    lines += section
    if args.skip_data:
        return lines
    with tempfile.TemporaryDirectory(prefix="petseg-bench-") as workdir:
        section = ["", *data_table(data_root(args, Path(workdir)), args, train_rate)]
    if train_rate:
        section.append(f"(x ResNet34_UNet training: samples/s over ResNet34_UNet's NHWC "
                       f"training rate of {train_rate:.2f} images/s above)")
    print("\n".join(section), flush=True)
    return lines + section


if __name__ == "__main__":
    main()
