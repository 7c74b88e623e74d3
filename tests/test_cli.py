"""Every command line answers a user's mistake in one line on stderr, with exit status 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .test_inference import write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run `python -m petseg_lib.<args>` in a fresh process; return the finished process."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PETSEG_DEBUG": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=environment, timeout=300)  # a hang guard


def assert_one_line_error(result, *words: str) -> None:
    """Exit status 2, no traceback, one `error:` line on stderr that holds WORDS."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> Path:
    """A file that is not a checkpoint at all."""
    path = tmp_path_factory.mktemp("bad") / "garbage.pth"
    path.write_bytes(os.urandom(2000))
    return path


def test_inference_missing_and_garbage_checkpoints(tmp_path, garbage):
    assert_one_line_error(run("petseg_lib.inference", "--model", str(tmp_path / "none.pth")),
                          "No checkpoint", "none.pth")
    assert_one_line_error(run("petseg_lib.inference", "--model", str(garbage)),
                          "garbage.pth", "not a petseg checkpoint")


def test_debug_shows_the_traceback(tmp_path):
    result = run("petseg_lib.inference", "--model", str(tmp_path / "none.pth"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr
    result = run("petseg_lib.inference", "--model", str(tmp_path / "none.pth"),
                 env={"PETSEG_DEBUG": "1"})
    assert "Traceback" in result.stderr


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, tiny_root):
    marker = tmp_path / "pwned"

    class Payload:  # unpickling this calls os.system: a checkpoint must never do it
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil_last.pth"  # what `--run_name evil --resume` reads
    torch.save({"format": "petseg-checkpoint", "model_name": "unet", "x": Payload()}, evil)
    result = run("petseg_lib.inference", "--model", str(evil))
    assert_one_line_error(result, "evil_last.pth", "refused")
    assert not marker.exists()
    resumed = run("petseg_lib.train", "--quick", "--run_name", "evil", "--resume",
                  "--checkpoint_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"),
                  "--limit", "4", "--image_size", "32", "--data_path", str(tiny_root))
    assert_one_line_error(resumed, "evil_last.pth", "refused")
    assert not marker.exists()


@pytest.mark.parametrize("option, value, words", [
    ("--epochs", "0", ("epochs", "at least 1")),
    ("--image_size", "16", ("image_size", "at least 32")),
    ("--image_size", "100000", ("image_size must be at most 4096, not 100000",)),
    ("--batch_size", "-3", ("batch_size",)),
    ("--base_channels", "-3", ("base_channels", "at least 1")),
    ("--device", "gpu", ("--device gpu", "not a device name")),
    ("--time_budget", "-5", ("time_budget must be a number of seconds above 0", "-5")),
])
def test_train_refuses_impossible_values(option, value, words):
    assert_one_line_error(run("petseg_lib.train", "--quick", option, value), *words)


def test_train_refuses_a_width_for_a_model_without_one():
    result = run("petseg_lib.train", "--quick", "--model", "segformer_b0", "--base_channels", "8")
    assert_one_line_error(result, "segformer_b0 has no setting base_channels", "out_channels")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_good_checkpoint_with_device_cuda_on_a_machine_without_cuda(tmp_path):
    good = write_checkpoint(tmp_path / "good.pth")
    result = run("petseg_lib.inference", "--model", str(good), "--device", "cuda")
    assert_one_line_error(result, "--device cuda: this machine has no CUDA GPU")


def test_train_with_a_missing_dataset_or_an_unwritable_folder(tmp_path):
    assert_one_line_error(run("petseg_lib.train", "--quick", "--data_path",
                              str(tmp_path / "nowhere")), "No Oxford-IIIT Pet dataset")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert_one_line_error(run("petseg_lib.train", "--quick", "--checkpoint_dir",
                              str(blocker / "sub")), "cannot write")


def test_other_commands_answer_in_one_line(tmp_path):
    assert_one_line_error(run("petseg_lib.data", "--root", str(tmp_path / "none")),
                          "No Oxford-IIIT Pet dataset")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run("petseg_lib.data", "--sample", "--root", str(blocker / "sample")))
    assert_one_line_error(run("petseg_lib.data", "--sample", "--n-test", "-1"), "--n-test")
    assert_one_line_error(run("petseg_lib.compare", "--quick", "--output_dir",
                              str(blocker / "out")), "cannot write")
    assert_one_line_error(run("petseg_lib.demo", "--data_path", str(tmp_path / "none")),
                          "No Oxford-IIIT Pet dataset")
    assert_one_line_error(run("petseg_lib.inference", "--model", "x.pth", "--threshold", "2"),
                          "--threshold")
