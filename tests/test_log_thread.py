"""BackgroundLogging: records reach the real handlers from another thread, none lost."""

from __future__ import annotations

import io
import logging
import threading

from nullmx_milter.log_thread import BackgroundLogging


def test_records_from_many_threads_all_arrive_after_stop() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for old in saved_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        background = BackgroundLogging().start()
        assert root.handlers != [handler]

        def emit(thread: int) -> None:
            for index in range(200):
                logging.getLogger("t").info("thread=%d line=%d", thread, index)

        threads = [threading.Thread(target=emit, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        background.stop()
        assert root.handlers == [handler]
    finally:
        root.removeHandler(handler)
        for old in saved_handlers:
            root.addHandler(old)
        root.setLevel(saved_level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8 * 200
    assert "thread=7 line=199" in lines


def test_the_front_handler_lock_works_both_ways() -> None:
    background = BackgroundLogging()
    lock = background._front.lock
    assert lock is not None
    # Python 3.11 calls acquire()/release(); 3.12 and later use it as a context manager.
    assert lock.acquire()
    lock.release()
    with lock:
        pass
