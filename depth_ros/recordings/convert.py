"""A recording in, the same recording with depth out: every message of the input bag is copied
unchanged and each frame's depth outputs (what the depth node publishes for it, see
``offline.OfflineNode``) are added at the log time of the frame's last input message.

Two passes over the input: the first reads only the header stamps of the camera topics and
plans the frames (``pairing.plan_frames``); the second copies every message and computes each
planned frame as soon as its messages have been read, so memory holds a few frames only."""
from __future__ import annotations

import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sensor_msgs.msg import CameraInfo, Image

from ..nodes.base import FrameError
from . import bagio
from .offline import OfflineNode
from .pairing import Cameras, Plan, plan_frames


@dataclass
class Summary:
    """What a conversion did: input frames (images on the first camera topic), frames with
    outputs, skipped {cause: count} with the first reason of each (frames; images for
    'unpaired' and 'duplicate'), messages written per output topic, messages copied, wall time (s)."""
    cameras: Cameras
    model: str
    frames_in: int = 0
    frames_out: int = 0
    skipped: Counter = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    copied: int = 0
    seconds: float = 0.0

    def skip(self, cause: str, message: str, count: int = 1) -> None:
        self.skipped[cause] += count
        self.reasons.setdefault(cause, message)

    def text(self, output: Path, storage: str) -> str:
        """The summary printed at the end (several lines)."""
        rate = self.frames_out / self.seconds if self.seconds > 0 else 0.0
        lines = [f'{" + ".join(self.cameras.images)} ({"mono" if self.cameras.mono else "stereo"}, model '
                 f'{self.model}): {self.frames_in} frames in, {self.frames_out} out, '
                 f'{sum(self.skipped.values())} skipped; {self.seconds:.1f} s, {rate:.2f} frames/s']
        lines += [f'  skipped {n} {cause}: {self.reasons[cause]}' for cause, n in sorted(self.skipped.items())]
        written = ', '.join(f'{n} {topic}' for topic, n in self.outputs.items()) or 'no outputs'
        lines.append(f'  wrote {output} ({storage}): {self.copied} input messages copied; {written}')
        return '\n'.join(lines)


