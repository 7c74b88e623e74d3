"""Speed-ups against plain paths: channels_last, torch.compile, the switches per device,
kept memory, bfloat16 steps and training with every fast path on."""

import copy
import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from petseg_lib import speed
from petseg_lib.data.cache import CACHE_VERSION
from petseg_lib.models.resnet34_unet import ResNet34_UNet
from petseg_lib.models.unet import UNet
from petseg_lib.speed import (
    MIB,
    MMAP_THRESHOLD_AFTER,
    data_workers,
    glibc,
    keep_freed_memory,
    native_bfloat16,
    pick_device,
    speedups,
)
from petseg_lib.train import train
from petseg_lib.training.config import TrainConfig
from petseg_lib.training.loaders import make_loaders

# ---------------------------------------------------------------- channels_last, compile


@pytest.mark.parametrize("build", [lambda: UNet(base_channels=8), ResNet34_UNet],
                         ids=["unet", "resnet34_unet"])
def test_channels_last_gives_the_same_outputs_and_gradients(build):
    torch.manual_seed(0)
    plain = build()
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64)
    x_fast = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(x_fast), plain(x), rtol=1e-4, atol=1e-4)  # training mode
    # Gradients in eval mode, where BatchNorm is a fixed affine map. In training mode, at
    # random weights, BatchNorm subtracts nearly equal numbers in the deep, tiny maps, so that
    # float32 gradients differ from float64 ones by up to 20 % in either layout, and
    # comparing the two layouts element by element would measure that, not the layout.
    plain.eval(), fast.eval()
    plain(x).square().mean().backward()
    fast(x_fast).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters(), strict=True):
        scale = p.grad.abs().max().item()
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-4 * scale, msg=name)


def test_compiled_model_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain, twin = UNet(base_channels=4), UNet(base_channels=4)
    twin.load_state_dict(plain.state_dict())
    compiled = torch.compile(twin, backend="aot_eager")
    x = torch.rand(2, 3, 32, 32)
    out_plain, out_compiled = plain(x), compiled(x)
    torch.testing.assert_close(out_compiled, out_plain, rtol=1e-4, atol=1e-5)
    out_plain.sum().backward()
    out_compiled.sum().backward()
    grads = [p.grad for p in compiled.parameters()]
    for (name, p), g in zip(plain.named_parameters(), grads, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-3, atol=1e-5, msg=name)


# ---------------------------------------------------------------- the resized-image cache


# ---------------------------------------------------------------- training switches


def test_speedup_defaults_follow_the_device():
    cpu = speedups(TrainConfig(), torch.device("cpu"))
    native = native_bfloat16() is not None  # bfloat16 autocast where the CPU computes it
    assert cpu == {"cache": False, "channels_last": True, "amp": native, "pin_memory": False,
                   "persistent_workers": False, "cudnn_benchmark": False, "keep_memory": True}
    small = speedups(TrainConfig(image_size=64, augment=True), torch.device("cpu"))
    assert small["channels_last"]  # NHWC is faster for small CPU images too
    assert small["cache"]  # decoding JPEGs is a third of a small CPU epoch
    cuda = speedups(TrainConfig(num_workers=2), torch.device("cuda"))
    assert cuda.pop("keep_memory") is False  # the big tensors live on the GPU
    assert all(cuda.values())
    assert speedups(TrainConfig(), torch.device("cuda"))["persistent_workers"]  # 4 by default
    chosen = speedups(TrainConfig(cache=True, channels_last=False, amp=True, num_workers=2,
                                  persistent_workers=False), torch.device("cpu"))
    assert chosen["cache"] and chosen["amp"] and not chosen["channels_last"]
    assert not chosen["persistent_workers"]


def test_data_workers_decode_beside_a_gpu_only(monkeypatch):
    assert data_workers(None, torch.device("cpu")) == 0  # workers would take the CPU's cores
    assert data_workers(None, torch.device("cuda")) == min(4, os.cpu_count())
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert data_workers(None, torch.device("cuda")) == 2
    assert data_workers(3, torch.device("cpu")) == 3 and data_workers(0, torch.device("cuda")) == 0


@pytest.mark.parametrize("name, words", [
    ("gpu", "--device gpu: not a device name"),
    ("cuda", "--device cuda: this machine has no CUDA GPU; use --device auto or cpu"),
    ("cuda:1", "no CUDA GPU number 1"),
    ("meta", "runs on cpu, cuda or mps"),
])
def test_a_device_this_machine_lacks_is_one_value_error(monkeypatch, name, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=re.escape(words)):
        pick_device(name)
    assert pick_device("cpu") == torch.device("cpu") == pick_device("auto")


def test_a_device_that_is_there_is_picked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("auto") == torch.device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU number 2"):
        pick_device("cuda:2")


def test_loaders_start_the_workers_asked_for(sample_root):
    config = TrainConfig(data_path=str(sample_root), image_size=32, limit=8, device="cpu")
    assert make_loaders(config, sample_root)[0].num_workers == 0
    config = TrainConfig(data_path=str(sample_root), image_size=32, limit=8, num_workers=2)
    train_loader, valid_loader = make_loaders(config, sample_root)
    assert train_loader.num_workers == valid_loader.num_workers == 2


