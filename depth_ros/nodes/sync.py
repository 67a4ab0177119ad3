"""Synchronize several input topics by header stamp.

``Synchronizer`` uses message_filters (TimeSynchronizer / ApproximateTimeSynchronizer) when it
is importable (a ROS 2 distribution has it) and otherwise the fallback policies below, which
have the same semantics, so the nodes also run where only the PyPI ``ros-*`` wheels exist:

- exact: a set is emitted when every input has a message with the same stamp;
- approximate: when a message arrives, the other inputs' queued messages within ``slop`` s of
  it are tried, closest first, and the first combination whose stamps span at most ``slop``
  is emitted (message_filters requires a span strictly below ``slop``);
- each input keeps at most ``queue_size`` messages (the oldest stamp is evicted) and a message
  is emitted at most once.

Both paths also watch for inputs that never pair up (stamps differing by more than the
tolerance) or stay silent: once some input has received more than ``queue_size`` messages
since the last emitted set, ``on_unsynchronized`` gets a message naming the topics (the silent
ones, or all with their latest stamps and the smallest spread of the recent ones). Messages
with an unusable stamp (negative) never reach either path.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from functools import partial
from typing import Any
from collections.abc import Callable, Sequence

from rclpy.node import Node
from rclpy.qos import QoSProfile

from .runtime import guarded, report_crash

try:  # ROS 2 distribution (or ../shared/ros2-tools)
    import message_filters
except ImportError:  # only the PyPI ros-* wheels
    message_filters = None


def stamp_ns(msg: Any) -> int:
    """Header stamp of a message in integer nanoseconds."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


class _Queues:
    """One bounded {stamp_ns: message} queue per input."""

    def __init__(self, n: int, queue_size: int) -> None:
        if n < 1 or queue_size < 1:
            raise ValueError(f'need at least one input and queue_size >= 1 (got {n}, {queue_size})')
        self.queue_size = queue_size
        self.queues: list[dict[int, Any]] = [{} for _ in range(n)]

    def put(self, index: int, stamp: int, msg: Any) -> None:
        q = self.queues[index]
        q[stamp] = msg
        while len(q) > self.queue_size:
            del q[min(q)]

    def pop(self, stamps: Sequence[int]) -> tuple[Any, ...]:
        return tuple(q.pop(t) for q, t in zip(self.queues, stamps))


class ExactTimePolicy(_Queues):
    """Emits the messages of all inputs that carry exactly the same stamp."""

    def add(self, index: int, stamp: int, msg: Any) -> tuple[Any, ...] | None:
        """Queue ``msg`` (stamp in ns) of input ``index``; return a complete set or None."""
        self.put(index, stamp, msg)
        if all(stamp in q for q in self.queues):
            return self.pop([stamp] * len(self.queues))
        return None


class ApproximateTimePolicy(_Queues):
    """Emits one message per input whose stamps span at most ``slop`` seconds."""

    def __init__(self, n: int, queue_size: int, slop: float) -> None:
        super().__init__(n, queue_size)
        if not slop >= 0:
            raise ValueError(f'slop must be >= 0 s, got {slop}')
        self.slop = int(round(slop * 1e9))

    def add(self, index: int, stamp: int, msg: Any) -> tuple[Any, ...] | None:
        """Queue ``msg`` (stamp in ns) of input ``index``; return a set or None."""
        self.put(index, stamp, msg)
        candidates = []
        for i, q in enumerate(self.queues):
            near = [stamp] if i == index else sorted((t for t in q if abs(t - stamp) <= self.slop),
                                                     key=lambda t: abs(t - stamp))
            if not near:
                return None
            candidates.append(near)
        for combo in itertools.product(*candidates):
            if max(combo) - min(combo) <= self.slop:
                return self.pop(combo)
        return None


