"""An ordered, bounded parallel map over chunks, for streaming inputs of any size.

`multiprocessing.Pool.imap` would read the whole input iterator ahead into its task
queue; here at most `window` chunks are in flight, so memory stays flat however long
the input, and results come back in input order, which keeps deduplication (first
seen wins) and shard contents the same with 1 or N processes.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], processes: int, window: int | None = None,
                initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Iterator[R]:
    """`map(fn, items)`, run in `processes` worker processes (in this one when 1)."""
    if processes <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    window = window or 2 * processes
    # spawn, not fork: the parent may hold threads (tqdm's monitor, Arrow's pool) that fork would copy mid-state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