def rss_mb() -> float:
    """This process's resident memory in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


def growth_after_a_freed_tensor(mb: int = 256) -> float:
    """How much resident memory grows when a tensor of MB is filled and freed again."""
    before = rss_mb()
    big = torch.ones(mb * 2**20 // 4)  # float32: every page is touched
    del big
    return rss_mb() - before


def check_freed_memory_is_kept_inside_and_returned_after() -> None:
    """The checks behind the test below; they need a heap that no other test has shaped."""
    assert growth_after_a_freed_tensor() < 64  # glibc's default: unmapped at once
    with keep_freed_memory() as active:
        assert active
        assert growth_after_a_freed_tensor() > 200  # kept in the heap ...
        inside = rss_mb()
        assert growth_after_a_freed_tensor(192) < 64  # ... and reused by the next one
    assert rss_mb() < inside - 200  # given back on exit
    assert growth_after_a_freed_tensor() < 64  # and fixed thresholds map big blocks again
    with keep_freed_memory(enabled=False) as active:
        assert not active
        assert growth_after_a_freed_tensor() < 64
    with keep_freed_memory():
        with keep_freed_memory():  # e.g. the benchmark around a training run
            pass
        assert growth_after_a_freed_tensor() > 200  # the inner exit left it on


@pytest.mark.skipif(glibc() is None, reason="glibc's malloc only")
def test_freed_memory_is_kept_while_training_and_returned_after():
    # A fresh interpreter: earlier tests leave free pieces in this process's heap that a
    # big tensor may reuse, which would make the first measurement depend on test order.
    check = "import tests.test_speed as t; t.check_freed_memory_is_kept_inside_and_returned_after()"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_training_with_the_fast_paths_on_the_cpu(pets, tmp_path, monkeypatch, private_cache):
    compiled, real_compile = [], torch.compile

    def quick_compile(model):  # the real compiler takes minutes; this traces the same way
        compiled.append(model)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", quick_compile)
    settings = dict(data_path=str(pets), model="unet", model_kwargs={"base_channels": 4},
                    image_size=32, epochs=2, batch_size=4, limit=8, learning_rate=1e-3,
                    augment=True, progress=False, checkpoint_dir=str(tmp_path / "c"),
                    output_dir=str(tmp_path / "o"), amp=False)
    fast = train(TrainConfig(run_name="fast", cache=True, channels_last=True,
                             compile=True, **{**settings, "amp": True}))
    assert len(compiled) == 1 and (private_cache / f"32-v{CACHE_VERSION}").is_dir()
    assert all(np.isfinite(v).all() for v in fast.values())
    plain = train(TrainConfig(run_name="plain", channels_last=False, **settings))
    again = train(TrainConfig(run_name="again", channels_last=True, **settings))
    # channels_last changes only the order of floating-point sums.
    np.testing.assert_allclose(again["train_loss"], plain["train_loss"], rtol=1e-3)
    state = torch.load(tmp_path / "c" / "fast_best.pth", weights_only=False)["state_dict"]
    assert not any(key.startswith("_orig_mod") for key in state)  # saved without the wrapper


def test_amp_step_in_bfloat16_on_the_cpu():
    from petseg_lib.train import train_one_epoch

    torch.manual_seed(0)
    model = UNet(base_channels=4)
    batch = {"image": torch.rand(2, 3, 32, 32), "mask": (torch.rand(2, 1, 32, 32) > 0.5).float()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    dtypes = []  # of the last conv's output: autocast runs it in bfloat16

    def record(module, inputs, output) -> None:
        if output.device.type != "meta":  # not the count of its work (threads.step_threads)
            dtypes.append(output.dtype)

    model.outc.register_forward_hook(record)
    loss, dice = train_one_epoch(model, [batch], nn.BCEWithLogitsLoss(), optimizer, "cpu",
                                 progress=False, amp=True, channels_last=True)
    assert dtypes == [torch.bfloat16]
    assert np.isfinite(loss) and 0.0 <= dice <= 1.0
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


# ---------------------------------------------------------------- the benchmark




class MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (malloc.h): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def is_mmapped(libc, size: int) -> bool:
    """True when glibc serves a block of SIZE bytes with its own mapping, not from the heap."""
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    before = libc.mallinfo2().hblks
    block = libc.malloc(ctypes.c_size_t(size))
    try:
        return libc.mallinfo2().hblks == before + 1
    finally:
        libc.free(ctypes.c_void_p(block))


@pytest.mark.skipif(glibc() is None or not hasattr(glibc(), "mallinfo2"),
                    reason="glibc >= 2.33 only")
def test_after_keeping_memory_the_documented_fixed_thresholds_stay():
    libc = glibc()
    libc.mallinfo2.restype = MallInfo2

    def beyond_the_free_heap() -> int:  # a free heap chunk that fits is always used first
        return max(48 * MIB, libc.mallinfo2().fordblks + 64 * MIB)

    with keep_freed_memory():
        assert not is_mmapped(libc, beyond_the_free_heap())  # inside: every block from the heap
    # After the outermost block: new blocks of 32 MiB or more get their own mapping, smaller
    # ones come from the heap; the dynamic threshold no longer moves either limit.
    assert is_mmapped(libc, beyond_the_free_heap())
    assert not is_mmapped(libc, MMAP_THRESHOLD_AFTER - 4096)
    assert not is_mmapped(libc, 8 * MIB)


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "amx_bf16", "avx512_bf16"}, "AMX"),
    ({"avx512f", "avx512_bf16"}, "AVX-512 BF16"),
    ({"avx2", "fma"}, None),
    (set(), None),
])
def test_bfloat16_is_the_default_only_where_the_cpu_computes_it(monkeypatch, flags, native):
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset(flags))
    assert speed.native_bfloat16() == native
    cpu = torch.device("cpu")
    assert speedups(TrainConfig(), cpu)["amp"] is (native is not None)
    assert speedups(TrainConfig(amp=False), cpu)["amp"] is False  # --no-amp wins
    line = speed.describe_precision(cpu, speedups(TrainConfig(), cpu)["amp"])
    assert ("bfloat16" in line and native in line) if native else "float32" in line

