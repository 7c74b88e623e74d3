"""DistributedDataParallel on the CPU: gloo over 127.0.0.1, tiny runs, bounded in time.

`torchrun` itself is run once, end to end. The other runs start their processes as torchrun
would, but forked from this one (no new Python to start, which takes seconds per process): each
gets torchrun's environment variables and runs petseg_lib.train's command line, recording what
it returned, printed and wrote, and whether it left the process group.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException, start_processes

from petseg_lib import train as train_module
from petseg_lib.cli import run_cli
from petseg_lib.evaluation.evaluate import evaluate as evaluate_model
from petseg_lib.models import build_model
from petseg_lib.training import distributed
from petseg_lib.training.checkpoint import model_from_checkpoint, read_checkpoint
from petseg_lib.training.losses import build_loss

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120
# 32 training images and 4 validation images; no augmentation, so nothing random in a step.
SETTINGS = ["--model", "unet", "--base_channels", "4", "--image_size", "32", "--limit", "32",
            "--learning_rate", "1e-3", "--loss", "dice", "--device", "cpu", "--no-progress",
            "--no-amp", "--no-channels_last", "--no-cache", "--run_name", "ddp", "--sync_bn"]
KEYS = ("train_loss", "valid_loss", "train_dice", "valid_dice")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(data: Path, folder: Path, *options: str) -> list[str]:
    """The command line of a tiny run writing into FOLDER."""
    return [*SETTINGS, "--data_path", str(data), "--checkpoint_dir", str(folder / "ckpt"),
            "--output_dir", str(folder / "out"), *options]


def fail_in_second_epoch(train_one_epoch):
    """TRAIN_ONE_EPOCH, but in the second epoch the loader breaks after its first batch."""
    def failing_loader(loader):
        yield next(iter(loader))
        raise RuntimeError("injected failure in epoch 2")

    def one_epoch(model, loader, criterion, optimizer, device, epoch, *args, **kwargs):
        loader = failing_loader(loader) if epoch == 1 else loader
        return train_one_epoch(model, loader, criterion, optimizer, device, epoch, *args,
                               **kwargs)
    return one_epoch


def recorded(write, records: Path, rank: int):
    """WRITE, noting each call in records/writes_rank<RANK>.txt."""
    def write_and_note(*args, **kwargs):
        with open(records / f"writes_rank{rank}.txt", "a") as log:
            log.write(write.__name__ + "\n")
        return write(*args, **kwargs)
    return write_and_note


def as_torchrun(rank: int, nproc: int, port: int) -> None:
    """Make this process look like torchrun's process RANK of NPROC."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1


def rank_main(rank: int, nproc: int, port: int, argv: list[str], records: Path,
              fail_rank: int | None) -> None:
    """Process RANK of NPROC: what torchrun would run, recording what it did under RECORDS."""
    as_torchrun(rank, nproc, port)
    sys.stdout = open(records / f"stdout_rank{rank}.txt", "w", buffering=1)
    for name in ("save_checkpoint", "write_history"):
        setattr(train_module, name, recorded(getattr(train_module, name), records, rank))
    if rank == fail_rank:  # after its first step, so that rank 0 has saved epoch 1
        train_module.train_one_epoch = fail_in_second_epoch(train_module.train_one_epoch)
    destroy = dist.destroy_process_group

    def destroy_and_record(*args, **kwargs):
        destroy(*args, **kwargs)
        (records / f"left_rank{rank}").touch()

    dist.destroy_process_group = destroy_and_record
    try:
        history = run_cli(train_module.main, argv)
    except Exception as err:
        (records / f"error_rank{rank}.txt").write_text(repr(err))
        raise
    (records / f"history_rank{rank}.json").write_text(json.dumps(history))


def start(function, nproc: int, *args) -> None:
    """FUNCTION(rank, NPROC, port, *ARGS) in NPROC forked processes; raises if one fails."""
    context = start_processes(function, (nproc, free_port(), *args), nprocs=nproc, join=False,
                              start_method="fork")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):  # raises when a process fails, ending the others
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the processes ran past {TIMEOUT_S} s")


def launch(nproc: int, argv: list[str], records: Path, fail_rank: int | None = None) -> list:
    """Run train's command line in NPROC processes as torchrun would; returns their histories."""
    records.mkdir(parents=True, exist_ok=True)
    start(rank_main, nproc, argv, records, fail_rank)
    return [json.loads((records / f"history_rank{rank}.json").read_text())
            for rank in range(nproc)]


