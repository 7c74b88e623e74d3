"""Fast paths against plain ones: channels_last, torch.compile, the resized-image cache,
the training speed-up switches, and the benchmark script in smoke mode."""

import importlib.util
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from petseg_lib import compare, oxford_pet
from petseg_lib.evaluate import evaluate
from petseg_lib.inference import load_model
from petseg_lib.models import ResNet34_UNet, UNet
from petseg_lib.oxford_pet import SimpleOxfordPetDataset, collate, load_dataset, split_names
from petseg_lib.train import (
    TrainConfig,
    channels_last_helps,
    glibc,
    keep_freed_memory,
    speedups,
    train,
)

from .conftest import write_dataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def same_sample(a: dict, b: dict) -> bool:
    """True when two samples are equal bit for bit (None stays None)."""
    for key in ("image", "mask", "trimap"):
        if (a[key] is None) != (b[key] is None):
            return False
        if a[key] is not None and not (a[key].dtype == b[key].dtype
                                       and torch.equal(a[key], b[key])):
            return False
    return a["name"] == b["name"]


@pytest.fixture
def pets(tmp_path, sample_root) -> Path:
    """A private copy of the sample dataset (photo-sized JPEGs), free to cache and modify."""
    return Path(shutil.copytree(sample_root, tmp_path / "pets",
                                ignore=shutil.ignore_patterns("cache")))


# ---------------------------------------------------------------- channels_last, compile


@pytest.mark.parametrize("build", [lambda: UNet(base_channels=8), ResNet34_UNet],
                         ids=["unet", "resnet34_unet"])
def test_channels_last_gives_the_same_outputs_and_gradients(build):
    torch.manual_seed(0)
    plain = build()
    fast = build().to(memory_format=torch.channels_last)
    fast.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    out_plain = plain(x)
    out_fast = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-4, atol=1e-4)
    out_plain.square().mean().backward()
    out_fast.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-5, msg=name)


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


def test_cached_plain_samples_equal_decoded_ones_bit_for_bit(pets, monkeypatch):
    for mode in ("train", "valid", "test"):
        cached = SimpleOxfordPetDataset(pets, mode, image_size=48, cache=True)
        decoded = SimpleOxfordPetDataset(pets, mode, image_size=48)
        assert cached.cache is not None and len(cached) == len(decoded)
        for i in range(len(decoded)):
            assert same_sample(cached[i], decoded[i]), (mode, i)
    # The training split augmented: the even, plain, indices are the same too.
    cached = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True, cache=True)
    decoded = SimpleOxfordPetDataset(pets, "train", image_size=48)
    expected = [decoded[i] for i in range(3)]
    monkeypatch.setattr(oxford_pet, "load_rgb", None)  # a read that decodes a JPEG would fail
    for i in range(3):
        assert same_sample(cached[2 * i], expected[i])
    assert cached[1]["image"].shape == (3, 48, 48)  # augmented samples come from the cache too


def test_cached_augmentation_has_the_same_geometry_up_to_resampling(pets):
    cached = SimpleOxfordPetDataset(pets, "train", image_size=64, augment=True, cache=True)
    decoded = SimpleOxfordPetDataset(pets, "train", image_size=64, augment=True)
    for i in range(1, 30, 2):
        torch.manual_seed(i)
        a = cached[i]
        torch.manual_seed(i)
        b = decoded[i]
        # Same random crop box, flip, greyscale and brightness: only the resampling differs.
        assert (a["mask"] == b["mask"]).float().mean() > 0.93, i
        assert (a["image"] - b["image"]).abs().mean() < 0.06, i
        assert set(a["trimap"].unique().tolist()) <= {1, 2, 3}


