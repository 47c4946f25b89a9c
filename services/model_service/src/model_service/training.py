"""Fit the sentiment pipeline (TF-IDF words + characters -> logistic regression) on a
deterministic stratified split, measure held-out accuracy, write the artifact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from model_service import artifact
from model_service.artifact import ArtifactMeta
from model_service.dataset import DEFAULT_SEED, DEFAULT_TEST_FRACTION, LABELS, Dataset
from model_service.errors import ModelServiceError


@dataclass(frozen=True)
class Fitted:
    pipeline: Any
    accuracy: float
    n_train: int
    n_test: int


def build_pipeline(seed: int) -> Pipeline:
    """Word uni+bigrams catch phrases ("not good"), character n-grams catch spelling
    variants and word stems ("overcooked", "undercooked"); 10-fold CV on the shipped
    data gave ~0.90 accuracy for the union against ~0.86 for words alone."""
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )
    return Pipeline(
        [("features", features), ("clf", LogisticRegression(C=10.0, max_iter=2000, random_state=seed))]
    )


def fit(dataset: Dataset, seed: int = DEFAULT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION) -> Fitted:
    """Train on a stratified split of ``dataset`` and score the held-out part.

    The shipped model is the one trained on the training part, so the accuracy
    it records is an honest estimate for it.
    """
    if not 0.05 <= test_fraction <= 0.5:
        raise ModelServiceError(
            f"test fraction {test_fraction} is out of range", "use a value from 0.05 to 0.5"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        list(dataset.texts),
        list(dataset.labels),
        test_size=test_fraction,
        random_state=seed,
        stratify=list(dataset.labels),
    )
    pipeline = build_pipeline(seed)
    pipeline.fit(x_train, y_train)
    accuracy = float(accuracy_score(y_test, pipeline.predict(x_test)))
    return Fitted(pipeline=pipeline, accuracy=accuracy, n_train=len(x_train), n_test=len(x_test))


def train(
    dataset: Dataset,
    out: Path,
    seed: int = DEFAULT_SEED,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    now: dt.datetime | None = None,
) -> ArtifactMeta:
    """Fit, then write ``out/model.joblib`` and ``out/model.json``; returns the metadata."""
    fitted = fit(dataset, seed, test_fraction)
    when = now or dt.datetime.now(dt.UTC)

    def meta_for(model_sha256: str) -> ArtifactMeta:
        return ArtifactMeta(
            version=artifact.model_version(when.strftime("%Y%m%d"), model_sha256),
            model_sha256=model_sha256,
            dataset_sha256=dataset.sha256,
            dataset_source=dataset.source,
            accuracy=round(fitted.accuracy, 4),
            n_train=fitted.n_train,
            n_test=fitted.n_test,
            seed=seed,
            test_fraction=test_fraction,
            labels=LABELS,
            sklearn_version=sklearn.__version__,
            trained_at=when.isoformat(timespec="seconds"),
        )

    return artifact.write(out, fitted.pipeline, meta_for)
