"""Process-level runtime of the nodes: Python log forwarding to the ROS log, callbacks that never
raise into the executor (``guarded``), and ``run_node``, the ``main()`` every node uses (a clean
shutdown on Ctrl-C / SIGTERM, every time)."""
from __future__ import annotations

import faulthandler
import functools
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Any
from collections.abc import Callable

import rclpy
import rclpy.logging
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .diagnostics import ERROR


class _RosLogHandler(logging.Handler):
    """Forwards Python ``logging`` records to the ROS log (console, /rosout) under their logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = rclpy.logging.get_logger(record.name)
        message = self.format(record)
        if record.levelno >= logging.ERROR:  # one call site per severity (rclpy requires it)
            logger.error(message)
        elif record.levelno >= logging.WARNING:
            logger.warning(message)
        else:
            logger.info(message)


def forward_python_logging(name: str = 'depth_ros') -> None:
    """Send the library's Python log records (e.g. the inference runtime's provider fallback and
    untrained-weights warnings) to the ROS log instead of bare stderr; once per process."""
    log = logging.getLogger(name)
    if not any(isinstance(h, _RosLogHandler) for h in log.handlers):
        log.addHandler(_RosLogHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


def report_crash(node: Node, where: str, error: BaseException) -> None:
    """Log and count an exception a callback raised (the node's ErrorReporter, cause 'internal')."""
    message = f'unexpected error in {where}: {type(error).__name__}: {error}; the node keeps running'
    errors = getattr(node, 'errors', None)
    if errors is not None:
        errors.report('internal', message, ERROR)
    else:
        node.get_logger().error(message)


def guarded(node: Node, callback: Callable[..., Any], where: str | None = None) -> Callable[..., None]:
    """``callback`` for a subscription or timer that never raises: an exception is logged and
    counted (``report_crash``) instead of propagating out of the executor's ``spin()``, which
    would end the process (or hang it, holding a synchronizer's lock)."""
    where = where or getattr(callback, '__name__', 'a callback')

    @functools.wraps(callback)
    def call(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as e:
            report_crash(node, where, e)
    return call


def _spin(executor: Executor, node: Node, stop: threading.Event) -> None:
    """Spin until ``stop`` or shutdown; an exception from a callback (not guarded) is reported
    and spinning goes on."""
    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, KeyboardInterrupt):
            break
        except Exception as e:
            if stop.is_set() or not executor.context.ok():
                break
            report_crash(node, 'the executor', e)
    stop.set()


SHUTDOWN_GRACE_S = 3.0  # ros2 launch escalates to SIGTERM 5 s after SIGINT


class ShutdownWatchdog:
    """Bounds the clean-up after Ctrl-C: if it is not ``done()`` within ``grace`` s, one line on
    stderr names the stage it is stuck in and where every thread is, and the process exits with 0
    (nothing is left to save; a node that ignores Ctrl-C is worse). Should a C call hold the
    GIL so that no Python runs, faulthandler dumps every thread's stack 1.5 s later and exits
    with 1 (still before launch's SIGTERM)."""

    def __init__(self, name: str, grace: float = SHUTDOWN_GRACE_S) -> None:
        self.name, self.grace, self.stage = name, grace, 'stopping the executor'
        self._done = threading.Event()
        faulthandler.dump_traceback_later(grace + 1.5, exit=True)
        threading.Thread(target=self._watch, name='shutdown-watchdog', daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(self.grace):
            return
        names = {t.ident: t.name for t in threading.enumerate()}
        where = '; '.join(f'{names.get(ident, ident)} in {f.name} ({os.path.basename(f.filename)}:{f.lineno})'
                          for ident, frame in sys._current_frames().items() if ident != threading.get_ident()
                          for f in traceback.extract_stack(frame)[-1:])
        print(f'[WARN] [{self.name}]: shutdown stuck {self.grace:g} s while {self.stage}; exiting now '
              f'(threads: {where})', file=sys.stderr, flush=True)
        os._exit(0)

    def done(self) -> None:
        """The clean-up finished: stand down."""
        self._done.set()
        faulthandler.cancel_dump_traceback_later()


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """``main()`` body of a node: init, build, spin (a single-threaded executor, in a thread) until
    SIGINT / SIGTERM or shutdown, then shut down in an order that leaves nothing to fail: the
    executor stops (callbacks finish), the node is destroyed (its worker thread stops first,
    while the context is still valid), and only then is the context shut down. rclpy's own
    signal handlers are not installed (they invalidate the context at once, under the feet of
    running callbacks and threads); further signals are ignored during the clean-up (under
    ``ros2 launch`` Ctrl-C reaches a node twice: from the terminal and from launch), and the
    clean-up is bounded by a ``ShutdownWatchdog``."""
    stop = threading.Event()
    handler = lambda signum, frame: stop.set()  # noqa: E731 (runs in the main thread, between bytecodes)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = thread = None
    try:
        node = factory()
        # Single-threaded: the nodes' callbacks share one (mutually exclusive) group and the frames run in
        # their own worker, so more executor threads add nothing, and rclpy's MultiThreadedExecutor
        # re-polls a ready subscription until its pool thread takes the message, holding the GIL:
        # measured (bench/anytime.py, 20 Hz 640x480, 45 ms budget) 41-52 % of the frames answered with
        # latency p90 92-329 ms, against 100 % and 34-36 ms with this executor.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        thread = threading.Thread(target=_spin, args=(executor, node, stop), name='executor', daemon=True)
        thread.start()
        while not stop.wait(0.2):
            pass
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        watchdog = ShutdownWatchdog(node.get_fully_qualified_name() if node is not None else 'depth_ros')
        stop.set()
        if thread is not None:
            thread.join(2.0)
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)  # single-threaded: its callbacks ended with the spin thread
        if node is not None:
            watchdog.stage = 'destroying the node'
            node.destroy_node()
        watchdog.stage = 'shutting down rclpy'
        rclpy.try_shutdown()
        watchdog.done()
