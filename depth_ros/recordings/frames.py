"""A stereo recording's frames in memory (numpy, no torch): rectified pairs, the rig's focal
length and baseline, and the ground truth a synthetic recording carries (``depth-ros-record``).

The camera topics are found as ``depth-ros-bag`` finds them (:func:`.pairing.discover`); a
frame is a left and a right image with equal header stamps, in stamp order. Ground truth,
when present, is ``<namespace>/ground_truth/disparity`` (px) and ``.../depth`` (m) with the
left image's stamp."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import geometry, msgs
from ..nodes.sync import stamp_ns
from .bagio import open_reader, read_messages
from .pairing import discover


@dataclass
class StereoRecording:
    """``left``, ``right``: (H, W, 3) uint8 RGB per frame; ``fx`` px, ``baseline`` m (from the
    right camera_info's P: Tx = -fx * baseline); ``stamps`` ns; ``disparity`` / ``depth``:
    (H, W) float32 ground truth per frame (NaN: none), empty lists when the bag has none."""
    path: Path
    left: list[np.ndarray]
    right: list[np.ndarray]
    stamps: list[int]
    fx: float
    baseline: float
    disparity: list[np.ndarray] = field(default_factory=list)
    depth: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.left)

    @property
    def has_ground_truth(self) -> bool:
        return len(self.disparity) == len(self.left) > 0

    def split(self, share: float) -> tuple[list[int], list[int]]:
        """Frame indices of the first ``share`` of the recording and of the rest (in time order)."""
        cut = int(round(share * len(self)))
        return list(range(cut)), list(range(cut, len(self)))


def load_stereo_recording(path: str | Path, max_frames: int = 0) -> StereoRecording:
    """Read a bag's rectified stereo frames (the first ``max_frames``, 0: all) and ground truth.
    ValueError when the bag has no stereo camera or no frame with both views and camera_info."""
    path = Path(path)
    reader = open_reader(path)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()
    cams = discover(types)
    if cams.mono:
        raise ValueError(f'{path}: no stereo pair among its topics (found the single camera {cams.images[0]})')
    ns = cams.namespace.rstrip('/')
    gt = {f'{ns}/ground_truth/disparity': 'disparity', f'{ns}/ground_truth/depth': 'depth'}
    by_stamp: dict[str, dict[int, np.ndarray]] = {k: {} for k in ('left', 'right', 'disparity', 'depth')}
    info = None
    for topic, _, msg in read_messages(path, set(cams.images) | {cams.infos[1]} | set(gt)):
        if topic == cams.infos[1]:
            info = msg
        elif topic in gt:
            by_stamp[gt[topic]][stamp_ns(msg)] = msgs.image_to_array(msg).astype(np.float32)
        else:
            side = 'left' if topic == cams.images[0] else 'right'
            by_stamp[side][stamp_ns(msg)] = msgs.image_to_rgb8(msg)
    if info is None:
        raise ValueError(f'{path}: no camera_info on {cams.infos[1]}')
    baseline = geometry.baseline_from_projection(info.p)
    if baseline <= 0:
        raise ValueError(f'{path}: the right camera_info gives a negative baseline ({baseline} m): '
                         'left and right swapped?')
    stamps = sorted(set(by_stamp['left']) & set(by_stamp['right']))
    if max_frames:
        stamps = stamps[:max_frames]
    if not stamps:
        raise ValueError(f'{path}: no left and right images with equal stamps')
    rec = StereoRecording(path, [by_stamp['left'][s] for s in stamps], [by_stamp['right'][s] for s in stamps],
                          stamps, float(info.p[0]), baseline)
    if all(s in by_stamp['disparity'] and s in by_stamp['depth'] for s in stamps):
        rec.disparity = [by_stamp['disparity'][s] for s in stamps]
        rec.depth = [by_stamp['depth'][s] for s in stamps]
    return rec
