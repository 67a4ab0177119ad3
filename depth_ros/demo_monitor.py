"""What depth-ros-demo records and scores: a monitor node that listens to the camera's left
image and ground truth and to every depth node's outputs like a user would (reliable QoS, as
RViz), and the statistics of the printed table (rates, latency percentiles, accuracy against
the exact ground truth).

The synthetic camera plays a loop of pre-rendered views, so the monitor keeps each view's left
image and ground truth once (keyed by a checksum of the left image's bytes) and maps stamps to
views: a node's output is scored against its view's ground truth however late it arrives, and
memory stays bounded however long the demo runs. numpy only (no torch).
"""
from __future__ import annotations

import time
import zlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from . import msgs
from .metrics import depth_metrics, stereo_metrics

WARMUP = 2          # first outputs of each node left out of the latency statistics
KEEP = 10           # newest depth (+ disparity) frames kept per node for accuracy and the picture
CLOUDS = 3          # newest clouds kept per node (4.9 MB each at 640x480 with rgb)
STAMPS = 4096       # stamp -> view entries kept
VIEW_PARTS = ('left', 'depth', 'disparity')  # left image, ground-truth depth and disparity
Stamp = tuple[int, int]


def stamp_of(msg: Any) -> Stamp:
    """(sec, nanosec) of a message's header stamp."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def stamp_seconds(stamp: Stamp) -> float:
    """A stamp in seconds."""
    return stamp[0] + 1e-9 * stamp[1]


def _keep(store: OrderedDict, key: Any, value: Any, size: int) -> None:
    """store[key] = value as the newest entry; the oldest entries beyond ``size`` are dropped."""
    store[key] = value
    store.move_to_end(key)
    while len(store) > size:
        store.popitem(last=False)


@dataclass
class Output:
    """What the monitor recorded of one depth node, whose outputs are under ``prefix``
    (``prefix``/depth/image, ``prefix``/points, and ``prefix``/disparity for a stereo node);
    ``label`` names its table row, ``tag`` its picture panels (shorter); ``received`` and
    ``latency`` (s) cover the run itself, not the final drain."""
    label: str
    tag: str
    prefix: str
    stereo: bool
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    received: list[float] = field(default_factory=list)  # monotonic times of depth images
    frames: OrderedDict = field(default_factory=OrderedDict)  # stamp -> {'depth': Image, 'disparity': ...}
    clouds: OrderedDict = field(default_factory=OrderedDict)  # stamp -> PointCloud2


class Monitor(Node):
    """Subscribes to the source's left image and ground truth and to every output of
    ``outputs``; records receipt - stamp latencies while ``recording`` and keeps the newest frames
    of each node and the ``views`` (up to ``max_views``) they were computed from."""

    def __init__(self, context: Context, outputs: list[Output], max_views: int) -> None:
        super().__init__('depth_ros_demo', context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.recording = True
        self.inputs: list[float] = []  # monotonic times of left images
        self.views: OrderedDict[int, dict[str, Image]] = OrderedDict()  # view key -> VIEW_PARTS
        self.view_of: OrderedDict[Stamp, int] = OrderedDict()
        self.outputs = outputs
        self._max_views = max_views
        self._parts: OrderedDict[Stamp, dict[str, Image]] = OrderedDict()  # stamps not yet complete
        self.create_subscription(Image, 'left/image_rect', lambda m: self._on_part('left', m), qos)
        for name in ('depth', 'disparity'):
            self.create_subscription(Image, f'ground_truth/{name}', lambda m, n=name: self._on_part(n, m), qos)
        for out in outputs:
            self.create_subscription(Image, f'{out.prefix}/depth/image',
                                     lambda m, o=out: self._on_output(o, 'depth', m), qos)
            self.create_subscription(PointCloud2, f'{out.prefix}/points',
                                     lambda m, o=out: self._on_output(o, 'points', m), qos)
            if out.stereo:
                self.create_subscription(DisparityImage, f'{out.prefix}/disparity',
                                         lambda m, o=out: self._on_output(o, 'disparity', m), qos)

    def _on_part(self, name: str, msg: Image) -> None:
        stamp = stamp_of(msg)
        if name == 'left' and self.recording:
            self.inputs.append(time.monotonic())
        parts = self._parts.get(stamp) or {}
        parts[name] = msg
        if len(parts) < len(VIEW_PARTS):
            _keep(self._parts, stamp, parts, 8)
            return
        self._parts.pop(stamp, None)
        key = zlib.crc32(parts['left'].data)
        _keep(self.view_of, stamp, key, STAMPS)
        _keep(self.views, key, self.views.get(key, parts), self._max_views)

    def _on_output(self, out: Output, kind: str, msg: Any) -> None:
        stamp = stamp_of(msg)
        if self.recording:
            now = self.get_clock().now().nanoseconds * 1e-9
            out.latency[kind].append(now - stamp_seconds(stamp))
            if kind == 'depth':
                out.received.append(time.monotonic())
        if kind == 'points':
            _keep(out.clouds, stamp, msg, CLOUDS)
            return
        entry = out.frames.get(stamp) or {}
        entry[kind] = msg
        _keep(out.frames, stamp, entry, KEEP)

    def view(self, stamp: Stamp) -> dict[str, Image] | None:
        """Left image and ground truth of the view published at ``stamp`` (None: unknown)."""
        key = self.view_of.get(stamp)
        return None if key is None else self.views.get(key)


# ----------------------------------------------------------------------------- statistics
def rate(times: list[float]) -> float:
    """Mean rate (Hz) of events at monotonic ``times``."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def percentiles_ms(values: list[float]) -> str:
    """'median / p90' in ms of latencies in s, the warm-up left out."""
    v = values[WARMUP:] if len(values) > WARMUP + 2 else values
    return f'{1e3 * np.median(v):6.1f} / {1e3 * np.percentile(v, 90):6.1f}' if v else 'n/a'


def accuracy(out: Output, monitor: Monitor) -> dict[str, float]:
    """Mean per-frame metrics over the node's kept frames whose view is known: AbsRel, RMSE (m),
    delta<1.25 of depth, density (share of ground-truth pixels with a depth), bad-3 of the
    disparity (stereo); errors on pixels valid in both prediction and ground truth; 'frames'
    is the number of frames scored."""
    rows = []
    for stamp, entry in out.frames.items():
        gt = monitor.view(stamp)
        if gt is None or 'depth' not in entry:
            continue
        pred, gt_depth = msgs.image_to_array(entry['depth']), msgs.image_to_array(gt['depth'])
        if pred.dtype != np.float32 or pred.shape != gt_depth.shape:
            continue  # 16UC1 output or decimated: not compared
        m = depth_metrics(pred, gt_depth)
        row = {'absrel': m['absrel'], 'rmse': m['rmse'], 'delta1': m['delta1'],
               'density': float(np.mean(np.isfinite(pred)[np.isfinite(gt_depth)]))}
        if 'disparity' in entry:
            d = entry['disparity']
            disp = msgs.image_to_array(d.image)
            row['bad3'] = stereo_metrics(disp, msgs.image_to_array(gt['disparity']),
                                         pred_valid=disp >= d.min_disparity)['bad3_pred']
        rows.append(row)
    keys = {k for r in rows for k in r}
    return {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in keys} | {'frames': len(rows)}
