"""Test helpers for real rclpy nodes over DDS (imported by the node and sync tests): the fixtures
``ros`` (rclpy's default context for a test module) and ``context`` (a private one; a test
module imports ``ros_fixture`` / ``context_fixture`` to use them), an executor spinning in a thread, a probe
node that publishes inputs and records outputs, and message builders. conftest.py gives each
pytest process its own ROS domain."""
from __future__ import annotations

import importlib
import os
import threading
import time
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from depth_ros import msgs

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def require(module: str) -> ModuleType:
    """Import an optional module (ROS tools, torch); in CI (CI=true) its absence fails the test, elsewhere it skips."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get('CI') == 'true':
            pytest.fail(f'{module} must be importable in CI (.ci/run installs it)')
        pytest.skip(f'{module} is not installed')


@pytest.fixture(scope='module', name='ros')
def ros_fixture() -> Iterator[None]:
    """rclpy initialised (default context) for the test module that imports this fixture."""
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(name='context')
def context_fixture() -> Iterator[Context]:
    """A private rclpy context for one test (nodes take ``context=``)."""
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def overrides(**params: Any) -> list[Parameter]:
    """Parameter overrides for a node's constructor."""
    return [Parameter(name, value=value) for name, value in params.items()]


@contextmanager
def spinning(*nodes: Node) -> Iterator[SingleThreadedExecutor]:
    """Spin ``nodes`` on a SingleThreadedExecutor (what ``run_node`` spins) in a background thread;
    after, in run_node's order: the spinning stops, the executor shuts down,
    the nodes are destroyed."""
    executor = SingleThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set() and executor.context.ok():
            executor.spin_once(timeout_sec=0.05)
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        stop.set()
        thread.join(5)
        executor.shutdown()  # its callbacks ran in the joined spin thread
        for n in nodes:
            n.destroy_node()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, period: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f'timed out after {timeout} s waiting for {predicate}')


class Probe(Node):
    """Publishes inputs and records every message received on the subscribed outputs."""

    def __init__(self, name: str = 'probe') -> None:
        super().__init__(name)
        self.received: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._pubs: dict[str, Any] = {}

    def listen(self, topic: str, msg_type: type, qos: QoSProfile = RELIABLE) -> None:
        self.received.setdefault(topic, [])
        self.create_subscription(msg_type, topic, lambda m: self._store(topic, m), qos)

    def _store(self, topic: str, msg: Any) -> None:
        with self._lock:
            self.received[topic].append(msg)

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.received[topic])

    def last(self, topic: str) -> Any:
        with self._lock:
            return self.received[topic][-1] if self.received[topic] else None

    def advertise(self, topic: str, msg_type: type) -> Any:
        """The probe's publisher on ``topic`` (created on first use)."""
        if topic not in self._pubs:
            self._pubs[topic] = self.create_publisher(msg_type, topic, RELIABLE)
        return self._pubs[topic]

    def publish(self, topic: str, msg: Any) -> None:
        self.advertise(topic, type(msg)).publish(msg)

    def send_until(self, send: Callable[[], Any], topics: list[str], timeout: float = 15.0,
                   period: float = 0.25) -> dict[str, Any]:
        """Call ``send()`` every ``period`` s until every topic has a message, received during this
        call, whose stamp is one ``send()`` returned (each send publishes the same inputs under a new
        stamp, so a node slower than ``period`` answers an earlier one); returns the messages of the
        first stamp every topic answered."""
        end = time.monotonic() + timeout
        start = {t: self.count(t) for t in topics}
        sent: list[Any] = []
        while time.monotonic() < end:
            sent.append(send().stamp)
            until = time.monotonic() + period
            while time.monotonic() < until:
                with self._lock:
                    for stamp in sent:
                        found = {t: m for t in topics for m in self.received[t][start[t]:] if m.header.stamp == stamp}
                        if len(found) == len(topics):
                            return found
                time.sleep(0.01)
        raise AssertionError(f'no output on {topics} within {timeout} s '
                             f'(counts: { {t: self.count(t) for t in topics} })')


@contextmanager
def node_with_probe(node: Node, outputs: dict[str, type], name: str = 'probe') -> Iterator[Probe]:
    """Spin ``node`` with a probe that records its ``outputs`` ({topic: message type})."""
    probe = Probe(name)
    for topic, msg_type in outputs.items():
        probe.listen(topic, msg_type)
    with spinning(node, probe):
        yield probe


class Rig:
    """A node under test and its probe. Subclasses define ``send(**kwargs) -> Header``: publish
    one input set with a fresh stamp (``next_stamp``) and return its header."""

    outputs: dict[str, type] = {}

    def __init__(self, node: Node, probe: Probe) -> None:
        self.node, self.probe = node, probe
        self.stamp = time.time_ns()

    def next_stamp(self) -> int:
        """A stamp (ns) 0.1 s after the previous one."""
        self.stamp += 100_000_000
        return self.stamp

    def send(self, **kwargs: Any) -> Header:
        raise NotImplementedError

    def frame(self, topics: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Send until every topic (default: all outputs) has a message with the sent stamp."""
        return self.probe.send_until(lambda: self.send(**kwargs), list(topics or self.outputs))

    def set(self, **params: Any) -> list[Any]:
        """Set parameters of the node; the results."""
        return self.node.set_parameters(overrides(**params))


def header(stamp_ns: int, frame_id: str) -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def camera_info(width: int, height: int, fx: float, tx: float = 0.0, frame_id: str = 'cam') -> CameraInfo:
    """Rectified CameraInfo: K = P[:3, :3], principal point at the centre, P[3] = tx."""
    k = np.array([[fx, 0.0, (width - 1) / 2], [0.0, fx, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return msgs.make_camera_info(k, np.hstack([k, [[tx], [0.0], [0.0]]]), width, height, Header(frame_id=frame_id))


def image(array: np.ndarray, encoding: str, hdr: Header) -> Any:
    return msgs.array_to_image(array, encoding, hdr)


def as_array(msg: Any) -> np.ndarray:
    """Image -> array (its own encoding)."""
    return np.array(msgs.image_to_array(msg))