def one_step(model: torch.nn.Module, rank: int = 0, nproc: int = 1) -> torch.Tensor:
    """The loss of one training step on this process's share of 4 fixed images (float64)."""
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = (torch.rand(4, 1, 32, 32, generator=generator) > 0.5).double()
    share = slice(rank * 4 // nproc, (rank + 1) * 4 // nproc)
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images[share]),
                                                                masks[share])
    loss.backward()
    return loss


def fresh_unet() -> torch.nn.Module:
    """The same tiny float64 UNet in every process."""
    torch.manual_seed(0)
    return build_model("unet", base_channels=4).double()


def half_batch_step(rank: int, nproc: int, port: int, out: Path) -> None:
    """One DDP step with --sync_bn on half the images; rank 0 saves gradients and buffers."""
    as_torchrun(rank, nproc, port)
    with distributed.process_group("cpu"):
        model = fresh_unet()
        one_step(distributed.data_parallel(model, sync_bn=True), rank, nproc)
        if rank == 0:
            torch.save([[p.grad for p in model.parameters()], list(model.buffers())], out)


@pytest.fixture(scope="module")
def runs(sample_root, tmp_path_factory) -> dict:
    """One process with batch 4; two with batch 2; two broken by an error, then resumed."""
    folder = tmp_path_factory.mktemp("ddp")
    one = launch(1, settings(sample_root, folder / "one", "--batch_size", "4", "--epochs", "2"),
                 folder / "one" / "records")
    two = launch(2, settings(sample_root, folder / "two", "--batch_size", "2", "--epochs", "2"),
                 folder / "two" / "records")
    broken = settings(sample_root, folder / "broken", "--batch_size", "2", "--epochs", "2")
    started = time.monotonic()
    with pytest.raises((ProcessRaisedException, ProcessExitedException)):
        launch(2, broken, folder / "broken" / "records", fail_rank=1)
    seconds = time.monotonic() - started
    resumed = launch(2, [*broken, "--resume"], folder / "resumed" / "records")
    return dict(folder=folder, one=one[0], two=two, seconds=seconds, resumed=resumed)


def test_sync_batchnorm_on_cpus_is_batchnorm_over_the_whole_batch(tmp_path):
    start(half_batch_step, 2, tmp_path / "two.pt")
    grads, buffers = torch.load(tmp_path / "two.pt")
    model = fresh_unet()
    one_step(model)  # one process, all 4 images, plain BatchNorm
    for grad, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(grad, p.grad, rtol=1e-9, atol=1e-12)
    for buffer, reference in zip(buffers, model.buffers(), strict=True):
        torch.testing.assert_close(buffer, reference, rtol=1e-12, atol=1e-12)


def test_two_processes_with_half_batches_train_like_one_with_the_whole(runs):
    # A fair comparison. Both runs are torchrun runs, so in both DistributedSampler orders
    # the samples: epoch e shuffles the 32 indices with seed + e. The one process takes them
    # all, in batches of 4. Rank r of two takes every second index from r on, in batches of 2,
    # so step k of the two together sees exactly the 4 images of the one process's batch k
    # (32 divides by 2: no padding). DDP averages the two half-batch gradients: the gradient
    # of the whole batch's mean loss. With --sync_bn, BatchNorm normalises over all 4 images,
    # as the one process's BatchNorm does. Only float rounding differs (sums in another
    # order); Adam carries it on from step to step, hence the tolerance: measured, about 1e-5
    # for the losses and 1e-4 for Dice, where a pixel near 0.5 may fall on the other side.
    one, two = runs["one"], runs["two"][0]
    for key in KEYS:
        assert two[key] == pytest.approx(one[key], abs=1e-4 if "loss" in key else 2e-3), key
    assert one["train_loss"][1] < one["train_loss"][0]  # it did learn


def test_every_rank_reports_the_same_numbers_and_only_rank_0_prints_and_writes(runs):
    rank0, rank1 = runs["two"]
    assert rank0 == rank1
    folder = runs["folder"] / "two"
    assert json.loads((folder / "out" / "ddp_history.json").read_text()) == rank0
    records = folder / "records"
    assert (records / "writes_rank0.txt").read_text().split().count("write_history") == 1
    assert not (records / "writes_rank1.txt").exists()
    assert "epoch 2: train loss" in (records / "stdout_rank0.txt").read_text()
    assert (records / "stdout_rank1.txt").read_text() == ""
    assert sorted(p.name for p in (folder / "ckpt").iterdir()) == ["ddp_best.pth",
                                                                   "ddp_last.pth"]
    assert all((records / f"left_rank{rank}").exists() for rank in (0, 1))


