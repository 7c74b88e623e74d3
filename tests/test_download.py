"""Downloading from a local HTTP server on 127.0.0.1: checksums, retries, no half-made dataset."""

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from petseg_lib.cli import UserError
from petseg_lib.data import __main__ as data
from petseg_lib.data.download import download, is_downloaded
from petseg_lib.data.oxford_pet import (
    OxfordPetDataset,
)

from .conftest import write_dataset


def _archive(folder: str, files: dict) -> bytes:
    """A tar.gz holding FOLDER/<name> for each name -> bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server():
    """A 127.0.0.1 HTTP server; `routes[path] = [bytes, ...]`: one per request, last repeats."""
    routes, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _body(self):
            bodies = routes[self.path]
            return bodies.pop(0) if len(bodies) > 1 else bodies[0]

        def do_HEAD(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def do_GET(self):  # noqa: N802
            if self.headers.get("Method") == "HEAD":  # a redirect probe, not a download
                return self.do_HEAD()
            hits.append(self.path)
            body = self._body()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", routes, hits
    httpd.shutdown()


def _resources(tmp_path, url):
    """Two archives laid out like the official ones, and their (url, md5) pairs."""
    src = write_dataset(tmp_path / "src", n_trainval=3, n_test=1)
    images = _archive("images", {p.name: p.read_bytes() for p in (src / "images").iterdir()})
    trimaps = {f"trimaps/{p.name}": p.read_bytes()
               for p in (src / "annotations" / "trimaps").iterdir()}
    splits = {n: (src / "annotations" / n).read_bytes() for n in ("trainval.txt", "test.txt")}
    annotations = _archive("annotations", {**trimaps, **splits})
    md5 = [hashlib.md5(b).hexdigest() for b in (images, annotations)]
    resources = ((f"{url}/images.tar.gz", md5[0]), (f"{url}/annotations.tar.gz", md5[1]))
    return resources, images, annotations


def test_download_verifies_extracts_and_skips_work_done(tmp_path, server):
    url, routes, hits = server
    resources, images, annotations = _resources(tmp_path, url)
    routes["/images.tar.gz"] = [images]
    routes["/annotations.tar.gz"] = [annotations]
    root = download(tmp_path / "pets", resources)
    assert len(OxfordPetDataset(root, "train")) == 3
    assert sorted(p.name for p in root.iterdir()) == ["annotations", "archives", "images"]
    hits.clear()
    download(root, resources)
    assert hits == []


def test_truncated_or_corrupted_archives_are_downloaded_again(tmp_path, server):
    url, routes, hits = server
    resources, images, annotations = _resources(tmp_path, url)
    root = tmp_path / "pets"
    (root / "archives").mkdir(parents=True)
    (root / "archives" / "images.tar.gz").write_bytes(images[:100])  # left by a crash
    routes["/images.tar.gz"] = [images]
    routes["/annotations.tar.gz"] = [annotations[:-50], annotations]  # corrupt first, then fine
    download(root, resources)
    assert hits.count("/images.tar.gz") == 1 and hits.count("/annotations.tar.gz") == 2
    assert is_downloaded(root)


def test_a_download_that_stays_wrong_leaves_no_dataset_behind(tmp_path, server):
    url, routes, _ = server
    resources, images, annotations = _resources(tmp_path, url)
    routes["/images.tar.gz"] = [images]
    routes["/annotations.tar.gz"] = [b"garbage"]
    root = tmp_path / "pets"
    with pytest.raises(RuntimeError, match="MD5"):
        download(root, resources)
    assert not (root / "annotations").exists()
    assert not any(p.name.endswith(".part") for p in (root / "archives").iterdir())
    assert not list(root.glob(".extracting-*"))


def test_unreachable_server_gives_a_connection_error(tmp_path):
    resources = (("http://127.0.0.1:9/images.tar.gz", "0" * 32),)
    with pytest.raises(ConnectionError, match="Could not download"):
        download(tmp_path / "pets", resources)


def test_download_to_a_file_instead_of_a_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "pets"
    blocker.write_text("a file where the dataset folder should go")
    with pytest.raises(UserError, match=f"cannot write to the folder '{blocker}'"):
        data.main(["--download", "--root", str(blocker)])
    assert blocker.read_text() == "a file where the dataset folder should go"
