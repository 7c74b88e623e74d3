"""Several processes, one model: DistributedDataParallel (DDP) under `torchrun`.

    torchrun --nproc_per_node=4 -m petseg_lib.train --model unet --batch_size 8 --sync_bn

torchrun starts one process per GPU and tells each, in environment variables, its RANK
(0 .. WORLD_SIZE-1), the WORLD_SIZE and its LOCAL_RANK on its own machine. Every process builds
the same model, reads its own share of each epoch's shuffled samples, and DDP averages the
gradients of all processes before every Adam step, so the copies of the model stay equal.
`batch_size` is per process: one step sees batch_size x WORLD_SIZE images. The validation set
is shared out too, and the scores summed, so every process reports the same numbers; only
process 0 prints and writes files. Without torchrun each function here leaves things as they
are, so `python -m petseg_lib.train` trains exactly as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..evaluation.evaluate import SegmentationMeter
from ..evaluation.evaluate import evaluate as evaluate_model
from ..models.classes import ClassIoU
from ..speed import pick_device

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """True when torchrun started this process: it sets RANK, WORLD_SIZE and LOCAL_RANK."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """True inside `process_group()`, when this process trains together with others."""
    return dist.is_available() and dist.is_initialized()


def is_main() -> bool:
    """True for the process that prints and writes files: rank 0, or the only process."""
    return not is_distributed() or dist.get_rank() == 0


def main_first(function: Callable[..., T], *args) -> T:
    """FUNCTION(*ARGS) in process 0, then in the others: what it makes is made only once."""
    result = function(*args) if is_main() else None
    if is_distributed():
        dist.barrier()  # the others wait until process 0 is done
    return result if is_main() else function(*args)


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[None]:
    """Under torchrun: join the other processes for the block and leave them, also on an error.

    NCCL connects the GPUs (this process uses GPU LOCAL_RANK), gloo the CPUs. The processes
    other than rank 0 stay quiet: their prints and progress bars go to os.devnull.
    """
    if not launched_by_torchrun() or is_distributed():
        yield
        return
    cuda = pick_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" now means this GPU
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        with open(os.devnull, "w") as sink, contextlib.ExitStack() as quiet:
            if is_main():
                print(f"torchrun: {dist.get_world_size()} processes ({dist.get_backend()}); "
                      "each step sees batch_size x that many images.")
            else:
                quiet.enter_context(contextlib.redirect_stdout(sink))
                quiet.enter_context(contextlib.redirect_stderr(sink))
            yield
    except Exception as err:
        if is_main() or not peer_stopped(err):
            raise
        # Process 0 stopped (it has said why, e.g. a missing dataset, in one line): this
        # process stops too, without a traceback about the connection it lost.
        raise SystemExit(2) from None
    finally:
        dist.destroy_process_group()


def peer_stopped(err: Exception) -> bool:
    """True when ERR says that another process of the group has gone away."""
    lost = ("Connection reset by peer", "Connection closed by peer", "Broken pipe")
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and any(text in str(err) for text in lost))


# ---------------------------------------------------------------------------
# The model: DDP, and BatchNorm statistics over every process's images
# ---------------------------------------------------------------------------

def summed(tensor: torch.Tensor) -> torch.Tensor:
    """A new tensor: TENSOR summed over all processes."""
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total


class SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes; its gradient is summed over them too."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return summed(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return summed(grad)


# torch's nn.SyncBatchNorm runs only on GPUs (and DDP refuses it in a CPU model): on CPUs,
# --sync_bn turns the BatchNorm2d layers into this one, which does the same with gloo.
class SyncBatchNormCPU(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of all processes' images together."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed() and dist.get_world_size() > 1):
            return super().forward(x)  # evaluation, or a single process: BatchNorm as usual
        # The mean and variance of each channel over all processes' images; every process's
        # loss depends on them, so their gradients are summed over the processes as well.
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        wide = x.to(torch.promote_types(x.dtype, torch.float32))  # not bfloat16 (autocast)
        count = wide.new_tensor([x.numel() / x.shape[1]])  # values per channel in this process
        sums = SumOverProcesses.apply(torch.cat([wide.sum(dims), count]))
        mean, count = sums[:-1] / sums[-1], sums[-1]
        var = SumOverProcesses.apply(((wide - mean.view(shape)) ** 2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1 / self.num_batches_tracked.item() if self.momentum is None
                            else self.momentum)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / (count - 1), momentum)  # unbiased
        normalized = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            normalized = normalized * self.weight.view(shape) + self.bias.view(shape)
        return normalized.to(x.dtype)


def data_parallel(model: nn.Module, sync_bn: bool = False) -> nn.Module:
    """Under torchrun: MODEL inside DDP (its BatchNorm layers synchronised when SYNC_BN).

    DDP shares MODEL's weights, so MODEL itself is what is saved: its state_dict has no
    "module." prefix. Without torchrun MODEL is returned as it is.
    """
    if not is_distributed():
        return model
    cuda = next(model.parameters()).is_cuda
    if sync_bn and cuda:  # converts MODEL's layers in place; the weights stay the same tensors
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn:
        for layer in model.modules():
            if type(layer) is nn.BatchNorm2d:
                layer.__class__ = SyncBatchNormCPU  # the same layer, with the forward above
    return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if cuda
                                   else None)


# ---------------------------------------------------------------------------
# The data: each process its share
# ---------------------------------------------------------------------------

def train_sampler(dataset: Dataset, seed: int) -> DistributedSampler | None:
    """Under torchrun: this process's share of each epoch's shuffle (None without torchrun).

    With --augment the training set is doubled: index 2i is image i, 2i + 1 its augmented
    copy. The sampler shuffles all the indices together and deals them out, so the shares are
    disjoint and together cover every index: each epoch still sees every original and every
    augmented copy (when the count does not divide by WORLD_SIZE, a few from the start of the
    shuffle are seen twice, so that every process has as many batches). An image and its copy
    may land on different processes, just as a one-process shuffle puts them in different
    batches: that is how the doubling is respected.
    """
    return DistributedSampler(dataset, shuffle=True, seed=seed) if is_distributed() else None


def valid_sampler(dataset: Dataset) -> list[int] | None:
    """Under torchrun: every WORLD_SIZE-th image for this process, none twice; else None."""
    if not is_distributed():
        return None
    return list(range(dist.get_rank(), len(dataset), dist.get_world_size()))


def begin_epoch(loader: DataLoader, epoch: int) -> None:
    """Under torchrun: this epoch's shuffle, and random augmentations of this process's own.

    The seeds follow from (seed, epoch, rank) alone, so a resumed run goes on as it would have.
    """
    sampler = loader.sampler
    if not isinstance(sampler, DistributedSampler):
        return
    sampler.set_epoch(epoch)  # the shuffle of seed + epoch, the same on every process
    seed = int(np.random.SeedSequence([sampler.seed, epoch, sampler.rank]).generate_state(1)[0])
    torch.manual_seed(seed)  # augmentations drawn in this process (num_workers=0)
    loader.generator.manual_seed(seed)  # the workers' seeds (num_workers > 0)


# ---------------------------------------------------------------------------
# The numbers: the same on every process
# ---------------------------------------------------------------------------

def mean_over_processes(numbers: tuple[float, ...]) -> tuple[float, ...]:
    """The mean of NUMBERS over the processes (NUMBERS itself without torchrun).

    Every process trains on as many samples, so the mean of their means is the mean over all.
    """
    if not is_distributed():
        return numbers
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = summed(torch.tensor(numbers, dtype=torch.float64, device=device))
    return tuple((total / dist.get_world_size()).tolist())


def merge_meters(meter: SegmentationMeter, class_meter: ClassIoU, loss_sum: float,
                 n_images: int) -> tuple[float, int]:
    """Gather every process's scores into the meters; returns the summed loss and image count."""
    if not is_distributed():
        return loss_sum, n_images
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, (meter, class_meter, loss_sum, n_images))
    meters, class_meters = [share[0] for share in shares], [share[1] for share in shares]
    for name in ("intersection", "pred_sum", "target_sum"):
        setattr(meter, name, sum(getattr(other, name) for other in meters))
    for name in ("per_image_dice", "per_image_iou", "names"):
        setattr(meter, name, [value for other in meters for value in getattr(other, name)])
    for name in ("intersection", "union"):  # three classes: pixels pooled over every process
        setattr(class_meter, name, sum(getattr(other, name) for other in class_meters))
    return sum(share[2] for share in shares), sum(share[3] for share in shares)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str,
             criterion: nn.Module | None = None, amp: bool = False) -> dict:
    """evaluate.evaluate, each process scoring its share; all of them get the whole set's."""
    if is_distributed():  # score rank 0's BatchNorm statistics, the model that rank 0 saves
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    return evaluate_model(model, loader, device, criterion, amp=amp, reduce=merge_meters)
