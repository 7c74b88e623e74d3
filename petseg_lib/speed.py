"""Speed-ups: which device to use, and the switches that make a step faster on it.

Nothing here changes what a model computes, only how fast (measurements in
benchmarks/README.md). `speedups(config, device)` turns a TrainConfig's switches, where
they are None, into the defaults that help on DEVICE:

- channels_last: NHWC memory layout; faster on CUDA, and on a CPU for the course's models
  from 32 to 256 px (up to a third faster for the narrow quick models; the one exception
  measured, the full-width ResNet34-UNet at 64 px in float32, was 2 % slower);
- amp: mixed precision: float16 with a GradScaler on CUDA, bfloat16 on a CPU that computes it
  natively (AMX or AVX-512 BF16: about 1.6-2.4 x faster training), float32 elsewhere;
- pin_memory, persistent_workers, cudnn_benchmark: faster input copies and kernels on CUDA;
- num_workers (`data_workers`): with CUDA, 4 processes decode and augment images while the
  GPU computes (1.6 x faster epochs with augmentation on an H100); on a CPU none, since they
  would take the cores that compute;
- cache: the resized-image cache (cache.py), worth it when the step outruns JPEG decoding:
  on CUDA, and on a CPU for small images (QUICK mode trains 1.4-1.7 x faster with it);
- keep_memory: on a CPU, glibc keeps freed memory for the next step (`keep_freed_memory`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
from pathlib import Path

import torch
from torch import nn

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
MIB = 2**20
# What keep_freed_memory leaves behind (see its docstring).
MMAP_THRESHOLD_AFTER = 32 * MIB  # glibc's ceiling for its dynamic mmap threshold (64-bit)
TRIM_THRESHOLD_AFTER = 2 * MMAP_THRESHOLD_AFTER  # the trim threshold glibc pairs with it
MMAP_MAX_DEFAULT = 65536  # glibc's default number of mmapped blocks
_open_keepers = 0  # keep_freed_memory blocks open now (they may be nested)


def pick_device(name: str = "auto") -> torch.device:
    """The requested device, or the best available one for "auto"; a ValueError if it is absent."""
    if name != "auto":
        return available_device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_KINDS = {"cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


def available_device(name: str) -> torch.device:
    """The device called NAME ('cpu', 'cuda', 'cuda:1', 'mps'), or a ValueError saying why not."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {name}: not a device name; use auto, cpu, cuda, cuda:N "
                         "or mps") from err
    if device.type not in DEVICE_KINDS:
        raise ValueError(f"--device {name}: petseg runs on cpu, cuda or mps, not {device.type}")
    if not device_present(device):
        number = "" if device.index is None else f" number {device.index}"
        raise ValueError(f"--device {name}: this machine has no {DEVICE_KINDS[device.type]}"
                         f"{number}; use --device auto or cpu")
    return device


def device_present(device: torch.device) -> bool:
    """True when this machine has DEVICE (a cpu, cuda or mps device)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    return device.type == "cpu" or torch.backends.mps.is_available()


def synchronize(device: torch.device) -> None:
    """Wait until DEVICE has done the work queued on it, so that a timing includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def channels_last_helps(device: torch.device) -> bool:
    """NHWC convolutions are faster on CUDA, and on a CPU (oneDNN's native layout)."""
    return device.type in ("cuda", "cpu")


def data_workers(num_workers: int | None, device: torch.device) -> int:
    """NUM_WORKERS DataLoader processes; for None, 4 with CUDA (fewer on fewer cores), else 0."""
    if num_workers is not None:
        return num_workers
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


def cache_helps(device: torch.device, image_size: int) -> bool:
    """Decoding JPEGs costs more than the step on CUDA, and on a CPU up to about 128 px."""
    return device.type == "cuda" or image_size <= 128


def keep_memory_helps(device: torch.device) -> bool:
    """Only on a CPU do a step's big tensors come from malloc (see keep_freed_memory)."""
    return device.type == "cpu"