def test_an_error_in_one_process_ends_the_run_and_resume_goes_on(runs):
    records = runs["folder"] / "broken" / "records"
    assert "injected failure in epoch 2" in (records / "error_rank1.txt").read_text()
    assert (records / "left_rank1").exists()  # it left the process group on its way out
    assert runs["seconds"] < TIMEOUT_S
    # Every rank loaded the last checkpoint (epoch 1) and the sampler went on with epoch 2:
    # the same numbers as the run that was not broken.
    assert runs["resumed"][0] == runs["resumed"][1] == runs["two"][0]


def test_torchrun_command_line(sample_root, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "petseg_lib.train",
               *settings(sample_root, tmp_path, "--batch_size", "2", "--epochs", "1")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torchrun and the processes it started
        pytest.fail(f"torchrun ran past {TIMEOUT_S} s")
    assert process.returncode == 0, out + err
    assert out.count("Training ddp on cpu") == 1 and out.count("epoch 1: train loss") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ddp_history.json",
                                                                    "ddp_metrics.png"]
    path = tmp_path / "ckpt" / "ddp_best.pth"
    state = read_checkpoint(path)
    assert not any(key.startswith("module.") for key in state["state_dict"])
    model = model_from_checkpoint(state, path)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def five_samples() -> list[dict]:
    """5 validation samples of random 8x8 images and masks, the same in every process."""
    generator = torch.Generator().manual_seed(2)
    samples = []
    for i in range(5):
        image = torch.rand(3, 8, 8, generator=generator)
        trimap = torch.randint(1, 4, (1, 8, 8), generator=generator)  # pet, background, edge
        samples.append({"image": image, "mask": (trimap != 2).float(), "trimap": trimap,
                        "name": f"v{i}"})
    return samples


def fixed_conv(out_channels: int = 1) -> torch.nn.Module:
    """The same small conv in every process: one logit per pixel, or three classes."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, out_channels, 3, padding=1)


def criterion(out_channels: int) -> torch.nn.Module:
    """The loss of a model with OUT_CHANNELS outputs: BCE for one, build_loss("ce") for three."""
    return build_loss("bce" if out_channels == 1 else "ce")


def score_share(rank: int, nproc: int, port: int, out: Path, out_channels: int) -> None:
    """Score this process's share of five_samples() with distributed.evaluate; save it."""
    as_torchrun(rank, nproc, port)
    with distributed.process_group("cpu"):
        samples = five_samples()
        loader = torch.utils.data.DataLoader(samples, batch_size=2,
                                             sampler=distributed.valid_sampler(samples))
        results = distributed.evaluate(fixed_conv(out_channels), loader, "cpu",
                                       criterion(out_channels))
        (out / f"rank{rank}.json").write_text(json.dumps([len(loader.sampler), results]))


@pytest.mark.parametrize("out_channels", [1, 3])
def test_an_odd_validation_set_is_scored_once_per_image_over_two_processes(tmp_path,
                                                                             out_channels):
    start(score_share, 2, tmp_path, out_channels)
    (n0, rank0), (n1, rank1) = (json.loads((tmp_path / f"rank{r}.json").read_text())
                                for r in (0, 1))
    assert (n0, n1) == (3, 2)  # every second image: none left out, none twice
    samples = torch.utils.data.DataLoader(five_samples(), batch_size=5)
    whole = evaluate_model(fixed_conv(out_channels), samples, "cpu", criterion(out_channels))
    assert rank0 == rank1
    assert rank0.pop("class_iou", None) == pytest.approx(whole.pop("class_iou", None))
    assert rank0 == pytest.approx(whole, rel=1e-6)
    assert ("mean_iou" in whole) == (out_channels == 3)  # three classes: IoU of each class


def test_a_user_error_under_torchrun_is_one_line_and_the_other_process_stops_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "petseg_lib.train", "--data_path",
         str(tmp_path / "missing"), "--device", "cpu", "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No Oxford-IIIT Pet dataset" in errors[0]
    assert "[rank1]" not in done.stderr and "Connection" not in done.stderr


def test_only_a_lost_peer_counts_as_another_process_stopping():
    assert distributed.peer_stopped(RuntimeError("[pair.cc:545] Read error: Connection reset "
                                                 "by peer"))
    assert distributed.peer_stopped(dist.DistBackendError("NCCL communicator was aborted"))
    assert not distributed.peer_stopped(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not distributed.peer_stopped(ValueError("Connection reset by peer"))
