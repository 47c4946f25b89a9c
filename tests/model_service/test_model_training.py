"""Training, the shipped dataset, the artifact round trip and its integrity checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest
import sklearn

from model_service import artifact, dataset, training
from model_service.cli import main
from model_service.errors import ArtifactError, DatasetError
from model_service.model import SentimentModel

SHIPPED = resources.files("model_service").joinpath("data/reviews.tsv")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_dataset_is_large_balanced_and_unique() -> None:
    data = dataset.load()
    assert len(data) >= 300
    assert data.count(dataset.POSITIVE) == data.count(dataset.NEGATIVE)
    assert len(set(data.texts)) == len(data.texts), "duplicate reviews in the shipped dataset"
    assert data.sha256 == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()


def test_trained_artifact_round_trip(trained_model_dir: Path) -> None:
    meta = artifact.read_meta(trained_model_dir)
    assert re.fullmatch(r"\d{8}-[0-9a-f]{12}", meta.version)
    assert meta.model_sha256 == _sha(trained_model_dir / artifact.MODEL_FILE)
    assert meta.version.endswith(meta.model_sha256[:12])
    assert meta.dataset_sha256 == dataset.load().sha256
    assert meta.sklearn_version == sklearn.__version__
    assert dt.datetime.fromisoformat(meta.trained_at).tzinfo is not None
    assert meta.accuracy >= 0.75, f"held-out accuracy {meta.accuracy} is not well above chance (0.5)"

    model = SentimentModel.load(trained_model_dir)
    assert model.meta == meta
    good = model.predict("Wonderful food, friendly staff and a lovely atmosphere. We will be back!")
    bad = model.predict("Cold greasy food, a rude waiter and a dirty table. Never again.")
    assert (good.sentiment, bad.sentiment) == (dataset.POSITIVE, dataset.NEGATIVE)
    assert 0.5 <= good.confidence <= 1.0
    assert 0.5 <= bad.confidence <= 1.0


def test_train_command_prints_accuracy_and_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--out", str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"held-out accuracy: ([0-9.]+)", printed)
    assert found, printed
    accuracy = float(found.group(1))
    assert accuracy >= 0.75
    meta = artifact.read_meta(tmp_path / "m")
    assert meta.accuracy == pytest.approx(accuracy, abs=1e-4)
    # Same data + same seed: the same split and the same held-out accuracy.
    again = training.fit(dataset.load(), seed=meta.seed, test_fraction=meta.test_fraction)
    assert round(again.accuracy, 4) == meta.accuracy


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_flipped_byte_in_model_is_refused(trained_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(trained_model_dir, tmp_path / "m")
    blob = bytearray((d / artifact.MODEL_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (d / artifact.MODEL_FILE).write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="sha256") as err:
        SentimentModel.load(d)
    assert f"model-service train --out {d}" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / artifact.META_FILE).unlink(), "model.json is missing"),
        (lambda d: (d / artifact.MODEL_FILE).unlink(), "cannot read"),
        (lambda d: (d / artifact.META_FILE).write_text("{not json"), "corrupt"),
        (lambda d: (d / artifact.META_FILE).write_text('{"version": "x"}'), "lacks"),
        (lambda d: (d / artifact.META_FILE).write_text("[]"), "corrupt"),
    ],
    ids=["no-meta", "no-model", "meta-not-json", "meta-incomplete", "meta-not-object"],
)
def test_broken_artifact_is_refused(trained_model_dir: Path, tmp_path: Path, damage, message: str) -> None:
    d = _copy(trained_model_dir, tmp_path / "m")
    damage(d)
    with pytest.raises(ArtifactError, match=message) as err:
        SentimentModel.load(d)
    assert "model-service train --out" in (err.value.hint or "")


def test_artifact_whose_checksum_matches_but_is_not_a_classifier(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    d = _copy(trained_model_dir, tmp_path / "m")
    artifact.write(
        d,
        {"not": "a model"},
        lambda sha: artifact.ArtifactMeta(
            **{**json.loads((trained_model_dir / artifact.META_FILE).read_text()), "model_sha256": sha}
            | {"labels": ("negative", "positive")}
        ),
    )
    with pytest.raises(ArtifactError, match="not a negative/positive classifier"):
        SentimentModel.load(d)


def test_url_without_sha256_is_refused() -> None:
    # Port 9 (discard) on loopback: were a request made, it would fail differently.
    with pytest.raises(DatasetError, match="without a checksum") as err:
        dataset.load("http://127.0.0.1:9/reviews.tsv")
    assert "--sha256" in (err.value.hint or "")


def test_train_command_refuses_url_without_sha256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", "http://127.0.0.1:9/reviews.tsv", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code != 0
    assert "without a checksum" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_url_with_right_sha256_trains(file_server: tuple[Path, str], tmp_path: Path) -> None:
    root, base = file_server
    shutil.copy(str(SHIPPED), root / "reviews.tsv")
    digest = _sha(root / "reviews.tsv")
    url = f"{base}/reviews.tsv"
    code = main(["train", "--data", url, "--sha256", digest.upper(), "--out", str(tmp_path / "m")])
    assert code == 0
    meta = artifact.read_meta(tmp_path / "m")
    assert (meta.dataset_source, meta.dataset_sha256) == (url, digest)


def test_url_with_wrong_sha256_is_refused(file_server: tuple[Path, str]) -> None:
    root, base = file_server
    (root / "reviews.tsv").write_bytes(SHIPPED.read_bytes() + b"positive\tA late, sneaky edit.\n")
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        dataset.load(f"{base}/reviews.tsv", hashlib.sha256(SHIPPED.read_bytes()).hexdigest())


def test_unreachable_url_says_so(file_server: tuple[Path, str]) -> None:
    _, base = file_server
    with pytest.raises(DatasetError, match="cannot download"):
        dataset.load(f"{base}/missing.tsv", "0" * 64)


def test_file_with_optional_sha256(tmp_path: Path) -> None:
    path = tmp_path / "r.tsv"
    path.write_bytes(SHIPPED.read_bytes())
    assert len(dataset.load(str(path))) == len(dataset.load())
    assert dataset.load(str(path), _sha(path)).sha256 == _sha(path)
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        dataset.load(str(path), "a" * 64)


@pytest.mark.parametrize("bad", ["abc", "0" * 63, "g" * 64])
def test_malformed_sha256_is_refused(bad: str) -> None:
    with pytest.raises(DatasetError, match="not a sha256"):
        dataset.load(None, bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("label\treview\nmeh\tfine food\n", r":2: label 'meh'"),
        ("positive fine food without a tab\n", r":1: expected `label<TAB>review`"),
        ("positive\tgood\nnegative\tbad\n", "fewer than"),
    ],
    ids=["bad-label", "no-tab", "too-few"],
)
def test_malformed_tsv_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.tsv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        dataset.load(str(path))


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        dataset.load(str(tmp_path / "nope.tsv"))
