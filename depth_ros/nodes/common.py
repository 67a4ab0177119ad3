"""Helpers shared by the depth_ros nodes: parameter declaration with descriptions and ranges,
publisher QoS, throttled error reporting, /diagnostics, lazy input subscriptions, a newest-only
worker thread, and the ``main()`` every node uses (clean shutdown on Ctrl-C)."""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar

import numpy as np
import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Input subscriptions use the sensor-data profile (REP 2003: best effort, keep last 5); it also
# receives from reliable publishers.
SENSOR_QOS = qos_profile_sensor_data
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}


@dataclass(frozen=True)
class ParamSpec:
    """What a declared parameter accepts: numeric ``range`` (inclusive) or string ``choices``."""
    name: str
    default: Any
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str | None:
        """Reason the value is not acceptable, or None."""
        if self.choices is not None and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}; got {value!r}'
        if self.range is not None and isinstance(value, (int, float)):
            if not self.range[0] <= value <= self.range[1]:
                return f'{self.name} must be in [{self.range[0]}, {self.range[1]}]; got {value}'
        return None


class ParameterSet:
    """Declares a node's parameters (each with a description and a range or choices) and
    validates run-time changes (``ros2 param set``): integers given for float parameters are
    accepted, out-of-range values and unknown choices are rejected with a reason, then the
    node's own ``validate(changes) -> reason | None`` runs and ``apply(changes)`` follows."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.specs: dict[str, ParamSpec] = {}
        self._validate: Callable[[dict[str, Any]], str | None] | None = None
        self._apply: Callable[[dict[str, Any]], None] | None = None

    def declare(self, name: str, default: Any, description: str, *,
                range: tuple[float, float] | None = None, step: float = 0,
                choices: Sequence[str] | None = None, read_only: bool = False) -> Any:
        """Declare ``name`` and return its value (a launch/YAML override, else ``default``).
        An invalid override is logged as an error naming the parameter and replaced by the
        default, so the node still starts. ``read_only`` parameters cannot change at run time."""
        spec = ParamSpec(name, default, range, tuple(choices) if choices is not None else None)
        desc = ParameterDescriptor(description=description, read_only=read_only)
        if range is not None and isinstance(default, bool):
            raise TypeError(f'parameter {name}: a range makes no sense for a bool')
        if range is not None and isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(range[0]), to_value=int(range[1]), step=int(step or 1))]
        elif range is not None:
            desc.floating_point_range = [FloatingPointRange(from_value=float(range[0]), to_value=float(range[1]),
                                                            step=float(step))]
        if spec.choices is not None:
            desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
        self.specs[name] = spec
        try:
            value = self._node.declare_parameter(name, default, desc).value
        except Exception as e:  # rclpy's InvalidParameter{Value,Type}Exception
            self._node.get_logger().error(f'parameter {name}: invalid value given ({e}); using the default {default!r}')
            return self._node.declare_parameter(name, default, desc, ignore_override=True).value
        reason = spec.check(value)
        if reason is not None:
            self._node.get_logger().error(f'parameter {reason}; using the default {default!r}')
            self._node.set_parameters([Parameter(name, value=default)])
            value = default
        return value

    def get(self, name: str) -> Any:
        """Current value of a declared parameter."""
        return self._node.get_parameter(name).value

    def on_change(self, validate: Callable[[dict[str, Any]], str | None],
                  apply: Callable[[dict[str, Any]], None]) -> None:
        """Install the run-time change callbacks (call after every ``declare``)."""
        self._validate, self._apply = validate, apply
        self._node.add_pre_set_parameters_callback(self._coerce)
        self._node.add_on_set_parameters_callback(self._check)
        self._node.add_post_set_parameters_callback(self._applied)

    def _coerce(self, params: list[Parameter]) -> list[Parameter]:
        out = []
        for p in params:
            spec = self.specs.get(p.name)
            if spec is not None and isinstance(spec.default, float) and p.type_ == Parameter.Type.INTEGER:
                p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
            out.append(p)
        return out

    def _check(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in self.specs}
        for name, value in changes.items():
            reason = self.specs[name].check(value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        reason = self._validate(changes) if self._validate and changes else None
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _applied(self, params: list[Parameter]) -> None:
        changes = {p.name: p.value for p in params if p.name in self.specs}
        if changes and self._apply is not None:
            self._apply(changes)


def declare_qos(params: ParameterSet) -> QoSProfile:
    """Declare ``qos_reliability`` and ``qos_depth`` (publishers; read-only) and return the
    profile they give."""
    reliability = params.declare(
        'qos_reliability', 'reliable', "Reliability of the published topics: 'reliable' (what RViz "
        "and SLAM subscribe with by default) or 'best_effort'.", choices=tuple(RELIABILITY), read_only=True)
    depth = params.declare('qos_depth', 2, 'Publisher history depth (messages kept for slow subscribers).',
                           range=(1, 100), read_only=True)
    return QoSProfile(depth=depth, reliability=RELIABILITY[reliability])


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
    'encoding' or 'publish'; ``message`` names the cause and the topic."""

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
        else:
            self._logger.warning(message + suffix)

    @property
    def total(self) -> int:
        """Problems reported since start."""
        return sum(p.count for p in self.snapshot())

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


