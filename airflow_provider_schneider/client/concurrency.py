"""Ordered, bounded fan-out: run calls concurrently, yield results in input order, keep memory flat, and
end at once when the consumer goes away."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from airflow_provider_schneider.client.cancellation import CancelScope, within

A = TypeVar("A")
R = TypeVar("R")


def ordered_map(fn: Callable[[A], R], items: Iterable[A], *, concurrency: int) -> Iterator[R]:
    """Like ``map(fn, items)`` with ``concurrency`` calls in flight and at most ``2 * concurrency`` results
    buffered; the first exception stops submissions and propagates.

    However the consumer leaves (an exception, ``execution_timeout``, SIGTERM, ``close()``), calls not
    started are cancelled and calls in flight are cut off through their cancel scope (their sockets are
    shut down), and worker threads are *not* joined: a thread stuck in a socket read cannot hold the task.
    """
    if concurrency <= 1:
        yield from map(fn, items)
        return
    scope = CancelScope()

    def run(item: A) -> R:
        with within(scope):
            return fn(item)

    window = concurrency * 2
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="schneider")
    pending: deque[Future[R]] = deque()
    source = iter(items)
    finished = False
    try:
        for item in source:
            pending.append(pool.submit(run, item))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(run, item))
                break
            yield result
        finished = True
    finally:
        if not finished:
            scope.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
