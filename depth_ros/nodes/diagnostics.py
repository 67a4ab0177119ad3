"""Problem reporting and /diagnostics for the depth_ros nodes: throttled log lines per cause
with repeat counts, and one DiagnosticStatus per node (rates, latency, node overhead, drops,
errors, the last problem, model information)."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable, Iterable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class Problem:
    """The latest report of one cause."""
    cause: str
    message: str
    level: int
    time: float
    count: int = 0


class ErrorReporter:
    """Logs problems at most once per ``period`` s per cause (with the number of repeats since the
    previous line) and remembers them for /diagnostics. ``cause`` is a short key such as
    'encoding' or 'publish'; ``message`` names the cause and the topic. A report at level OK is
    a state, not an error (e.g. waiting for camera_info): logged at INFO, never counted."""

    def __init__(self, node: Node, period: float = 5.0) -> None:
        self._logger = node.get_logger()
        self.period = period
        self.problems: dict[str, Problem] = {}
        self._logged: dict[str, tuple[float, int]] = {}  # cause -> (time of last log, count then)
        self._lock = threading.Lock()

    def report(self, cause: str, message: str, level: int = WARN) -> None:
        """Record a problem; log it unless this cause was logged less than ``period`` s ago."""
        now = time.monotonic()
        with self._lock:
            p = self.problems.setdefault(cause, Problem(cause, message, level, now))
            p.message, p.level, p.time, p.count = message, level, now, p.count + 1
            last, count_then = self._logged.get(cause, (-np.inf, 0))
            if now - last < self.period:
                return
            self._logged[cause] = (now, p.count)
        repeats = p.count - count_then - 1
        suffix = f' ({repeats} more in the last {now - last:.1f} s)' if repeats > 0 else ''
        if level >= ERROR:  # separate call sites: rclpy fixes the severity of each
            self._logger.error(message + suffix)
        elif level >= WARN:
            self._logger.warning(message + suffix)
        else:
            self._logger.info(message + suffix)

    @property
    def total(self) -> int:
        """Errors and warnings reported since start (level OK reports are not counted)."""
        return sum(p.count for p in self.snapshot() if p.level > OK)

    def snapshot(self) -> list[Problem]:
        """Copies of the problems reported so far (one per cause)."""
        with self._lock:
            return [Problem(**vars(p)) for p in self.problems.values()]

    def latest(self, within: float) -> Problem | None:
        """The most severe (then most recent) problem reported in the last ``within`` s."""
        now = time.monotonic()
        recent = [p for p in self.snapshot() if now - p.time <= within]
        return max(recent, key=lambda p: (p.level, p.time)) if recent else None


class RateMeter:
    """Event rate (Hz) over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        """Count one event (at ``now``, time.monotonic() s)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            while self._times and now - self._times[0] > self.window:
                self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window ending at ``now``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = [t for t in self._times if now - t <= self.window]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


def status_values(msg: DiagnosticArray) -> dict[str, dict[str, str]]:
    """{node name: {key: value}} of the statuses in a /diagnostics message of these nodes (a
    status is named '<node name>: <task>')."""
    return {status.name.split(':')[0]: {kv.key: kv.value for kv in status.values} for status in msg.status}


def _ms(values: Iterable[float], q: float) -> str:
    v = list(values)
    return f'{1e3 * float(np.percentile(v, q)):.1f}' if v else 'n/a'


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on /diagnostics every ``period`` s: input and
    output rates, latency (input received -> outputs published), node overhead (the frame's
    processing time minus the estimator call and publish(), i.e. conversions), dropped frames,
    errors, the last problem, and ``info`` (model, backend, trained). Level: ERROR/WARN while a
    problem was reported in the last ``window`` s or while ``condition`` (a lasting state, e.g.
    an untrained model) is set, else OK; a report at level OK (a wait) shows as the message."""

    def __init__(self, node: Node, errors: ErrorReporter, task: str, period: float = 1.0,
                 window: float = 5.0) -> None:
        self._node = node
        self._errors = errors
        self.name = f'{node.get_name()}: {task}'
        self.window = window
        self.info: dict[str, str] = {}
        self.condition: tuple[int, str] | None = None
        self.dropped: Callable[[], int] = lambda: 0
        self.inputs, self.outputs = RateMeter(window), RateMeter(window)
        self._latency: deque[float] = deque(maxlen=200)
        self._overhead: deque[float] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period, self.publish)

    def frame_in(self) -> None:
        """Count one input frame (set)."""
        self.inputs.tick()

    def frame_out(self, latency: float, overhead: float) -> None:
        """Count one published output; ``latency`` and ``overhead`` in seconds."""
        self.outputs.tick()
        with self._lock:
            self._latency.append(latency)
            self._overhead.append(overhead)

    def timings(self) -> tuple[list[float], list[float]]:
        """Recent (latencies, overheads) in seconds."""
        with self._lock:
            return list(self._latency), list(self._overhead)

    def status(self) -> DiagnosticStatus:
        """The current status message."""
        level, message = OK, 'ok'
        problem = self._errors.latest(self.window)
        if self.condition is not None:
            level, message = self.condition
        if problem is not None and problem.level >= level:
            level, message = problem.level, problem.message
        last = max((p for p in self._errors.snapshot() if p.level > OK), key=lambda p: p.time, default=None)
        latency, overhead = self.timings()
        values = {
            'input rate (Hz)': f'{self.inputs.rate():.2f}',
            'output rate (Hz)': f'{self.outputs.rate():.2f}',
            'frames in': str(self.inputs.count),
            'frames out': str(self.outputs.count),
            'latency median (ms)': _ms(latency, 50),
            'latency p90 (ms)': _ms(latency, 90),
            'node overhead median (ms)': _ms(overhead, 50),
            'dropped frames': str(self.dropped()),
            'errors': str(self._errors.total),
            'last error': last.message if last else '',
            **self.info,
        }
        return DiagnosticStatus(level=bytes([level]), name=self.name, message=message,
                                hardware_id=self._node.get_fully_qualified_name(),
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def publish(self) -> None:
        msg = DiagnosticArray(status=[self.status()])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        try:
            self._pub.publish(msg)
        except Exception as e:  # rclpy raises RCLError "cannot publish data" under load
            self._errors.report('publish', f'cannot publish /diagnostics: {e}')
