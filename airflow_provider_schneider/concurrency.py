"""Ordered, bounded fan-out: run calls concurrently, yield results in input order, keep memory flat."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


def ordered_map(fn: Callable[[A], R], items: Iterable[A], *, concurrency: int) -> Iterator[R]:
    """Like ``map(fn, items)`` with ``concurrency`` calls in flight and at most ``2 * concurrency`` results
    buffered; the first exception stops submissions, cancels what has not started and propagates.
    """
    if concurrency <= 1:
        yield from map(fn, items)
        return
    window = concurrency * 2
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="schneider")
    pending: deque[Future[R]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