def test_a_stale_or_damaged_cache_is_rebuilt(pets):
    first = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    old_stem = first.cache.paths["images"].name
    name = first.names[0]
    # Replace the first image by a plain red picture: the fingerprint changes.
    with Image.open(pets / "images" / f"{name}.jpg") as im:
        size = im.size
    Image.new("RGB", size, (255, 0, 0)).save(pets / "images" / f"{name}.jpg")
    second = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    assert second.cache.paths["images"].name != old_stem
    fresh = SimpleOxfordPetDataset(pets, "train", image_size=32)
    assert same_sample(second[0], fresh[0])
    assert second[0]["image"][0].mean() > 0.95 and second[0]["image"][1:].mean() < 0.05
    # A truncated cache file is noticed and written again.
    path = second.cache.paths["images"]
    path.write_bytes(path.read_bytes()[:1000])
    third = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    assert third.cache.is_valid() and same_sample(third[3], fresh[3])


def test_two_builders_at_once_leave_one_complete_cache(pets):
    barrier = threading.Barrier(2)
    datasets, errors = [], []
    decode = SimpleOxfordPetDataset._decode_resized

    def slow_decode(self, index):
        if index == 0:
            barrier.wait(timeout=30)  # both builders are writing at the same time
        return decode(self, index)

    def build():
        try:
            datasets.append(SimpleOxfordPetDataset(pets, "valid", 32, cache=True))
        except Exception as err:  # reported below
            errors.append(err)

    SimpleOxfordPetDataset._decode_resized = slow_decode
    try:
        threads = [threading.Thread(target=build) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        SimpleOxfordPetDataset._decode_resized = decode
    assert not errors and len(datasets) == 2
    fresh = SimpleOxfordPetDataset(pets, "valid", 32)
    for ds in datasets:
        assert all(same_sample(ds[i], fresh[i]) for i in range(len(fresh)))
    folder = datasets[0].cache.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in datasets[0].cache.paths.values())  # no temporary files left


def test_a_failed_build_leaves_nothing_behind(pets, monkeypatch):
    def broken(self, index):
        raise OSError("disk full")

    monkeypatch.setattr(SimpleOxfordPetDataset, "_decode_resized", broken)
    with pytest.warns(UserWarning, match="disk full"):
        ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    assert ds.cache is None and ds[0]["image"].shape == (3, 32, 32)
    assert not [p for p in (pets / "cache").rglob("*") if p.is_file()]


def test_a_read_only_dataset_works_without_a_cache(tmp_path):
    root = write_dataset(tmp_path / "ro", n_trainval=6, n_test=2)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="read-only"):
            ds = SimpleOxfordPetDataset(root, "train", 32, augment=True, cache=True)
        assert ds.cache is None and not (root / "cache").exists()
        assert same_sample(ds[0], SimpleOxfordPetDataset(root, "train", 32)[0])
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_cached_dataset_in_dataloader_workers(pets):
    ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    in_process = list(DataLoader(ds, batch_size=2, collate_fn=collate))
    in_workers = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2))
    for a, b in zip(in_process, in_workers, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert ds.cache.__getstate__()["arrays"] is None  # workers open the files themselves


def test_cache_is_keyed_by_size_and_names(pets):
    a = SimpleOxfordPetDataset(pets, "train", 32, cache=True)
    b = SimpleOxfordPetDataset(pets, "train", 48, cache=True)
    c = SimpleOxfordPetDataset(pets, "train", 32, limit=5, cache=True)
    assert a.cache.folder.name == "32-v1" and b.cache.folder.name == "48-v1"
    assert a.cache.paths["images"] != c.cache.paths["images"]
    assert np.load(c.cache.paths["images"]).shape == (5, 3, 32, 32)
    assert np.load(a.cache.paths["images"]).shape == (len(split_names(pets, "train")), 3, 32, 32)


# ---------------------------------------------------------------- training switches


def test_speedup_defaults_follow_the_device():
    cpu = speedups(TrainConfig(), torch.device("cpu"))
    assert cpu == {"cache": False, "channels_last": True, "amp": False, "pin_memory": False,
                   "persistent_workers": False, "cudnn_benchmark": False, "keep_memory": True}
    small = speedups(TrainConfig(image_size=64), torch.device("cpu"))
    assert not small["channels_last"]  # NHWC is slower than NCHW for small CPU images
    cuda = speedups(TrainConfig(num_workers=2), torch.device("cuda"))
    assert cuda.pop("keep_memory") is False  # the big tensors live on the GPU
    assert all(cuda.values())
    chosen = speedups(TrainConfig(cache=True, channels_last=False, amp=True, num_workers=2,
                                  persistent_workers=False), torch.device("cpu"))
    assert chosen["cache"] and chosen["amp"] and not chosen["channels_last"]
    assert not chosen["persistent_workers"]


def test_test_scores_use_the_fast_paths_and_give_the_same_scores(pets, tmp_path):
    assert channels_last_helps(torch.device("cpu"), 128)
    assert not channels_last_helps(torch.device("cpu"), 64)
    assert channels_last_helps(torch.device("cuda"), 64)
    train(TrainConfig(data_path=str(pets), model_kwargs={"base_channels": 4}, image_size=128,
                      epochs=1, limit=8, progress=False, run_name="fast",
                      checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "o")))
    best = tmp_path / "c" / "fast_best.pth"
    cpu = torch.device("cpu")
    fast = compare.test_scores(best, pets, 128, cpu, limit=6)  # NHWC, memory kept
    loader = DataLoader(load_dataset(pets, "test", 128, limit=6), batch_size=8,
                        collate_fn=collate)
    plain = evaluate(load_model(best), loader, cpu)  # NCHW, glibc's defaults
    assert fast["dice"] == pytest.approx(plain["dice"], abs=1e-4)
    assert fast["iou_pooled"] == pytest.approx(plain["iou_pooled"], abs=1e-4)


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