def _ms(values: Iterable[float], q: float) -> str:
    v = list(values)
    return f'{1e3 * float(np.percentile(v, q)):.1f}' if v else 'n/a'


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on /diagnostics every ``period`` s: input and
    output rates, latency (input received -> outputs published), node overhead (the frame's
    processing time minus the estimator call and publish(), i.e. conversions), dropped frames, errors, the last problem, and ``info`` (model, backend,
    trained). Level: ERROR/WARN while a problem was reported in the last ``window`` s or while
    ``condition`` (a lasting state, e.g. an untrained model) is set, else OK."""

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

    def overhead_ms(self) -> float:
        """Median node overhead (ms) over the recent frames (NaN before the first)."""
        v = self.timings()[1]
        return 1e3 * float(np.median(v)) if v else float('nan')

    def status(self) -> DiagnosticStatus:
        """The current status message."""
        level, message = OK, 'ok'
        problem = self._errors.latest(self.window)
        if self.condition is not None:
            level, message = self.condition
        if problem is not None and problem.level >= level:
            level, message = problem.level, problem.message
        last = max(self._errors.snapshot(), key=lambda p: p.time, default=None)
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


class LazySubscriptions:
    """Subscribes the inputs only while some output has a subscriber, like stereo_image_proc
    (checked every ``period`` s); with ``lazy`` False the inputs stay subscribed."""

    def __init__(self, node: Node, outputs: Callable[[], Iterable[Any]], subscribe: Callable[[], None],
                 unsubscribe: Callable[[], None], lazy: bool = True, period: float = 0.5) -> None:
        self._node = node
        self._outputs = outputs
        self._subscribe, self._unsubscribe = subscribe, unsubscribe
        self.lazy = lazy
        self.active = False
        self._lock = threading.Lock()
        self._timer = node.create_timer(period, self.check)
        self.check()

    def wanted(self) -> bool:
        """Whether inputs should be subscribed now."""
        return not self.lazy or any(p.get_subscription_count() > 0 for p in self._outputs())

    def check(self) -> None:
        """(Un)subscribe the inputs if the subscriber counts changed."""
        with self._lock:
            want = self.wanted()
            if want == self.active:
                return
            (self._subscribe if want else self._unsubscribe)()
            self.active = want
        self._node.get_logger().info('subscribed to inputs' if want else
                                     'no subscriber to any output: unsubscribed from inputs (lazy)')


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
                with self._cond:
                    self.busy = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current item (the queued one is discarded)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)


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


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """``main()`` body of a node: init, build, spin (a multi-threaded executor) until Ctrl-C or
    shutdown, then destroy the node and shut down cleanly. Further SIGINTs are ignored during the
    clean-up: under ``ros2 launch`` Ctrl-C reaches a node twice (from the terminal and from launch)."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