class Synchronizer:
    """Subscribes ``inputs`` [(message type, topic), ...] with ``qos`` and calls
    ``callback(*messages)`` with one message per input for each synchronized set.
    ``backend`` says which implementation runs ('message_filters' or 'fallback');
    ``use_message_filters`` forces the choice (None: message_filters when importable).

    Every message first passes ``stamp_problem``: one whose stamp no synchronizer can take (a
    negative ``sec``: message_filters' ``Time.from_msg`` raises in the callback and, holding its
    lock, would take the node down or hang it) goes to ``on_rejected(message)`` instead.
    ``on_message(index, msg)`` sees every accepted message (e.g. ``InputWatch.seen``). Silent
    inputs are reported only from ``grace`` s after subscribing (discovery takes time). The
    subscription callbacks are ``runtime.guarded``: an exception is logged and counted."""

    def __init__(self, node: Node, inputs: Sequence[tuple[type, str]], callback: Callable[..., None], *,
                 qos: QoSProfile, queue_size: int = 5, approximate: bool = False, slop: float = 0.1,
                 on_unsynchronized: Callable[[str], None] | None = None,
                 on_rejected: Callable[[str], None] | None = None,
                 on_message: Callable[[int, Any], None] | None = None,
                 use_message_filters: bool | None = None, grace: float = 3.0) -> None:
        self._node = node
        self.topics = [node.resolve_topic_name(topic) for _, topic in inputs]
        self._callback = callback
        self._on_unsynchronized = on_unsynchronized
        self._on_rejected = on_rejected
        self._on_message = on_message
        self.queue_size = queue_size
        self.tolerance = f'within slop {slop} s' if approximate else 'with equal stamps'
        self._lock = threading.Lock()
        self._grace_until = time.monotonic() + grace  # discovery may match the inputs seconds apart
        self._recent: list[deque[int]] = [deque(maxlen=queue_size + 1) for _ in inputs]
        self._since_set = [0] * len(inputs)
        if use_message_filters is None:
            use_message_filters = message_filters is not None
        if use_message_filters and message_filters is None:
            raise ImportError('message_filters is not installed')
        self.backend = 'message_filters' if use_message_filters else 'fallback'
        if use_message_filters:  # our subscriptions feed message_filters' inputs (after the stamp check)
            self._filters = [message_filters.SimpleFilter() for _ in inputs]
            self._sync = (message_filters.ApproximateTimeSynchronizer(self._filters, queue_size, slop)
                          if approximate else message_filters.TimeSynchronizer(self._filters, queue_size))
            self._sync.registerCallback(self._emit)
        else:
            self._policy = (ApproximateTimePolicy(len(inputs), queue_size, slop) if approximate
                            else ExactTimePolicy(len(inputs), queue_size))
        self._subscriptions = [
            node.create_subscription(t, topic, guarded(node, partial(self._receive, i), f'the {topic} callback'), qos)
            for i, (t, topic) in enumerate(inputs)]

    def _receive(self, index: int, msg: Any) -> None:
        problem = stamp_problem(msg)
        if problem is not None:
            if self._on_rejected is not None:
                self._on_rejected(f'{self.topics[index]}: {problem}; message dropped')
            return
        if self._on_message is not None:
            self._on_message(index, msg)
        if self.backend == 'message_filters':
            self._filters[index].signalMessage(msg)
        else:
            with self._lock:
                ready = self._policy.add(index, stamp_ns(msg), msg)
            if ready is not None:
                self._emit(*ready)
        self._seen(index, msg)

    def _emit(self, *msgs: Any) -> None:
        """A complete set (message_filters calls this holding its lock: it must not raise)."""
        with self._lock:
            self._since_set = [0] * len(self._since_set)
            for r in self._recent:  # spreads are of the stamps that found no partner
                r.clear()
        try:
            self._callback(*msgs)
        except Exception as e:
            report_crash(self._node, 'the synchronized-input callback', e)

    def _seen(self, index: int, msg: Any) -> None:
        with self._lock:
            self._recent[index].append(stamp_ns(msg))
            self._since_set[index] += 1
            stuck = max(self._since_set) > self.queue_size
            if stuck:
                recent, since = [list(r) for r in self._recent], list(self._since_set)
                self._since_set = [0] * len(self._since_set)
        message = self._describe(recent, since) if stuck else None
        if message is not None and self._on_unsynchronized is not None:
            self._on_unsynchronized(message)

    def _describe(self, recent: list[list[int]], since: list[int]) -> str | None:
        """Why no set was emitted in the last messages (None: some input is silent, but the
        inputs were subscribed less than ``grace`` s ago)."""
        missing = [topic for topic, n in zip(self.topics, since) if n == 0]
        arriving = [topic for topic, n in zip(self.topics, since) if n > 0]
        if missing and time.monotonic() < self._grace_until:
            return None
        if missing:
            return (f'no messages on {", ".join(missing)} while {", ".join(arriving)} arrive; '
                    'waiting for a complete input set (is every input topic published and remapped?)')
        stamps = ', '.join(f'{topic} {r[-1] * 1e-9:.6f}' for topic, r in zip(self.topics, recent))
        return (f'inputs are not synchronized: no set of messages {self.tolerance} in the last '
                f'{max(since)} messages; latest stamps: {stamps}; the closest stamps of all inputs differ by '
                f'{closest_spread(recent) * 1e-6:.1f} ms (lost messages look the same). Use approximate_sync '
                'with a slop for cameras that are not hardware-synchronized')

    def destroy(self) -> None:
        """Unsubscribe every input."""
        for s in self._subscriptions:
            self._node.destroy_subscription(s)
        self._subscriptions = []


def closest_spread(recent: Sequence[Sequence[int]]) -> int:
    """Smallest spread (ns) of a set with one stamp from each input's ``recent`` stamps: for each
    stamp of the first input, the other inputs' nearest stamps (what the stamp offset between
    the cameras is, not the age of the latest messages)."""
    best = None
    for t0 in recent[0]:
        members = [t0] + [min(r, key=lambda t: abs(t - t0)) for r in recent[1:]]
        spread = max(members) - min(members)
        best = spread if best is None else min(best, spread)
    return int(best or 0)


def stamp_problem(msg: Any) -> str | None:
    """Why a message's header stamp cannot be synchronized or used, or None. A negative ``sec``
    is not a time (rclpy's ``Time`` raises on it); ``nanosec`` must be below 1e9."""
    s = msg.header.stamp
    if s.sec < 0:
        return f'header.stamp.sec is negative ({s.sec})'
    if s.nanosec >= 1_000_000_000:
        return f'header.stamp.nanosec is {s.nanosec}, not below 1e9'
    return None