class Progress:
    """A progress line on ``stream``: ``unit`` done/total, per second and ETA. On a terminal it is
    redrawn in place (at most 4 times a second); otherwise a line is printed every 10 %."""

    def __init__(self, total: int, stream: TextIO | None, unit: str = 'frames') -> None:
        self.total, self.stream, self.unit = total, stream, unit
        self._tty = bool(stream is not None and stream.isatty())
        self._start = self._last = time.monotonic()
        self._decile = 0

    def update(self, done: int) -> None:
        if self.stream is None or not self.total:
            return
        now = time.monotonic()
        decile = 10 * done // self.total
        if self._tty and now - self._last < 0.25 and done < self.total:
            return
        if not self._tty and decile == self._decile and done < self.total:
            return
        self._last, self._decile = now, decile
        rate = done / max(now - self._start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float('inf')
        bar = '#' * (20 * done // self.total)
        line = f'[{bar:<20}] {done}/{self.total} {self.unit}, {rate:.2f} {self.unit}/s, ETA {eta:.0f} s'
        self.stream.write(('\r' + line) if self._tty else line + '\n')
        if self._tty and done >= self.total:
            self.stream.write('\n')
        self.stream.flush()


class _FrameAssembler:
    """Collects the messages of planned frames as the bag is read and hands complete ones over."""

    def __init__(self, cameras: Cameras, plan: Plan) -> None:
        self.cameras = cameras
        self.plan = plan.frames
        self.slots = {(i, s): k for k, f in enumerate(plan.frames) for i, s in enumerate(f.stamps)}
        self.images: dict[int, dict[int, tuple[bytes, int]]] = {}  # frame -> {slot: (raw, log_ns)}
        self.infos: list[dict[int, tuple[Any, int]]] = [{} for _ in cameras.infos]  # stamp -> (msg, log_ns)
        self.done: set[int] = set()

    def add(self, topic: str, log_ns: int, raw: Any) -> list[int]:
        """Take a message of a camera topic; return the frames (plan indices) now complete."""
        try:
            stamp = bagio.header_stamp(raw)
        except (struct.error, IndexError):  # counted by scan
            return []
        if topic in self.cameras.images:
            slot = self.cameras.images.index(topic)
            k = self.slots.get((slot, stamp))
            if k is None or k in self.done or slot in self.images.setdefault(k, {}):
                return []  # not planned (counted while planning), or a repeated stamp
            self.images[k][slot] = (bytes(raw), log_ns)
            return [k] if self.complete(k) else []
        for j, info_topic in enumerate(self.cameras.infos):
            if topic == info_topic and stamp not in self.infos[j]:
                self.infos[j][stamp] = (bagio.deserialize(raw, CameraInfo), log_ns)
        return [k for k in self.images if self.complete(k)]

    def complete(self, k: int) -> bool:
        return (len(self.images[k]) == len(self.cameras.images)
                and all(s in infos for s, infos in zip(self.plan[k].info_stamps, self.infos)))

    def take(self, k: int) -> tuple[list[Image], list[CameraInfo], int]:
        """Images and camera infos of a complete frame and its log time (ns, the latest input's)."""
        self.done.add(k)
        slots = self.images.pop(k)
        images = [slots[i] for i in range(len(self.cameras.images))]
        infos = [infos[s] for s, infos in zip(self.plan[k].info_stamps, self.infos)]
        log_ns = max(t for _, t in images + infos)
        return [bagio.deserialize(raw, Image) for raw, _ in images], [m for m, _ in infos], log_ns


def scan(reader: Any, cameras: Cameras, slop: int = -1) -> tuple[Plan, int]:
    """First pass: the frame plan (``slop`` ns: see ``plan_frames``) and the number of input
    frames (images on the first topic)."""
    topics = list(cameras.images + cameras.infos)
    stamps: list[list[int]] = [[] for _ in topics]
    corrupt = 0
    conns = [c for c in reader.connections if c.topic in topics]
    for conn, _, raw in reader.messages(connections=conns):
        try:
            stamps[topics.index(conn.topic)].append(bagio.header_stamp(raw))
        except (struct.error, IndexError):  # truncated message
            corrupt += 1
    n = len(cameras.images)
    plan = plan_frames(cameras, stamps[:n], stamps[n:], slop)
    if corrupt:
        plan.skip('corrupt', f'{corrupt} camera message(s) too short to hold a header', corrupt)
    return plan, len(set(stamps[0]))


def convert(input_bag: Path, writer: bagio.BagWriter, cameras: Cameras, node: OfflineNode,
            progress: TextIO | None = sys.stderr, slop: float | None = None) -> Summary:
    """Copy ``input_bag`` into ``writer`` with the depth outputs of every frame added; ``slop``
    (s): pair left and right images up to this far apart (None: equal stamps)."""
    start = time.monotonic()
    reader = bagio.open_reader(input_bag)
    try:
        plan, frames_in = scan(reader, cameras, -1 if slop is None else int(round(slop * 1e9)))
        summary = Summary(cameras, str(node.estimator.name), frames_in=frames_in,
                          skipped=Counter(plan.skipped), reasons=dict(plan.reasons), outputs=writer.counts)
        bar = Progress(len(plan.frames), progress)
        frames = _FrameAssembler(cameras, plan)
        camera_topics = set(cameras.images + cameras.infos)
        for conn, log_ns, raw in reader.messages():
            writer.copy(conn, log_ns, raw)
            summary.copied += 1
            if conn.topic not in camera_topics:
                continue
            try:
                ready = frames.add(conn.topic, log_ns, raw)
            except Exception as e:  # a message that does not deserialize
                summary.skip('corrupt', f'{conn.topic}: cannot deserialize a message ({e})')
                continue
            for k in ready:
                _compute(frames, k, node, writer, summary)
                bar.update(len(frames.done))
        incomplete = len(plan.frames) - len(frames.done)
        if incomplete:
            summary.skip('incomplete', 'messages planned for a frame could not be read', incomplete)
    finally:
        reader.close()
    summary.seconds = time.monotonic() - start
    return summary


def _compute(frames: _FrameAssembler, k: int, node: OfflineNode, writer: bagio.BagWriter,
             summary: Summary) -> None:
    """Run the node on frame ``k`` of the plan and write its outputs (or count why it was skipped)."""
    try:
        images, infos, log_ns = frames.take(k)
    except Exception as e:
        summary.skip('corrupt', f'{frames.cameras.images[0]}: cannot deserialize an image ({e})')
        return
    try:
        if node.mono:
            node.set_camera_info(infos[0])
            out = node.process((images[0],))
        else:
            out = node.process((images[0], infos[0], images[1], infos[1]))
    except FrameError as e:
        summary.skip(e.cause, e.message)
        return
    for topic, msg in out:
        writer.write(topic, msg, log_ns)
    summary.frames_out += bool(out)
