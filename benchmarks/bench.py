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
fraction of the peak of its precision measured in the same repeat ("MFU"): the fastest of a
square matrix product and a channels-last 3 x 3 convolution in that precision.

Then an own photo's latency, the data pipeline on the sample, the data pipeline on the real
photos (64, 128, 256 px) beside the training rate at each size, and the data pipeline and the
demo's photo time with one busy process competing for the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

from petseg_lib.data.oxford_pet import SimpleOxfordPetDataset, collate
from petseg_lib.data.sample import ensure_sample_dataset, make_sample_dataset
from petseg_lib.models.baselines import DeepLabV3_ResNet50, LRASPP_MobileNetV3
from petseg_lib.models.resnet34_unet import ResNet34_UNet
from petseg_lib.models.unet import UNet
from petseg_lib.paths import default_data_path
from petseg_lib.speed import (
    amp_dtype,
    amp_helps,
    cpu_flags,
    glibc,
    keep_freed_memory,
    keep_memory_helps,
    synchronize,
)
from petseg_lib.use.photos import mask_png, save_png, segment_logits, threshold_logits

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


def best_gflops(run: Callable[[], object], flops: float, device: torch.device, reps: int,
                tries: int = 3) -> float:
    """GFLOP/s of RUN(), which does FLOPS operations: the best of TRIES bursts of REPS calls."""
    run()  # warm-up: the library picks its kernel, memory is allocated
    best = 0.0
    for _ in range(tries):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(reps):
            run()
        synchronize(device)
        best = max(best, flops * reps / (time.perf_counter() - start) / 1e9)
    return best


def kernel_gflops(device: torch.device, dtype: torch.dtype, n: int, smoke: bool
                  ) -> dict[str, float]:
    """GFLOP/s of the fastest kernels in DTYPE: an N x N torch.mm, a channels-last 3x3 conv."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    batch, channels, side = (2, 16, 16) if smoke else (8, 128, 64)
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    conv = conv.to(device, dtype, memory_format=torch.channels_last)  # oneDNN's own layout
    images = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
    images = images.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return {f"torch.mm {n}x{n}": best_gflops(lambda: a @ b, 2 * n**3, device, reps=5),
                f"conv 3x3 {channels} ch {side} px NHWC": best_gflops(
                    lambda: conv(images), 2 * batch * channels**2 * 9 * side**2, device, reps=3)}


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# FLOPs per cycle and core by instruction set, the best first. A CPU does not say how many
# vector units it has, so two are assumed: 16 float32 lanes x 2 (multiply and add) x 2 units
# for AVX-512, 8 lanes for AVX2; 32 bfloat16 products per AVX-512 BF16 instruction; AMX's tile
# unit does 1024 bfloat16 FLOPs a cycle.
TWO = "two FMA units assumed"
FLOPS_PER_CYCLE = {
    "fp32": (("avx512f", f"AVX-512, {TWO}", 64), ("avx2", f"AVX2, {TWO}", 32)),
    "bf16": (("amx_bf16", "AMX", 1024), ("avx512_bf16", f"AVX-512 BF16, {TWO}", 128)),
}


def lscpu_fields() -> dict[str, str]:
    """lscpu's "key: value" lines (empty where there is no lscpu)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {key.strip(): value.strip() for key, _, value in
            (line.partition(":") for line in text.splitlines()) if value}


