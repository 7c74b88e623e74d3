"""Threads: how many cores one piece of work spreads over, so that a busy machine cannot stall it.

PyTorch splits every operation over all its OpenMP threads and waits for the last one. When
another process holds a core, a thread that has lost it makes the others wait for it, on every
operation: a 64 px sample or a tiny model's forward pass, made of many small operations, then
runs several times slower than on one thread (benchmarks/README.md). So:

- per-sample data work (reading, resizing, augmenting, stacking a batch) runs on one thread:
  `limit_threads(1)` around it, in resized.py and batch.py. DataLoader workers run on one
  thread each already (PyTorch sets it in every worker process);
- an inference forward pass gets one thread per WORK_PER_THREAD operations, at most the
  threads torch has (`forward_threads`, in predict.py): a tiny model stays on one thread, a
  ResNet34-UNet at 256 px uses every core;
- a training step on the CPU gets the threads of its forward pass (`step_threads`, in
  train.py): the quick UNet's step (64 px, base 8, batch 16) stays on one thread, which on 2
  quiet cores is as fast as two (4.0 s either way for four quick epochs) and cannot stall
  when another process is busy, while larger steps (the quick ResNet34-UNet, the laptop
  recipe: 1.2 and 1.5 times faster on two threads) use every core. With one busy process
  beside it, four quick UNet epochs on the real photos took 7.4 s this way and 186 s with
  the step on both threads (3.6 s on the quiet machine).

Switching the count costs a fraction of a microsecond; the first parallel operation after
the count grows again re-forms OpenMP's team, a few hundred microseconds, once per batch.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel
from torch.utils.flop_counter import FlopCounterMode

# Operations (multiply-adds count two) that make one more thread worth it: about 10 ms of one
# core's convolutions, far above what splitting and waiting cost on a quiet machine.
WORK_PER_THREAD = 1e9
# model -> {(height, width): FLOPs of one image}, forgotten with the model
_counted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """While inside, torch uses at most THREADS threads; the count before comes back after."""
    before = torch.get_num_threads()
    if threads >= before:  # already few enough: nothing to switch
        yield before
        return
    torch.set_num_threads(max(threads, 1))
    try:
        yield max(threads, 1)
    finally:
        torch.set_num_threads(before)


def threads_for_work(flops: float, available: int | None = None) -> int:
    """Threads worth spreading FLOPS operations over: one per WORK_PER_THREAD, 1 to AVAILABLE."""
    available = available or torch.get_num_threads()
    return max(1, min(available, int(flops // WORK_PER_THREAD)))


def unwrapped(model: nn.Module) -> nn.Module:
    """The module that computes: MODEL without torch.compile's or DDP's wrapper."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    return model.module if isinstance(model, DistributedDataParallel) else model


def forward_flops(model: nn.Module, height: int, width: int) -> int | None:
    """FLOPs of MODEL's forward pass on one (3, HEIGHT, WIDTH) image; None when unknown.

    Counted once per model and size (torch.utils.flop_counter: convolutions and matrix
    products) on the meta device, so nothing is computed; a model without parameters (an
    .onnx file's) or one whose forward needs real values is unknown.
    """
    sizes = _counted.setdefault(model, {})
    if (height, width) not in sizes:
        sizes[height, width] = _count_forward(unwrapped(model), height, width)
    return sizes[height, width]


def step_threads(model: nn.Module, images: torch.Tensor,
                 device: torch.device) -> contextlib.AbstractContextManager:
    """A block in which a training step of MODEL on IMAGES, on DEVICE, uses threads sized to it."""
    if device.type != "cpu":  # the step runs on the accelerator: the count does not matter
        return contextlib.nullcontext()
    return forward_threads(model, images.cpu())


def _count_forward(model: nn.Module, height: int, width: int) -> int | None:
    """forward_flops without the memory: MODEL run on meta copies of its tensors."""
    tensors = {name: torch.empty_like(t, device="meta")
               for name, t in (*model.named_parameters(), *model.named_buffers())}
    if not tensors:
        return None
    image = torch.empty(1, 3, height, width, device="meta")
    training = model.training
    model.eval()  # one image: BatchNorm in training mode would want more than one value
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            functional_call(model, tensors, (image,))
    except (RuntimeError, NotImplementedError, ValueError):  # a forward reading values
        return None
    finally:
        model.train(training)
    return counter.get_total_flops()


def forward_threads(model: nn.Module, images: torch.Tensor) -> contextlib.AbstractContextManager:
    """A block in which MODEL's forward pass on IMAGES (N, 3, H, W) uses threads sized to it.

    Only on the CPU; elsewhere, and for work that cannot be counted, the count stays.
    """
    if images.device.type != "cpu":
        return contextlib.nullcontext()
    flops = forward_flops(model, *images.shape[-2:])
    if flops is None:
        return contextlib.nullcontext()
    return limit_threads(threads_for_work(flops * images.shape[0]))
