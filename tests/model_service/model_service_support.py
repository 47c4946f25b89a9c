"""Helpers the model-service tests import (conftest modules are not importable by name)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

import canarylab_contract as contract
from canarylab.procs import ManagedProcess

StartServer = Callable[..., tuple[ManagedProcess, str]]


def timed_burst(base: str, clients: int, review: str) -> float:
    """Wall time for ``clients`` concurrent clients, one /predict each (fresh connections);
    every answer must be 200."""

    def one(_: int) -> int:
        resp = requests.post(base + contract.PREDICT_PATH, json={"review": review}, timeout=60)
        return resp.status_code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        started = time.perf_counter()
        codes = list(pool.map(one, range(clients)))
        elapsed = time.perf_counter() - started
    assert codes == [200] * clients
    return elapsed
