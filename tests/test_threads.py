"""The thread rule: per-sample work on one thread, a forward pass and a training step on threads
sized to their work."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from petseg_lib.data.batch import collate
from petseg_lib.data.oxford_pet import SimpleOxfordPetDataset
from petseg_lib.evaluation.predict import predict_logits
from petseg_lib.models.resnet34_unet import ResNet34_UNet
from petseg_lib.models.unet import UNet
from petseg_lib.threads import (
    WORK_PER_THREAD,
    forward_flops,
    forward_threads,
    limit_threads,
    step_threads,
    threads_for_work,
)
from petseg_lib.train import train_one_epoch


@pytest.fixture
def four_threads():
    """Torch on 4 threads during the test, whatever the machine; the count before after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield 4
    torch.set_num_threads(before)


def test_limit_threads_lowers_the_count_inside_and_restores_it(four_threads):
    with limit_threads(1) as inside:
        assert inside == 1 and torch.get_num_threads() == 1
        with limit_threads(2):  # more than the outer block allows: stays at 1
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 4
    with limit_threads(8) as inside:  # above the count: nothing changes
        assert inside == 4 and torch.get_num_threads() == 4
    assert torch.get_num_threads() == 4


def test_limit_threads_restores_the_count_after_an_exception(four_threads):
    with pytest.raises(ValueError, match="inside"), limit_threads(1):
        raise ValueError("inside")
    assert torch.get_num_threads() == 4


def test_threads_for_work_gives_one_thread_per_share_within_what_there_is():
    assert threads_for_work(0, 4) == 1
    assert threads_for_work(WORK_PER_THREAD * 0.9, 4) == 1
    assert threads_for_work(WORK_PER_THREAD * 2, 4) == 2
    assert threads_for_work(WORK_PER_THREAD * 100, 4) == 4


class ThreadsSeen(Dataset):
    """A dataset that answers with the thread count its reading runs at."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict:
        return {"threads": torch.tensor(torch.get_num_threads())}


def test_dataloader_workers_read_on_one_thread(four_threads):
    batches = list(DataLoader(ThreadsSeen(), batch_size=2, num_workers=1, collate_fn=collate))
    assert batches[0]["threads"].tolist() == [1, 1]
    assert torch.get_num_threads() == 4


def test_samples_are_read_and_batched_on_one_thread_then_the_count_comes_back(
        tiny_root, four_threads, monkeypatch):
    dataset = SimpleOxfordPetDataset(tiny_root, "train", 32, augment=True,
                                     augment_level="strong")
    seen = []
    read = dataset.read
    monkeypatch.setattr(dataset, "read", lambda name: (seen.append(torch.get_num_threads()),
                                                       read(name))[1])
    batch = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate)))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert seen and set(seen) == {1}  # plain, augmented and CutMix's second image
    assert torch.get_num_threads() == 4


class CountingThreads(nn.Module):
    """Wraps MODEL and records the thread count each forward pass on real images runs at."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.device.type != "meta":  # not the count of its work (threads.forward_flops)
            self.seen.append(torch.get_num_threads())
        return self.model(images)


def test_a_tiny_forward_pass_runs_on_one_thread_a_large_one_on_every_thread(four_threads):
    tiny = CountingThreads(UNet(base_channels=8)).eval()
    flops = forward_flops(tiny, 64, 64)
    assert 0 < flops < WORK_PER_THREAD  # the demo's model at 64 px
    with torch.no_grad():
        predict_logits(tiny, torch.rand(1, 3, 64, 64))
    assert tiny.seen == [1] and torch.get_num_threads() == 4
    large = ResNet34_UNet().eval()
    assert forward_flops(large, 256, 256) > 4 * WORK_PER_THREAD
    with forward_threads(large, torch.empty(1, 3, 256, 256)):
        assert torch.get_num_threads() == 4
    with forward_threads(tiny, torch.empty(int(2 * WORK_PER_THREAD // flops) + 1, 3, 64, 64)):
        assert torch.get_num_threads() == 2  # a batch of tiny images: work for two threads


def test_a_model_whose_work_cannot_be_counted_keeps_the_threads(four_threads):
    class Numpy(nn.Module):  # no parameters, computes outside torch (an .onnx file's kind)
        def forward(self, images):
            return torch.from_numpy(images.numpy()[:, :1])

    assert forward_flops(Numpy(), 8, 8) is None
    with forward_threads(Numpy(), torch.rand(1, 3, 8, 8)):
        assert torch.get_num_threads() == 4


def test_a_small_training_step_runs_on_one_thread_a_large_one_on_every_thread(four_threads):
    batches = {"image": torch.rand(2, 3, 64, 64), "mask": torch.ones(2, 1, 64, 64)}
    for model, expected in ((CountingThreads(UNet(base_channels=8)), 1),
                            (CountingThreads(UNet(base_channels=64)), 4)):
        optimizer = torch.optim.Adam(model.parameters())
        train_one_epoch(model, [batches], nn.BCEWithLogitsLoss(), optimizer, "cpu",
                        progress=False)
        assert model.seen == [expected] and torch.get_num_threads() == 4
    with step_threads(UNet(base_channels=8), torch.rand(2, 3, 64, 64), torch.device("cuda")):
        assert torch.get_num_threads() == 4  # a step on a GPU leaves the CPU's count alone
