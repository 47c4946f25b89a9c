"""canarylab's model-service: a scikit-learn sentiment classifier for restaurant
reviews, trained by ``model-service train`` and served by ``model-service serve``."""

from __future__ import annotations

__version__ = "0.1.0"
