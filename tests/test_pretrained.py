"""ImageNet weights: downloaded from a local server, hash-checked, read without running code,
used by `train --pretrained` and `compare --pretrained`, and left out in one line offline."""

import functools
import hashlib
import http.server
import threading

import pytest
import torch
import torchvision

from petseg_lib import compare
from petseg_lib.models import ResNet34_UNet, imagenet_weights_problem, pretrained_kwargs
from petseg_lib.models import resnet34_unet as resnet34_module
from petseg_lib.training.config import parse_command

from .conftest import tiny_comparison


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A web server on 127.0.0.1 holding served/; the torch hub cache in an empty folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    torch.hub.set_dir(old_hub)
    httpd.shutdown()
    httpd.server_close()


def serve_resnet34(served, base_url, monkeypatch, name_hash: str | None = None) -> dict:
    """Serve a random ResNet34's state dict under a torchvision-style name; returns it."""
    torch.manual_seed(0)
    state = torchvision.models.resnet34(weights=None).state_dict()
    partial = served / "partial.pth"
    torch.save(state, partial)
    digest = name_hash or hashlib.sha256(partial.read_bytes()).hexdigest()[:8]
    file = partial.rename(served / f"resnet34-{digest}.pth")
    monkeypatch.setattr(resnet34_module, "RESNET34_IMAGENET_URL", f"{base_url}/{file.name}")
    return state


def test_weights_are_downloaded_checked_and_loaded_into_the_encoder(weights_server, monkeypatch,
                                                                     tmp_path):
    state = serve_resnet34(*weights_server, monkeypatch)
    assert imagenet_weights_problem() is None  # downloads into the hub cache
    assert len(list((tmp_path / "hub" / "checkpoints").glob("resnet34-*.pth"))) == 1
    model = ResNet34_UNet(pretrained_encoder=True)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_download_whose_hash_differs_from_its_name_is_refused(weights_server, monkeypatch,
                                                                 tmp_path):
    serve_resnet34(*weights_server, monkeypatch, name_hash="00000000")
    problem = imagenet_weights_problem()
    assert problem.startswith("the ImageNet weights of ResNet34 cannot be downloaded here (")
    assert "\n" not in problem and "hash" in problem.lower()
    with pytest.raises(RuntimeError, match="Could not download the ImageNet weights"):
        ResNet34_UNet(pretrained_encoder=True)
    assert not list((tmp_path / "hub").rglob("resnet34-*.pth"))  # nothing kept


class Trap:
    """An object whose unpickling would run code: it writes a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_weights_file_that_would_run_code_is_refused(weights_server, monkeypatch, tmp_path):
    served, base_url = weights_server
    marker = tmp_path / "code_ran"
    partial = served / "partial.pth"
    torch.save({"conv1.weight": Trap(marker)}, partial)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()[:8]
    file = partial.rename(served / f"resnet34-{digest}.pth")
    monkeypatch.setattr(resnet34_module, "RESNET34_IMAGENET_URL", f"{base_url}/{file.name}")
    with pytest.raises(RuntimeError, match="Could not download the ImageNet weights"):
        ResNet34_UNet(pretrained_encoder=True)
    assert not marker.exists()


def test_offline_the_problem_is_one_line(empty_hub):
    problem = imagenet_weights_problem()
    assert problem.startswith("the ImageNet weights of ResNet34 cannot be downloaded here")
    assert "\n" not in problem


def test_train_pretrained_flag_sets_the_models_own_setting():
    config, _ = parse_command(["--model", "resnet34_unet", "--pretrained", "--quick"])
    assert config.model_kwargs == {"pretrained_encoder": True}  # ResNet34's own width
    assert pretrained_kwargs("lraspp_mobilenet_v3") == {"pretrained_backbone": True}
    with pytest.raises(ValueError, match="unet has no ImageNet weights"):
        parse_command(["--model", "unet", "--pretrained"])


def compare_with_pretrained(sample_root, tmp_path):
    shared = tiny_comparison(sample_root, tmp_path, image_size=64)
    return compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  models=("unet",), augments=(False,), pretrained=True,
                                  **shared)


def test_compare_pretrained_adds_the_imagenet_configuration(sample_root, weights_server,
                                                           monkeypatch, tmp_path):
    serve_resnet34(*weights_server, monkeypatch)
    rows = compare_with_pretrained(sample_root, tmp_path)
    assert [r["label"] for r in rows] == ["UNet",
                                          "ResNet34-UNet (ImageNet encoder) + augmentation"]
    assert rows[1]["run_name"] == "resnet34_unet_imagenet_aug_quick"
    assert 0.0 <= rows[1]["dice"] <= 1.0


def test_compare_pretrained_offline_says_so_and_goes_on(sample_root, empty_hub, tmp_path,
                                                        capsys):
    rows = compare_with_pretrained(sample_root, tmp_path)
    assert [r["label"] for r in rows] == ["UNet"]
    printed = capsys.readouterr().out
    assert "The ImageNet weights of ResNet34 cannot be downloaded here" in printed
    assert "is left out." in printed
