"""Build the bundle: items in dependency order, each one cached or built, then the manifest.

One line per item when it starts building and one when it is done
(``built in 348.2 s`` or ``cached``), then a summary with the cache size and
the manifest's path.  ``jobs`` items build at once (default 1: one ``go build``
already uses every core).  The first failure stops the run after the builds in
flight finish; nothing half-built is ever recorded.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from canarylab.bundle import manifest
from canarylab.bundle.builders import Builder
from canarylab.bundle.cache import Entry, ItemCache, cache_key
from canarylab.bundle.items import Item, select
from canarylab.errors import CanarylabError


@dataclass
class Outcome:
    item: Item
    entry: Entry
    entry_dir: Path
    cached: bool
    seconds: float


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class BundleRun:
    def __init__(
        self,
        project_root: Path,
        cache: ItemCache,
        builder: Builder,
        out: TextIO,
    ) -> None:
        self.root = project_root
        self.cache = cache
        self.builder = builder
        self.out = out
        self._lock = threading.Lock()
        self.done: dict[str, Outcome] = {}

    def say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def _key(self, item: Item) -> tuple[str, str, dict[str, Path]] | None:
        """(key, toolchain, input paths), or None when a dependency is not built."""
        hashes: dict[str, str] = {}
        paths: dict[str, Path] = {}
        for i in item.inputs:
            dep = self.done.get(i.item)
            if dep is None:
                return None
            hashes[f"{i.item}/{i.file}"] = dep.entry.file(i.file).sha256
            paths[f"{i.item}/{i.file}"] = dep.entry_dir / i.file
        toolchain = self.builder.toolchain(item)
        return cache_key(item, self.root, toolchain, hashes), toolchain, paths

    def lookup(self, item: Item) -> Outcome | None:
        keyed = self._key(item)
        if keyed is None:
            return None
        key = keyed[0]
        start = time.monotonic()
        entry = self.cache.lookup(item, key)
        if entry is None:
            return None
        return Outcome(item, entry, self.cache.entry_dir(item, key), True, time.monotonic() - start)

    def resolve(self, item: Item, label: str) -> Outcome:
        """The item from the cache, or built now."""
        keyed = self._key(item)
        if keyed is None:
            raise CanarylabError(f"{item.name}: its inputs {', '.join(item.depends)} are not built")
        key, toolchain, inputs = keyed
        start = time.monotonic()
        entry = self.cache.lookup(item, key)
        if entry is not None:
            outcome = Outcome(item, entry, self.cache.entry_dir(item, key), True, time.monotonic() - start)
            size = sum(f.size for f in entry.files)
            self.say(f"{label} {item.name} {item.version}: cached ({len(entry.files)} files, {_mb(size)})")
            return outcome
        self.say(f"{label} {item.name} {item.version}: building from {item.source}")
        tmp = self.cache.tmp_dir(item, key)
        try:
            result = self.builder.build(item, tmp, inputs)
            seconds = time.monotonic() - start
            entry = self.cache.store(
                item,
                key=key,
                toolchain=toolchain,
                build_seconds=seconds,
                built_in=tmp,
                files=result.files,
                image=result.image,
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        size = sum(f.size for f in entry.files)
        files = f"{len(entry.files)} files, {_mb(size)}"
        self.say(f"{label} {item.name} {item.version}: built in {seconds:.1f} s ({files})")
        return Outcome(item, entry, self.cache.entry_dir(item, key), False, seconds)

    def build(self, items: Sequence[Item], only: Sequence[str] | None = None, jobs: int = 1) -> Path:
        """Build ``only`` (and what it needs) or everything, then write the manifest of all items."""
        if jobs < 1:
            raise CanarylabError("--jobs must be at least 1")
        wanted = select(list(items), list(only) if only else None)
        total = len(wanted)
        pending = list(wanted)
        count = 0
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending:
                ready = [i for i in pending if all(d in self.done for d in i.depends)]
                if not ready:
                    raise CanarylabError(
                        f"bundle items with unbuilt inputs: {', '.join(i.name for i in pending)}"
                    )
                futures: dict[Future[Outcome], Item] = {}
                for item in ready:
                    count += 1
                    futures[pool.submit(self.resolve, item, f"[{count:2d}/{total}]")] = item
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in finished if f.exception() is not None]
                if failed:
                    for f in futures:
                        f.cancel()
                    wait(futures)
                    err = failed[0].exception()
                    assert err is not None
                    raise err
                wait(futures)
                for f, item in futures.items():
                    self.done[item.name] = f.result()
                    pending.remove(item)
        return self.write_manifest(items)

    def write_manifest(self, items: Sequence[Item]) -> Path:
        """The manifest of every item whose current build is cached; the others are listed as missing."""
        missing: list[str] = []
        for item in items:
            if item.name in self.done:
                continue
            found = self.lookup(item)
            if found is None:
                missing.append(item.name)
            else:
                self.done[item.name] = found
        entries = [
            (self.done[i.name].entry_dir, self.done[i.name].entry) for i in items if i.name in self.done
        ]
        return manifest.write(self.cache.root, entries, missing)
