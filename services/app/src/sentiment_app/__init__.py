"""canarylab's app: the review page and the app-service in one small process.

The app takes a review from a person (``GET /``) or a load generator
(``POST /api/sentiment``), asks the model-service for its sentiment and
records how long the model-service took to answer, as the app sees it.
"""

from __future__ import annotations

__version__ = "0.1.0"