def max_clock_ghz(fields: dict[str, str]) -> float | None:
    """The cores' highest clock, from cpufreq or lscpu; None when the machine does not say."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1e6
    except (OSError, ValueError):
        pass
    try:
        return float(fields["CPU max MHz"]) / 1e3
    except (KeyError, ValueError):
        return None


def theoretical_peak(precision: str, threads: int) -> str | None:
    """'2 cores x 2.60 GHz x 64 FLOP/cycle (AVX-512, ...) = 333 GFLOP/s'; None when unknown."""
    fields = lscpu_fields()
    clock = max_clock_ghz(fields)
    try:
        cores = int(fields["Core(s) per socket"]) * int(fields["Socket(s)"])
    except (KeyError, ValueError):
        return None
    unit = next(((name, per_cycle) for flag, name, per_cycle in FLOPS_PER_CYCLE.get(precision, ())
                 if flag in cpu_flags()), None)
    if clock is None or unit is None:
        return None
    cores = min(cores, threads)  # the threads torch computes with, at most one per core
    return (f"{cores} cores x {clock:.2f} GHz x {unit[1]} FLOP/cycle ({unit[0]}) = "
            f"{cores * clock * unit[1]:.0f} GFLOP/s")


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
            precision = layout.split()[-1] if amp else "fp32"
            cases.append(dict(label=label, layout=layout, runner=runner, flops=flops,
                              memory=memory, precision=precision, train=[], infer=[], mfu=[]))
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
                memory=peak_memory_mb(runner.train_step, device), precision="fp32", train=[],
                infer=[], mfu=[])


def time_models(cases: list[dict], args, device: torch.device) -> list[dict]:
    """Interleaved repeats: each measures its peaks, then every case once; returns the peaks.

    A repeat's peak in a precision is its fastest kernel (kernel_gflops); where a model's own
    training rate beat every kernel, the peak is that rate instead, noted under "raised by".
    """
    peaks = []
    for _ in range(args.repeats):
        peak = {precision: {"kernels": kernel_gflops(device, PRECISIONS[precision],
                                                     args.matmul_size, args.smoke),
                            "raised by": {}}
                for precision in dict.fromkeys(c["precision"] for c in cases)}
        achieved = {}
        for case in cases:
            train_rate = args.batch_size / case["runner"].train_step()
            case["train"].append(train_rate)
            case["infer"].append(args.batch_size / case["runner"].infer_step())
            achieved[id(case)] = train_rate * case["flops"] / 1e9
        for precision, measured in peak.items():
            measured["peak"] = max(measured["kernels"].values())
            for case in cases:
                if case["precision"] == precision and achieved[id(case)] > measured["peak"]:
                    measured["raised by"][f"{case['label']} {case['layout']}"] = achieved[id(case)]
            measured["peak"] = max([measured["peak"], *measured["raised by"].values()])
        for case in cases:
            case["mfu"].append(achieved[id(case)] / peak[case["precision"]]["peak"])
        peaks.append(peak)
    return peaks


def peak_lines(peaks: list[dict], device: torch.device) -> list[str]:
    """What MFU divides by, per precision: the peak, the kernels it came from, the theory."""
    lines = ["peak per precision: the fastest of the kernels below in each repeat (best of 3 "
             "bursts each); MFU divides a repeat's training GFLOP/s by that repeat's peak"]
    for precision in peaks[0]:
        rates = [repeat[precision]["peak"] for repeat in peaks]
        kernels = ", ".join(
            f"{name} {statistics.median(r[precision]['kernels'][name] for r in peaks):.0f}"
            for name in peaks[0][precision]["kernels"])
        lines.append(f"  {precision}: {statistics.median(rates):.0f} GFLOP/s (repeats: "
                     f"{', '.join(f'{r:.0f}' for r in rates)}); kernels, medians: {kernels}")
        theory = theoretical_peak(precision, torch.get_num_threads()) \
            if device.type == "cpu" else None
        if theory:
            lines.append(f"    theoretical: {theory}")
        for number, repeat in enumerate(peaks, 1):
            for label, rate in repeat[precision]["raised by"].items():
                lines.append(f"    repeat {number}: {label} trained at {rate:.0f} GFLOP/s, "
                             "faster than every kernel: that rate is the repeat's peak")
    return lines


def model_table(cases: list[dict], peaks: list[dict], device: torch.device) -> list[str]:
    """The models' rows, with medians over the repeats."""
    lines = [*peak_lines(peaks, device), "",
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
# An own photo
# ---------------------------------------------------------------------------

def write_photo(workdir: Path, smoke: bool) -> Path:
    """A JPEG like a phone photo (about 3 MB at 4000 x 3000): colour fields, noise, a "pet"."""
    width, height = (400, 300) if smoke else (4000, 3000)
    rng = np.random.default_rng(0)
    fields = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    pixels = np.asarray(fields.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    pixels = pixels + rng.integers(-12, 13, pixels.shape)
    pixels[height // 6:5 * height // 6, width // 4:3 * width // 4] = (230, 180, 120)
    path = workdir / "photo.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def photo_seconds(model: nn.Module, path: Path, amp: bool, repeats: int) -> float:
    """Seconds from the JPEG at PATH to its mask PNG beside it: median of REPEATS, warmed up."""
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        mask = threshold_logits(segment_logits(model, path, amp=amp))
        save_png(mask_png(mask), path.with_name("photo_mask.png"))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def demo_model() -> nn.Module:
    """The demo's model: UNet base 8, trained at 64 px (untrained here: the work is the same)."""
    model = UNet(base_channels=8).eval()
    model.image_size = 64
    return model


def photo_table(args, workdir: Path) -> list[str]:
    """Own-photo latency: one big JPEG from file to mask PNG, for each model at its size."""
    path = write_photo(workdir, args.smoke)
    with Image.open(path) as photo:
        width, height = photo.size
    lines = [f"own photo on the CPU: {width} x {height} JPEG -> decode, resize, predict, logits "
             "back to full size, threshold, write the mask PNG (median of "
             f"{args.repeats} after one warm-up)"]
    large = ResNet34_UNet().eval()
    large.image_size = 32 if args.smoke else 256
    for name, model in (("UNet base 8 at 64 px (demo)", demo_model()),
                        (f"ResNet34_UNet at {large.image_size} px", large)):
        for amp in (False, amp_helps(torch.device("cpu"))) if not args.smoke else (False,):
            lines.append(f"  {name:<28} {'bf16' if amp else 'fp32'}: "
                         f"{photo_seconds(model, path, amp, args.repeats):.3f} s")
    return lines


# ---------------------------------------------------------------------------
# The real photos, and a busy machine
# ---------------------------------------------------------------------------

def real_root(args) -> Path | None:
    """The real photos: --data, else data/oxford-iiit-pet; None where absent, and in smoke mode."""
    if args.smoke and not args.data:
        return None  # the tiny sample stands in for them
    root = Path(args.data) if args.data else default_data_path()
    return root if SimpleOxfordPetDataset.detect(root) else None


def training_rate(image_size: int, args, device: torch.device) -> tuple[float, str]:
    """ResNet34_UNet's training images/s at IMAGE_SIZE as training runs it here, and how."""
    amp = amp_helps(device)
    torch.manual_seed(0)
    runner = Runner(ResNet34_UNet(), args.batch_size, image_size, device, True, amp, args.steps)
    runner.train_step()  # warm-up
    seconds = statistics.median(runner.train_step() for _ in range(2))
    return args.batch_size / seconds, f"NHWC, {amp_layout(device)[5:] if amp else 'fp32'}"


def real_table(root: Path, args, device: torch.device) -> list[str]:
    """Samples/s of plain and augmented samples at each size, beside the training rate."""
    rows = []
    for size in (32,) if args.smoke else (64, 128, 256):
        dataset = SimpleOxfordPetDataset(root, "train", size, augment=True)  # decoded, no cache
        n = len(dataset.names)
        plain, augmented = (samples_per_second(Subset(dataset, range(first, 2 * n, 2)), 0,
                                               args.batch_size, 1) for first in (0, 1))
        train, how = training_rate(size, args, device)
        rows.append(f"{size:>5} {plain:>8.0f} {augmented:>11.0f} {train:>11.2f} "
                    f"{plain / train:>12.0f}x {augmented / train:>16.0f}x")
    return [f"real photos: {root} ({n} training images), samples/s of a DataLoader in the "
            f"training process (batch {args.batch_size}, decoded from JPEG, one pass after an "
            f"untimed one), beside ResNet34_UNet's training images/s ({how}, batch "
            f"{args.batch_size})",
            f"{'size':>5} {'plain/s':>8} {'augmented/s':>11} {'train img/s':>11} "
            f"{'plain x train':>13} {'augmented x train':>17}", *rows]


@contextlib.contextmanager
def busy_competitor() -> Iterator[subprocess.Popen]:
    """Another process that keeps one core busy (a pure-Python loop), stopped by its PID after.

    It runs in a session of its own, as another user's program would: Linux's autogroup
    scheduling shares the cores between sessions first, so a competitor in the bench's own
    session would take half of the bench's share instead of one core of the machine.
    """
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               start_new_session=True)
    try:
        yield process
    finally:
        process.kill()  # SIGKILL to its PID, even when the measurement failed
        process.wait()


def contention_table(root: Path, args) -> list[str]:
    """Samples/s and the demo's photo time without and with one busy competing process."""
    sizes, limit = ((32,), 8) if args.smoke else ((64, 128), 160)
    amp = amp_helps(torch.device("cpu"))  # as the inference command's default
    measures = {}
    for size in sizes:
        dataset = SimpleOxfordPetDataset(root, "train", size, augment=True)
        n = min(limit, len(dataset.names))  # the first N images, plain, then augmented
        for kind, first in (("plain", 0), ("augmented", 1)):
            measures[f"{kind} samples/s, {size} px"] = functools.partial(
                samples_per_second, Subset(dataset, range(first, 2 * n, 2)), 0,
                args.batch_size, 1)
    with tempfile.TemporaryDirectory(prefix="petseg-bench-") as workdir:
        photo = write_photo(Path(workdir), args.smoke)
        measures[f"demo photo s ({'bf16' if amp else 'fp32'})"] = functools.partial(
            photo_seconds, demo_model(), photo, amp, args.repeats)
        results = {what: ([], []) for what in measures}
        for _ in range(args.repeats):  # pairs, alone then busy, so that a drift hits both
            for what, measure in measures.items():
                results[what][0].append(measure())
                with busy_competitor():
                    results[what][1].append(measure())
    lines = [f"one busy competitor: a pure-Python loop in another process, started before and "
             f"stopped after each measurement; {root.name}, the first {n} training images, a "
             f"DataLoader in the training process, batch {args.batch_size}; the demo's photo as "
             f"above; medians of {args.repeats} pairs",
             f"{'':<28} {'alone':>8} {'1 busy':>8} {'busy / alone':>12}"]
    for what, (alone, busy) in results.items():
        alone, busy = statistics.median(alone), statistics.median(busy)
        digits = 3 if what.startswith("demo") else 0
        lines.append(f"{what:<28} {alone:>8.{digits}f} {busy:>8.{digits}f} "
                     f"{busy / alone:>12.2f}")
    return lines


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

SECTIONS = ("models", "photo", "data", "real", "contention")


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
    parser.add_argument("--data", default=None,
                        help="dataset folder: the data rows' (default: the sample) and the real "
                             "photos' (default: data/oxford-iiit-pet)")
    parser.add_argument("--skip_models", action="store_true", help="no model table")
    parser.add_argument("--skip_data", action="store_true",
                        help="no data rows (sample, real photos, busy competitor)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=None,
                        help="only these sections, in the usual order")
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
    skipped = (("models",) if args.skip_models else ()) + \
        (("data", "real", "contention") if args.skip_data else ())
    args.sections = [name for name in args.only or SECTIONS if name not in skipped]
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
    if "models" in args.sections:
        with keep_freed_memory(args.keep_memory):
            cases = model_cases(args, device)
            peaks = time_models(cases, args, device)
        lines += show(["", *model_table(cases, peaks, device), "", *ratio_lines(cases)])
        best = find_case(cases, "ResNet34_UNet", "NHWC")
        train_rate = statistics.median(best["train"]) if best else None
    with tempfile.TemporaryDirectory(prefix="petseg-bench-") as workdir:
        if "photo" in args.sections:
            lines += show(["", *photo_table(args, Path(workdir))])
        wanted = set(args.sections)
        real = real_root(args) if wanted & {"real", "contention"} else None
        sample = data_root(args, Path(workdir)) if "data" in wanted or (
            real is None and wanted & {"real", "contention"}) else None
        if args.smoke and not args.data:
            real = sample
        if "data" in args.sections:
            section = ["", *data_table(sample, args, train_rate)]
            if train_rate:
                section.append(f"(x ResNet34_UNet training: samples/s over ResNet34_UNet's "
                               f"NHWC training rate of {train_rate:.2f} images/s above)")
            lines += show(section)
        if "real" in args.sections:
            lines += show(["", *(real_table(real, args, device) if real else [
                f"real photos: none at {args.data or default_data_path()} (--data PATH); "
                "their rows are skipped"])])
        if "contention" in args.sections:
            lines += show(["", *contention_table(real or sample, args)])
    return lines


def show(section: list[str]) -> list[str]:
    """Print SECTION's lines as soon as they are measured; return them."""
    print("\n".join(section), flush=True)
    return section


if __name__ == "__main__":
    main()
