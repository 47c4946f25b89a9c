"""Labelled restaurant reviews: the shipped TSV, a local file or a URL pinned by sha256.

The format is one review per line, ``label<TAB>review``, label ``positive`` or
``negative``; an optional first line ``label<TAB>review`` is a header.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from model_service.errors import DatasetError

POSITIVE: Final = "positive"
NEGATIVE: Final = "negative"
LABELS: Final = (NEGATIVE, POSITIVE)
#: What ``--data`` means when it is not given.
BUILTIN_SOURCE: Final = "builtin:reviews.tsv"
#: A download larger than this is refused (the shipped set is ~30 KB).
MAX_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS: Final = 30.0
#: Fewer rows than this per label cannot give a meaningful held-out accuracy.
MIN_ROWS_PER_LABEL: Final = 10
#: The held-out split: seed and share of the data (training uses both for its model too).
DEFAULT_SEED: Final = 20240607
DEFAULT_TEST_FRACTION: Final = 0.2

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEADER = ("label", "review")


@dataclass(frozen=True)
class Dataset:
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    sha256: str
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def count(self, label: str) -> int:
        return sum(1 for x in self.labels if x == label)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256.match(digest):
        raise DatasetError(
            f"--sha256 {value!r} is not a sha256 digest (64 hex characters)",
            "compute it with `sha256sum FILE`",
        )
    return digest


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _read_builtin() -> bytes:
    return resources.files("model_service").joinpath("data/reviews.tsv").read_bytes()


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError(
            f"cannot read {path}: {err.strerror or err}", "pass an existing TSV file to --data"
        ) from err


def _download(url: str) -> bytes:
    try:
        # The scheme is checked by is_url(): only http and https get here.
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as resp:  # noqa: S310
            data: bytes = resp.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DatasetError(f"cannot download {url}: {reason}", "check the URL and the network") from err
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DatasetError(
            f"{url} is larger than {MAX_DOWNLOAD_BYTES // (1024 * 1024)} MiB", "use a smaller dataset"
        )
    return data


def fetch(source: str | None, sha256: str | None) -> tuple[bytes, str]:
    """The raw bytes of ``source`` (None: the shipped dataset) and a printable source name.

    A URL must come with ``sha256``; a file may.  A mismatch raises DatasetError.
    """
    expected = normalise_sha256(sha256) if sha256 is not None else None
    if source is None:
        data, name = _read_builtin(), BUILTIN_SOURCE
    elif is_url(source):
        if expected is None:
            raise DatasetError(
                f"refusing to train from {source} without a checksum",
                "pass --sha256 HEX with the dataset's sha256 (`sha256sum FILE` on a copy you trust)",
            )
        data, name = _download(source), source
    elif "://" in source:
        raise DatasetError(f"unsupported URL scheme in {source}", "use an http(s) URL or a file path")
    else:
        data, name = _read_file(Path(source)), source
    actual = sha256_hex(data)
    if expected is not None and actual != expected:
        raise DatasetError(
            f"sha256 mismatch for {name}: expected {expected}, got {actual}",
            "the data changed or the checksum is wrong: check both before training",
        )
    return data, name


def parse(data: bytes, source: str) -> Dataset:
    """Parse TSV bytes into a Dataset; errors name the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{source} is not UTF-8 text: {err}", "save the file as UTF-8") from err
    texts: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, review = line.partition("\t")
        label = label.strip().lower()
        if number == 1 and (label, review.strip().lower()) == _HEADER:
            continue
        if not sep or not review.strip():
            raise DatasetError(
                f"{source}:{number}: expected `label<TAB>review`", "separate label and review by one tab"
            )
        if label not in LABELS:
            raise DatasetError(
                f"{source}:{number}: label {label!r} is not {POSITIVE!r} or {NEGATIVE!r}",
                "label every review positive or negative",
            )
        texts.append(review.strip())
        labels.append(label)
    dataset = Dataset(tuple(texts), tuple(labels), sha256_hex(data), source)
    for label in LABELS:
        if dataset.count(label) < MIN_ROWS_PER_LABEL:
            raise DatasetError(
                f"{source} has {dataset.count(label)} {label} reviews, fewer than {MIN_ROWS_PER_LABEL}",
                "add more labelled reviews of each kind",
            )
    return dataset


def load(source: str | None = None, sha256: str | None = None) -> Dataset:
    """Fetch, verify and parse a dataset (None: the one shipped with the package)."""
    data, name = fetch(source, sha256)
    return parse(data, name)
