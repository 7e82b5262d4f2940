"""Prediction cache: one JSON line per (image, task, model), appended as answers arrive.

An interrupted run loses at most the line being written: every append is flushed,
and on open a torn last line (no newline, or not JSON) is cut off so the next
append starts clean. A re-run finds every finished answer here and calls nothing twice.

A line is an answer (it has `label`, None when unanswered) or an error (`error`). A
line with neither, such as one edited by hand, is no answer at all: it is skipped with
a warning and the item is asked again, never silently counted as unanswered.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str, str]


class PredictionCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entries: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._load()
        self._handle = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = skipped = 0
        for line in data.splitlines(keepends=True):
            try:
                entry = json.loads(line)
                key = (entry["image"], entry["task"], entry["model"])
            except (ValueError, KeyError, TypeError):
                if good_end + len(line) == len(data):
                    log.warning("%s: dropping a torn last line (%d bytes) of an interrupted run", self.path, len(line))
                    break
                raise ValueError(f"{self.path}: corrupt line at byte {good_end}; not a prediction cache?") from None
            if not line.endswith(b"\n"):
                # A complete JSON object whose newline was never written: keep it, finish the line.
                with self.path.open("ab") as handle:
                    handle.write(b"\n")
            good_end += len(line)
            if "label" not in entry and not entry.get("error"):
                skipped += 1
                continue
            self._entries[key] = entry
        if good_end < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
        if skipped:
            log.warning("%s: %d lines hold neither a label nor an error; those items will be asked again",
                        self.path, skipped)

    def get(self, image: str, task: str, model: str) -> dict[str, Any] | None:
        return self._entries.get((image, task, model))

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: dict[str, Any]) -> None:
        """Record one answer; `entry` needs 'image', 'task' and 'model'. Safe to call from worker threads."""
        key = (entry["image"], entry["task"], entry["model"])
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            self._entries[key] = entry

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

