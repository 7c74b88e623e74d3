"""Downloading the Oxford-IIIT Pet dataset: two official archives, checked and unpacked safely.

`download(root)` fetches images.tar.gz and annotations.tar.gz, checks their published MD5
sums (a truncated or corrupted archive is fetched again), and moves a folder into ROOT only
once it is fully extracted, so an interrupted download never leaves a half-made dataset.

    python -m petseg_lib.data --download
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from torchvision.datasets.utils import check_integrity, download_url

# The two official archives and their published MD5 sums.
RESOURCES = (
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
     "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
     "95a8c909bbe2e81eed6a22bccdf3f68f"),
)
def is_downloaded(root: str | Path) -> bool:
    """True when ROOT holds the extracted images, trimaps and split files."""
    root = Path(root)
    ann = root / "annotations"
    return ((root / "images").is_dir() and (ann / "trimaps").is_dir()
            and (ann / "trainval.txt").is_file() and (ann / "test.txt").is_file())


def download(root: str | Path = "data/oxford-iiit-pet", resources=RESOURCES) -> Path:
    """Download, verify (MD5) and extract the Oxford-IIIT Pet archives into ROOT."""
    root = Path(root)
    if is_downloaded(root):
        print(f"Oxford-IIIT Pet is already in {root}: nothing to download.")
        return root
    archive_dir = root / "archives"
    for url, md5 in resources:
        archive = _fetch_verified(url, md5, archive_dir)
        _extract_into(archive, root)
    if not is_downloaded(root):
        raise RuntimeError(f"The archives were extracted into {root}, but images/ or "
                           "annotations/ (trimaps, trainval.txt, test.txt) are missing.")
    return root


def _fetch_verified(url: str, md5: str, archive_dir: Path, tries: int = 2) -> Path:
    """Return the path of a downloaded archive whose MD5 matches, downloading when needed."""
    name = url.rsplit("/", 1)[-1]
    archive = archive_dir / name
    if check_integrity(archive, md5):
        return archive
    archive_dir.mkdir(parents=True, exist_ok=True)
    part = archive_dir / (name + ".part")
    for attempt in range(1, tries + 1):
        part.unlink(missing_ok=True)
        try:
            # Downloads into NAME.part with a progress bar; raises when the MD5 differs.
            download_url(url, str(archive_dir), filename=part.name, md5=md5)
        except RuntimeError:
            print(f"{name}: checksum mismatch (truncated or corrupted download), "
                  f"attempt {attempt} of {tries}.")
            continue
        except (urllib.error.URLError, OSError) as err:
            part.unlink(missing_ok=True)
            raise ConnectionError(f"Could not download {url}: {err}") from err
        os.replace(part, archive)  # only a verified archive gets its final name
        return archive
    part.unlink(missing_ok=True)
    raise RuntimeError(f"{name}: the MD5 sum is still wrong after {tries} downloads "
                       f"(expected {md5}). Check the network and try again.")


def _extract_into(archive: Path, root: Path) -> None:
    """Extract ARCHIVE next to ROOT, then move its top-level folders into ROOT."""
    tmp = root / f".extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        for entry in tmp.iterdir():
            target = root / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)  # a folder appears in ROOT only once it is complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def network_available(url: str = RESOURCES[1][0], timeout: float = 3.0) -> bool:
    """True when the dataset's server answers within TIMEOUT seconds."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def missing_message(path: Path) -> str:
    """What to do when PATH holds no dataset."""
    return (f"No Oxford-IIIT Pet dataset at '{path}' (expected images/ and annotations/ with "
            f"trimaps/, trainval.txt and test.txt). Download it with "
            f"`python -m petseg_lib.data --download --root {path}`, or use the offline "
            f"sample dataset: `python -m petseg_lib.data --sample`.")
