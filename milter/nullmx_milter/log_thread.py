"""Move log output off libmilter's callback threads onto a thread of its own."""

from __future__ import annotations

import logging
import logging.handlers
import queue


class _LocklessQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler without the per-handler lock: SimpleQueue.put is thread-safe alone.

    Measured (bench/, 50 connections): with handlers writing under their lock in the
    callback, a thread that lost the GIL mid-write made every other logging callback
    queue behind it; p99 RCPT latency went to tens of milliseconds.
    """

    def createLock(self) -> None:  # noqa: N802 (logging's name)
        # Python 3.11 calls acquire()/release(), 3.12 and later use `with self.lock`.
        self.lock = _NoLock()  # type: ignore[assignment]


class _NoLock:
    """A lock that does nothing, for handlers whose emit() is thread-safe on its own."""

    def acquire(self, *_args: object) -> bool:
        return True

    def release(self) -> None:
        return None

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *_exc: object) -> None:
        return None


class BackgroundLogging:
    """While started, root's handlers run in a QueueListener thread, fed by a queue."""

    def __init__(self) -> None:
        self._root = logging.getLogger()
        self._handlers = list(self._root.handlers)
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._front = _LocklessQueueHandler(records)
        self._listener = logging.handlers.QueueListener(
            records, *self._handlers, respect_handler_level=True
        )

    def start(self) -> BackgroundLogging:
        for handler in self._handlers:
            self._root.removeHandler(handler)
        self._root.addHandler(self._front)
        self._listener.start()
        return self

    def stop(self) -> None:
        """Flush what is queued and hand the handlers back to the root logger."""
        self._listener.stop()
        self._root.removeHandler(self._front)
        for handler in self._handlers:
            self._root.addHandler(handler)
