"""The model artifact: ``DIR/model.joblib`` (the fitted pipeline) and ``DIR/model.json``
(what it is: version, checksums, accuracy, library versions, when it was trained).

Loading checks the pipeline file against the sha256 recorded in model.json
*before* unpickling it, so a corrupt or swapped file is refused, not executed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

import joblib

from model_service.dataset import LABELS, sha256_hex
from model_service.errors import ArtifactError

MODEL_FILE: Final = "model.joblib"
META_FILE: Final = "model.json"
FORMAT: Final = 1


def _fix_hint(directory: Path) -> str:
    return f"run `model-service train --out {directory}`"


@dataclass(frozen=True)
class ArtifactMeta:
    """The contents of model.json."""

    version: str
    model_sha256: str
    dataset_sha256: str
    dataset_source: str
    accuracy: float
    n_train: int
    n_test: int
    seed: int
    test_fraction: float
    labels: tuple[str, ...]
    sklearn_version: str
    trained_at: str
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ArtifactMeta:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("model.json is not a JSON object")
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise ValueError(f"model.json lacks {', '.join(missing)}")
        raw["labels"] = tuple(raw["labels"])
        return cls(**{f.name: raw[f.name] for f in fields(cls)})


def model_version(trained_at_date: str, model_sha256: str) -> str:
    """``YYYYMMDD-<first 12 hex of the model file's sha256>``."""
    return f"{trained_at_date}-{model_sha256[:12]}"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(directory: Path, pipeline: Any, meta_for: Callable[[str], ArtifactMeta]) -> ArtifactMeta:
    """Dump ``pipeline`` to DIR/model.joblib, then write the metadata ``meta_for(sha256)`` returns.

    model.json is written last, so a half-written directory never loads.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{MODEL_FILE}.")
        os.close(fd)
        try:
            joblib.dump(pipeline, tmp)
            data = Path(tmp).read_bytes()
            Path(tmp).replace(directory / MODEL_FILE)
        finally:
            Path(tmp).unlink(missing_ok=True)
        meta = meta_for(sha256_hex(data))
        _atomic_write(directory / META_FILE, meta.to_json().encode())
    except OSError as err:
        raise ArtifactError(
            f"cannot write the model to {directory}: {err.strerror or err}", "pass a writable --out DIR"
        ) from err
    return meta


def read_meta(directory: Path) -> ArtifactMeta:
    meta_path = directory / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(
            f"no trained model in {directory} ({META_FILE} is missing)", _fix_hint(directory)
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"cannot read {meta_path}: {err}", _fix_hint(directory)) from err
    try:
        return ArtifactMeta.from_json(text)
    except (ValueError, TypeError) as err:
        raise ArtifactError(f"{meta_path} is corrupt: {err}", _fix_hint(directory)) from err


def load(directory: Path) -> tuple[ArtifactMeta, Any]:
    """The metadata and the fitted pipeline of DIR, verified against each other."""
    meta = read_meta(directory)
    model_path = directory / MODEL_FILE
    try:
        data = model_path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"cannot read {model_path}: {err.strerror or err}", _fix_hint(directory)) from err
    actual = sha256_hex(data)
    if actual != meta.model_sha256:
        raise ArtifactError(
            f"{model_path} is corrupt: sha256 {actual} does not match {meta.model_sha256} in {META_FILE}",
            _fix_hint(directory),
        )
    try:
        # Safe to unpickle: the bytes are the ones whose checksum model.json records.
        pipeline = joblib.load(model_path)
    except Exception as err:  # unpickling can fail in many ways; all mean "unusable"
        raise ArtifactError(f"cannot load {model_path}: {err}", _fix_hint(directory)) from err
    classes = tuple(str(c) for c in getattr(pipeline, "classes_", ()))
    if not hasattr(pipeline, "predict_proba") or sorted(classes) != sorted(LABELS):
        raise ArtifactError(
            f"{model_path} is not a {'/'.join(LABELS)} classifier (classes: {classes or 'none'})",
            _fix_hint(directory),
        )
    return meta, pipeline
