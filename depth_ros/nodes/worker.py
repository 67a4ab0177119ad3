"""``NewestOnlyWorker``: the thread that runs the estimator on the newest input only."""
from __future__ import annotations

import threading
from typing import Generic, TypeVar
from collections.abc import Callable

T = TypeVar('T')


class NewestOnlyWorker(Generic[T]):
    """A thread that runs ``process(item)`` on the newest submitted item only: a one-slot mailbox,
    so under overload older items are replaced (counted in ``dropped``) and latency stays
    bounded. Exceptions from ``process`` go to ``on_error`` and the thread keeps running."""

    def __init__(self, process: Callable[[T], None], on_error: Callable[[Exception], None],
                 name: str = 'worker') -> None:
        self._process, self._on_error = process, on_error
        self._item: T | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self.dropped = 0
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Put ``item`` in the mailbox; True if it replaced an item not yet processed."""
        with self._cond:
            replaced = self._item is not None
            self.dropped += replaced
            self._item = item
            self._cond.notify()
        return replaced

    def idle(self) -> bool:
        """True when nothing is queued or running."""
        with self._cond:
            return self._item is None and not self.busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._item is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                item, self._item = self._item, None
                self.busy = True
            try:
                self._process(item)
            except Exception as e:  # the worker must survive anything a frame does
                self._on_error(e)
            finally:
                item = None  # do not hold the frame (a huge one, maybe) while waiting for the next
                with self._cond:
                    self.busy = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current item (the queued one is discarded)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)