def memory_format(channels_last: bool) -> torch.memory_format:
    """torch.channels_last (NHWC) when asked, else the usual NCHW layout."""
    return torch.channels_last if channels_last else torch.contiguous_format


def fast_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """MODEL in channels_last when that is faster on DEVICE."""
    return model.to(memory_format=memory_format(channels_last_helps(device)))


def amp_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision of mixed-precision steps: float16 on CUDA, bfloat16 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


@functools.cache  # the CPU does not change while the program runs
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bfloat16() -> str | None:
    """The CPU feature that computes bfloat16 natively ('AMX', 'AVX-512 BF16'), else None."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    return None


def amp_helps(device: torch.device) -> bool:
    """Mixed precision pays on CUDA, and on a CPU with native bfloat16."""
    return device.type == "cuda" or (device.type == "cpu" and native_bfloat16() is not None)


def describe_precision(device: torch.device, amp: bool) -> str:
    """One line that says which precision a run uses on DEVICE, and why."""
    if device.type == "cuda":
        return "precision: float16 autocast with a gradient scaler" if amp else \
            "precision: float32 (--no-amp)"
    native = native_bfloat16() if device.type == "cpu" else None
    if amp:
        why = f"this CPU has {native}" if native else "asked for; no native bfloat16 here, so " \
            "it may be slower"
        return f"precision: bfloat16 autocast ({why}; --no-amp for float32)"
    why = "--no-amp" if native else "no native bfloat16 (AMX or AVX-512 BF16) on this device"
    return f"precision: float32 ({why})"


def speedups(config, device: torch.device) -> dict[str, bool]:
    """CONFIG's speed-up switches, each None replaced by the default for DEVICE."""
    cuda = device.type == "cuda"
    defaults = {
        # JPEG decoding is the bottleneck on CUDA, and on a CPU for small images (about a
        # third of a 64-px epoch); at the report's 256 px a CPU step dwarfs it.
        "cache": cache_helps(device, config.image_size),
        "channels_last": channels_last_helps(device),
        "amp": amp_helps(device),
        "pin_memory": cuda,
        "persistent_workers": data_workers(config.num_workers, device) > 0,
        "cudnn_benchmark": cuda,
        "keep_memory": keep_memory_helps(device),
    }
    return {name: default if getattr(config, name) is None else bool(getattr(config, name))
            for name, default in defaults.items()}


@functools.cache  # platform.libc_ver reads the Python executable: once is enough
def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the process's own symbols: malloc, mallopt, malloc_trim


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True):
    """While inside, glibc keeps freed memory for reuse; on exit most of it goes back.

    glibc hands big blocks back to the system when they are freed, so each training step at
    256 px page-faults and zero-fills its activations again: about a fifth of a step on a CPU.
    Inside this block every block comes from the heap and stays there for the next step, at
    the price of some more memory (benchmarks/README.md). Elsewhere than glibc it does
    nothing. Yields whether it is active.

    What stays changed after the outermost block: mallopt cannot give back glibc's *dynamic*
    mmap threshold, so the process keeps fixed thresholds instead: a new block of 32 MiB or
    more gets its own mapping (returned when freed) unless a free piece of the heap already
    fits it, smaller ones come from the heap, the heap is trimmed when 64 MiB or more is free
    at its top, and up to 65536 blocks may be mapped. These are the values the dynamic
    threshold reaches in any process that has freed a block of 32 MiB, as a training step
    does; they just no longer move.
    """
    global _open_keepers
    libc = glibc() if enabled else None
    if libc is None:
        yield False
        return
    if _open_keepers == 0:
        libc.mallopt(M_MMAP_MAX, 0)  # big blocks come from the heap, not from fresh mappings
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # and freed memory is not trimmed away
    _open_keepers += 1
    try:
        yield True
    finally:
        _open_keepers -= 1
        if _open_keepers == 0:  # the outermost block sets the fixed thresholds above
            libc.mallopt(M_MMAP_MAX, MMAP_MAX_DEFAULT)
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_AFTER)
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
            libc.malloc_trim(0)  # return what training kept
