"""Ordered, bounded fan-out: run calls concurrently, yield results in input order, keep memory flat, and
end at once when the consumer goes away."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from airflow_provider_schneider.client.cancellation import CancelScope, within

A = TypeVar("A")
_END: Any = object()
R = TypeVar("R")


def ordered_map(fn: Callable[[A], R], items: Iterable[A], *, concurrency: int) -> Iterator[R]:
    """Like ``map(fn, items)`` with up to ``concurrency`` calls in flight and at most ``2 * concurrency`` results
    buffered, fewer while the consumer is the slower side; the first exception stops submissions and
    propagates.

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

    most = concurrency * 2
    window = most
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="schneider")
    pending: deque[Future[R]] = deque()
    source = iter(items)
    finished = False
    try:
        for item in source:
            pending.append(pool.submit(run, item))
            if len(pending) >= window:
                break
        ready = 0
        while pending:
            head = pending.popleft()
            # Keep the consumer just fed: when a whole window of answers was waiting for it, the calls run
            # ahead of what it can take (a fast gateway: more threads would only fight over the CPU), so half
            # as many go ahead; whenever it has to wait, one more is worth having in flight. (A burst of
            # answers arriving together is shorter than a window, and does not shrink it.)
            if head.done():
                ready += 1
                if ready >= window:
                    window, ready = max(1, window // 2), 0
            else:
                window, ready = min(most, window + 1), 0
            result = head.result()
            while len(pending) < window:
                following = next(source, _END)
                if following is _END:
                    break
                pending.append(pool.submit(run, following))
            yield result
        finished = True
    finally:
        if not finished:
            scope.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
