"""A loaded sentiment model: one review in, a label and its probability out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_service import artifact
from model_service.artifact import ArtifactMeta


@dataclass(frozen=True)
class Prediction:
    sentiment: str
    confidence: float


@dataclass(frozen=True)
class SentimentModel:
    """A verified artifact.  ``predict`` only reads the fitted pipeline, so threads may share it."""

    meta: ArtifactMeta
    pipeline: Any

    @classmethod
    def load(cls, directory: Path) -> SentimentModel:
        meta, pipeline = artifact.load(directory)
        return cls(meta=meta, pipeline=pipeline)

    @property
    def version(self) -> str:
        return self.meta.version

    def predict(self, review: str) -> Prediction:
        probabilities = self.pipeline.predict_proba([review])[0]
        best = int(probabilities.argmax())
        return Prediction(
            sentiment=str(self.pipeline.classes_[best]),
            confidence=round(float(probabilities[best]), 6),
        )
