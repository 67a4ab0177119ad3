"""What the depth nodes do about their inputs besides converting them: subscribe lazily
(``LazySubscriptions``) and say what DDS does to large images (``InputWatch``)."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from rclpy.node import Node

from .diagnostics import ErrorReporter
from .runtime import guarded
from .sync import stamp_ns

DDS_FIXES = ("Two fixes (README, 'DDS notes'): start the image publisher with "
             "FASTDDS_BUILTIN_TRANSPORTS='DEFAULT?sockets_size=4MB' (or a Fast DDS profile with a larger "
             'shared-memory segment), or, for a publisher that is reliable, set input_reliability:=reliable '
             'on this node (every image arrives, but with default settings late)')


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
        self._timer = node.create_timer(period, guarded(node, self.check, 'the lazy-subscription check'))
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


class InputWatch:
    """Notices what default Fast DDS settings do to images from another process while their
    (small) camera_info arrives fine: a best-effort subscription loses every image (a lost UDP
    fragment loses the whole image), a reliable one gets them seconds late. ``pairs`` are
    (image topic, camera_info topic); ``seen`` is called with every accepted input message and
    ``check`` (every second, from a timer) reports cause 'input_qos' with both fixes when, for
    ``silent`` s, camera_info arrived and images did not, or when images arrive more than
    ``late`` s later than camera_info (stamp to arrival, median of the recent ones)."""

    def __init__(self, node: Node, pairs: Sequence[tuple[str, str]], errors: ErrorReporter,
                 silent: float = 3.0, late: float = 1.0) -> None:
        self._node, self._errors = node, errors
        self.pairs = [(node.resolve_topic_name(i), node.resolve_topic_name(c)) for i, c in pairs]
        self.silent, self.late = silent, late
        self._lock = threading.Lock()
        self._since: float | None = None
        self._arrived: dict[str, float] = {}
        self._ages: dict[str, deque[float]] = {}
        self._timer = node.create_timer(1.0, guarded(node, self.check, 'the input check'))

    def start(self) -> None:
        """The inputs were (re)subscribed: watch from now."""
        with self._lock:
            self._since = time.monotonic()
            self._arrived.clear()
            self._ages.clear()

    def stop(self) -> None:
        """The inputs were unsubscribed."""
        with self._lock:
            self._since = None

    def seen(self, topic: str, msg: Any) -> None:
        """An input message arrived on ``topic`` (resolved name)."""
        age = (self._node.get_clock().now().nanoseconds - stamp_ns(msg)) * 1e-9
        with self._lock:
            self._arrived[topic] = time.monotonic()
            self._ages.setdefault(topic, deque(maxlen=10)).append(age)

    def problem(self, now: float | None = None) -> str | None:
        """What is wrong with the inputs now, or None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._since is None or now - self._since < self.silent:
                return None
            for image, info in self.pairs:
                info_at, image_at = self._arrived.get(info), self._arrived.get(image)
                if info_at is None or now - info_at > self.silent:
                    continue  # no camera_info either: nothing is published (another report says so)
                if image_at is None or now - image_at > self.silent:
                    return (f'camera_info arrives on {info} but no image on {image} for {self.silent:g} s or '
                            'more: a best-effort subscription to images from another process with default Fast '
                            'DDS settings loses every image (a lost UDP fragment loses the whole image). '
                            + DDS_FIXES)
                image_age = float(np.median(self._ages[image]))
                info_age = float(np.median(self._ages[info]))
                if image_age - info_age > self.late:
                    return (f'images on {image} arrive {image_age:.1f} s after their stamp, camera_info on {info} '
                            f'{info_age:.1f} s: large images from another process with default Fast DDS '
                            'settings are resent fragment by fragment. ' + DDS_FIXES)
        return None

    def check(self) -> None:
        """Report the current problem, if any (throttled by the ErrorReporter)."""
        message = self.problem()
        if message is not None:
            self._errors.report('input_qos', message)