@pytest.mark.skipif(glibc() is None, reason="glibc's malloc only")
def test_freed_memory_is_kept_while_training_and_returned_after():
    assert growth_after_a_freed_tensor() < 64  # glibc's default: unmapped at once
    with keep_freed_memory() as active:
        assert active
        assert growth_after_a_freed_tensor() > 200  # kept in the heap ...
        inside = rss_mb()
        assert growth_after_a_freed_tensor(192) < 64  # ... and reused by the next one
    assert rss_mb() < inside - 200  # given back on exit
    assert growth_after_a_freed_tensor() < 64  # and the defaults are back
    with keep_freed_memory(enabled=False) as active:
        assert not active
        assert growth_after_a_freed_tensor() < 64
    with keep_freed_memory():
        with keep_freed_memory():  # e.g. the benchmark around a training run
            pass
        assert growth_after_a_freed_tensor() > 200  # the inner exit left it on


def test_training_with_the_fast_paths_on_the_cpu(pets, tmp_path, monkeypatch):
    compiled, real_compile = [], torch.compile

    def quick_compile(model):  # the real compiler takes minutes; this traces the same way
        compiled.append(model)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", quick_compile)
    settings = dict(data_path=str(pets), model="unet", model_kwargs={"base_channels": 4},
                    image_size=32, epochs=2, batch_size=4, limit=8, learning_rate=1e-3,
                    augment=True, progress=False, checkpoint_dir=str(tmp_path / "c"),
                    output_dir=str(tmp_path / "o"))
    fast = train(TrainConfig(run_name="fast", cache=True, channels_last=True, amp=True,
                             compile=True, **settings))
    assert len(compiled) == 1 and (pets / "cache" / "32-v1").is_dir()
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
    loss, dice = train_one_epoch(model, [batch], nn.BCEWithLogitsLoss(), optimizer, "cpu",
                                 progress=False, amp=True, channels_last=True)
    assert np.isfinite(loss) and 0.0 <= dice <= 1.0
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


# ---------------------------------------------------------------- the benchmark


def load_bench():
    """benchmarks/bench.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("petseg_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_smoke_mode_prints_the_whole_table(tmp_path, capsys):
    bench = load_bench()
    threads = torch.get_num_threads()
    try:
        lines = bench.main(["--smoke"])
    finally:
        torch.set_num_threads(threads)
    text = "\n".join(lines)
    assert capsys.readouterr().out.strip().endswith(lines[-1].strip())
    assert "torch " + torch.__version__ in text and "matmul peak" in text
    for label in ("UNet base 8", "UNet base 4", "ResNet34_UNet"):
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
