"""Fuzzing client for the depth nodes (issue 12): publishes bad input of every class, each try
followed by good frames until one is answered on depth/image. Used for a short run in CI
(test/test_fuzz.py, the node in-process) and for the long run in bench/fuzz.py (the node in its
own process, with RSS tracking).

A target is 'stereo' (left/right image_rect + camera_info, one stamp per set) or 'mono' (image +
camera_info). The good frame is a random texture (stereo: the right view shifted by ``SHIFT``
px, i.e. a plane at fx * B / SHIFT m) with a valid rectified camera_info.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_ros import msgs

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SHIFT = 8  # px of disparity in the good stereo frame
FX, BASELINE = 250.0, 0.1
TOPICS = {'stereo': {'images': ('left/image_rect', 'right/image_rect'),
                     'infos': ('left/camera_info', 'right/camera_info')},
          'mono': {'images': ('image',), 'infos': ('camera_info',)}}
Messages = dict[str, Any]  # topic -> message of one input set


def header(stamp_ns: int, frame_id: str = 'fuzz_optical') -> Header:
    """Header with a stamp in ns (negative allowed: sec < 0)."""
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def info_for(width: int, height: int, fx: float = FX, tx: float = 0.0) -> CameraInfo:
    """Rectified camera_info of a width x height image; P[3] = tx."""
    k = np.array([[fx, 0, (width - 1) / 2], [0, fx, (height - 1) / 2], [0, 0, 1]])
    p = np.hstack([k, [[tx], [0], [0]]])
    return msgs.make_camera_info(k, p, width, height)


class Inputs:
    """Builds input sets for a target: ``good(stamp)`` and the helpers the bad classes use."""

    def __init__(self, kind: str, width: int, height: int, rng: np.random.Generator) -> None:
        self.kind, self.width, self.height, self.rng = kind, width, height, rng
        self.images, self.infos = TOPICS[kind]['images'], TOPICS[kind]['infos']
        self.mismatches = 0  # size mismatches sent: stereo alternates image/image and image/camera_info

    def texture(self, width: int, height: int) -> np.ndarray:
        small = self.rng.integers(0, 256, (-(-height // 4), -(-width // 4), 3), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(np.repeat(small, 4, 0), 4, 1)[:height, :width])

    def good(self, stamp: int, width: int | None = None, height: int | None = None) -> Messages:
        """A valid input set (stereo: a fronto-parallel plane)."""
        w, h = width or self.width, height or self.height
        hdr = header(stamp)
        left = self.texture(w + SHIFT, h)
        out: Messages = {}
        if self.kind == 'stereo':
            out['left/image_rect'] = msgs.array_to_image(np.ascontiguousarray(left[:, SHIFT:]), 'rgb8', hdr)
            out['right/image_rect'] = msgs.array_to_image(np.ascontiguousarray(left[:, :w]), 'rgb8', hdr)
            out['left/camera_info'] = info_for(w, h)
            out['right/camera_info'] = info_for(w, h, tx=-FX * BASELINE)
        else:
            out['image'] = msgs.array_to_image(np.ascontiguousarray(left[:, :w]), 'rgb8', hdr)
            out['camera_info'] = info_for(w, h)
        for topic in self.infos:
            out[topic].header = hdr
        return out

    def pick(self, topics: tuple[str, ...]) -> str:
        return topics[int(self.rng.integers(len(topics)))]


# --- bad input classes: (inputs, stamp) -> the set to publish ----------------------------------
def _encoding(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    m[g.pick(g.images)].encoding = str(g.rng.choice(['yuv422', '32FC1', 'bayer_rggb8', '', 'rgb16', 'mono9']))
    return m


def _truncated(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    img = m[g.pick(g.images)]
    img.data = img.data[:int(g.rng.integers(0, len(img.data)))]
    return m


def _oversized(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    img = m[g.pick(g.images)]
    img.data = bytes(img.data) + bytes(int(g.rng.integers(1, 100_000)))
    return m


def _zero_size(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    img = m[g.pick(g.images)]
    img.width, img.height, img.step, img.data = (0, img.height, 0, b'') if g.rng.random() < 0.5 else \
        (img.width, 0, img.step, b'')
    return m


def _huge_size(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    img = m[g.pick(g.images)]
    img.width, img.height = int(g.rng.choice([100_000, 2**31 - 1, 65_536])), int(g.rng.choice([100_000, 4097]))
    img.step = img.width * 3 % 2**32  # a uint32 on the wire
    return m


def _size_mismatch(g: Inputs, t: int) -> Messages:
    """Left and right of different sizes (stereo) or an image whose camera_info is another size."""
    m = g.good(t)
    other = g.good(t, g.width // 2, g.height // 2)
    g.mismatches += 1
    topic = g.pick(g.images) if g.kind == 'stereo' and g.mismatches % 2 else g.pick(g.infos)
    m[topic] = other[topic]
    return m


def _intrinsics(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    info = m[g.infos[0]]
    value = float(g.rng.choice([0.0, np.nan, np.inf, -FX]))
    info.k[0] = info.p[0] = value
    if g.rng.random() < 0.5:
        info.k[4] = info.p[5] = value
    return m


def _baseline(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    if g.kind == 'stereo':
        m['right/camera_info'].p[3] = float(g.rng.choice([0.0, np.nan, FX * BASELINE, np.inf]))
    else:  # mono: a camera_info without P (an unrectified driver): K is used, so this one is good
        m['camera_info'].p = [0.0] * 12
    return m


def _stamps(g: Inputs, t: int) -> Messages:
    """Unsynchronized (some topics a few ms apart) or backwards (10 s before) stamps."""
    how = g.rng.choice(['unsynced', 'backwards'])
    m = g.good(t if how == 'unsynced' else t - 10_000_000_000)
    if how == 'unsynced':
        for topic in g.rng.permutation(list(m))[:2]:
            m[str(topic)].header = header(t + int(g.rng.integers(1, 200)) * 1_000_000)
    return m


def _negative_stamp(g: Inputs, t: int) -> Messages:
    """header.stamp.sec < 0 on every input (one set) or on one."""
    m = g.good(-int(g.rng.integers(1, 10**12)))
    if g.rng.random() < 0.5:
        keep = g.good(t)
        m = {topic: keep[topic] if topic != g.pick(g.images) else msg for topic, msg in m.items()}
    return m


def _nan_input(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    topic = g.pick(g.images)
    img = m[topic]
    values = np.full((img.height, img.width), np.nan, np.float32)
    m[topic] = msgs.array_to_image(values, '32FC1', img.header)
    return m


def _blank(g: Inputs, t: int) -> Messages:
    m = g.good(t)
    for topic in g.images:
        img = m[topic]
        img.data = bytes(len(img.data)) if g.rng.random() < 0.5 else bytes([255]) * len(img.data)
    return m


def _tiny_or_odd(g: Inputs, t: int) -> Messages:
    w, h = [(1, 1), (2, 3), (7, 5), (333, 187), (17, 480), (641, 13)][int(g.rng.integers(6))]
    return g.good(t, w, h)


CLASSES: dict[str, Callable[[Inputs, int], Messages]] = {
    'encoding': _encoding, 'truncated': _truncated, 'oversized_data': _oversized, 'zero_size': _zero_size,
    'huge_size': _huge_size, 'size_mismatch': _size_mismatch, 'intrinsics': _intrinsics, 'baseline': _baseline,
    'stamps': _stamps, 'negative_stamp': _negative_stamp, 'nan_input': _nan_input, 'blank': _blank,
    'tiny_or_odd_size': _tiny_or_odd,
}


@dataclass
class Result:
    """Per class: tries, and tries whose following good frame was answered."""
    tries: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)  # 'class #try'

    @property
    def total(self) -> tuple[int, int]:
        return sum(self.answered.values()), sum(self.tries.values())


class FuzzClient(Node):
    """Publishes the inputs of a ``kind`` node (under ``namespace``) and listens to its depth/image."""

    def __init__(self, kind: str = 'stereo', width: int = 320, height: int = 240, seed: int = 0,
                 namespace: str = '', name: str = 'fuzz_client', **kwargs: Any) -> None:
        super().__init__(name, namespace=namespace, **kwargs)
        self.inputs = Inputs(kind, width, height, np.random.default_rng(seed))
        self._pubs = {t: self.create_publisher(CameraInfo if 'info' in t else Image, t, RELIABLE)
                      for t in self.inputs.images + self.inputs.infos}
        self._answers: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self.create_subscription(Image, 'depth/image', self._answer, RELIABLE)
        self._stamp = time.time_ns()

    def _answer(self, msg: Image) -> None:
        with self._lock:
            self._answers.add((msg.header.stamp.sec, msg.header.stamp.nanosec))

    def next_stamp(self) -> int:
        self._stamp = max(self._stamp + 1_000_000, time.time_ns())
        return self._stamp

    def publish_set(self, messages: Messages) -> None:
        """Infos first, then images (the mono node caches camera_info)."""
        for topic in sorted(messages, key=lambda t: 'info' not in t):
            self._pubs[topic].publish(messages[topic])

    def connected(self) -> bool:
        """Whether the node subscribes every input and publishes depth/image."""
        return all(p.get_subscription_count() > 0 for p in self._pubs.values()) and \
            self.count_publishers(self.resolve_topic_name('depth/image')) > 0

    def good_frame_answered(self, timeout: float, period: float = 0.3) -> bool:
        """Publish good frames every ``period`` s until one is answered on depth/image."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            stamp = self.next_stamp()
            self.publish_set(self.inputs.good(stamp))
            key = divmod(stamp, 1_000_000_000)
            until = min(time.monotonic() + period, end)
            while time.monotonic() < until:
                with self._lock:
                    if key in self._answers:
                        return True
                time.sleep(0.005)
        return False

    def run(self, tries: int, classes: list[str] | None = None, timeout: float = 5.0, settle: float = 0.2,
            after_try: Callable[[str, int], None] | None = None) -> Result:
        """``tries`` bad sets of each class (all by default), each followed, ``settle`` s later
        (so that the node takes it up: it keeps the newest frame only), by good frames until one
        is answered within ``timeout`` s; ``after_try(class, i)`` runs after each."""
        result = Result()
        for name in classes or list(CLASSES):
            for i in range(tries):
                self.publish_set(CLASSES[name](self.inputs, self.next_stamp()))
                time.sleep(settle)
                ok = self.good_frame_answered(timeout)
                result.tries[name] = result.tries.get(name, 0) + 1
                result.answered[name] = result.answered.get(name, 0) + ok
                if not ok:
                    result.unanswered.append(f'{name} #{i}')
                if after_try is not None:
                    after_try(name, i)
        return result

