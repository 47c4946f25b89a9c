"""Checks a review request the same way the model-service does, before anything is forwarded."""

from __future__ import annotations

import json
from typing import Final

import canarylab_contract as contract

#: Largest request body accepted, bytes; larger bodies get 413 (the contract's, as in the model-service).
MAX_BODY_BYTES: Final = contract.MAX_BODY_BYTES
#: Longest review accepted, characters (the contract's, as in the model-service).
MAX_REVIEW_CHARS: Final = contract.MAX_REVIEW_CHARS


class InvalidRequestError(Exception):
    """The client sent something we cannot forward; ``message`` tells them what to fix."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse_review(body: bytes) -> str:
    """The review text of a ``{"review": "..."}`` body, or InvalidRequestError saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequestError(f"request body is larger than {MAX_BODY_BYTES} bytes", status=413)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError('body must be JSON like {"review": "text of the review"}') from None
    except RecursionError:
        raise InvalidRequestError("body is nested too deeply to be a review") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError('body must be a JSON object like {"review": "text of the review"}')
    review = payload.get("review")
    if review is None:
        raise InvalidRequestError('field "review" is missing')
    if not isinstance(review, str):
        raise InvalidRequestError('field "review" must be a string')
    if not review.strip():
        raise InvalidRequestError('field "review" is empty')
    if len(review) > MAX_REVIEW_CHARS:
        raise InvalidRequestError(f'field "review" is longer than {MAX_REVIEW_CHARS} characters')
    return review
