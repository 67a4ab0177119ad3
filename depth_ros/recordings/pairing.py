"""Which topics of a bag are the camera, and which of its messages make a frame (no ROS, no bag
library: topic names, types and header stamps in, a plan out).

Discovery: a rectified stereo pair is ``<ns>/left/<image>`` + ``<ns>/right/<image>`` (Image)
with ``<ns>/left/camera_info`` + ``<ns>/right/camera_info``; a single camera is ``<ns>/<image>``
+ ``<ns>/camera_info``. Image names are preferred in the order of ``IMAGE_NAMES``; for one
camera, a camera of its own (outside left/ and right/) is preferred to the left of a pair, and
that to the right. Outputs go under ``<ns>`` (the namespace the node would run in).

Pairing, as the stereo node's exact synchronizer does: a frame is the left and right images
with equal header stamps (with a ``slop``, as ``approximate_sync``: stamps at most ``slop``
apart, the closest pairs first, each image used once). Each camera's camera_info is the one
with its image's stamp or, when none has it (infos recorded at a lower rate, or once), the
latest one stamped before the image (the mono node also uses the latest camera_info it has).
Images without a partner or without any earlier camera_info are skipped, counted with the
reason."""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from posixpath import dirname, join

IMAGE = 'sensor_msgs/msg/Image'
INFO = 'sensor_msgs/msg/CameraInfo'
IMAGE_NAMES = ('image_rect', 'image_rect_color', 'image', 'image_raw', 'image_color', 'image_mono')


class DiscoveryError(ValueError):
    """No camera, or more than one equally good, among a bag's topics."""


@dataclass(frozen=True)
class Cameras:
    """Input topics: ``images`` (left, right) or (image,), their ``infos``, output ``namespace``."""
    images: tuple[str, ...]
    infos: tuple[str, ...]
    namespace: str

    @property
    def mono(self) -> bool:
        return len(self.images) == 1


def info_for(image_topic: str) -> str:
    """The camera_info topic next to an image topic (``/cam/left/image_rect`` -> ``/cam/left/camera_info``)."""
    return join(dirname(image_topic), 'camera_info')


def namespace_of(images: tuple[str, ...]) -> str:
    """Namespace a node would run in: the pair's common parent above left/ and right/, or the
    single camera's folder."""
    parents = [dirname(t) for t in images]
    ns = dirname(parents[0]) if len(images) == 2 else parents[0]
    return ns or '/'


def _rank(name: str) -> int:
    return IMAGE_NAMES.index(name) if name in IMAGE_NAMES else len(IMAGE_NAMES)


def discover(types: dict[str, str], mono: bool = False) -> Cameras:
    """The camera topics among ``types`` ({topic: msgtype}): a stereo pair unless ``mono`` or
    none exists, else a single camera. DiscoveryError lists the candidates when ambiguous."""
    images = sorted(t for t, m in types.items() if m == IMAGE and types.get(info_for(t)) == INFO)
    if not mono:
        pairs = []
        for t in images:
            side, name = dirname(t), t.rsplit('/', 1)[1]
            right = join(dirname(side), 'right', name)
            if side.endswith('/left') and right in images:
                pairs.append((_rank(name), t, right))
        if pairs:
            return _choose(pairs, 'stereo pairs')
    # a camera of its own, then the left of a pair, then the right; then by image name
    singles = [((dirname(t).endswith(('/left', '/right')), dirname(t).endswith('/right'), _rank(t.rsplit('/', 1)[1])),
                t) for t in images]
    if not singles:
        found = ', '.join(f'{t} ({m})' for t, m in sorted(types.items())) or 'none'
        raise DiscoveryError('no camera found: expected <ns>/left/image_rect + <ns>/right/image_rect with '
                             f'<ns>/left|right/camera_info, or <ns>/<image> with <ns>/camera_info; topics: {found}. '
                             'Name the topics with --left-image/--right-image or --image')
    return _choose(singles, 'cameras')


def _choose(candidates: list[tuple], what: str) -> Cameras:
    candidates.sort()
    best = [c for c in candidates if c[0] == candidates[0][0]]
    if len(best) > 1:
        names = '; '.join(' + '.join(c[1:]) for c in best)
        raise DiscoveryError(f'several {what} fit equally well ({names}): name one with the topic options')
    images = tuple(candidates[0][1:])
    return Cameras(images, tuple(info_for(t) for t in images), namespace_of(images))


@dataclass(frozen=True)
class FramePlan:
    """One frame: the stamp (ns) of each image (left, right or one) and of each camera's chosen
    camera_info."""
    stamps: tuple[int, ...]
    info_stamps: tuple[int, ...]


@dataclass
class Plan:
    """Frames to compute, in stamp order, and input images skipped before computing
    (``skipped`` {cause: count}, ``reasons`` {cause: first message})."""
    frames: list[FramePlan] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)

    def skip(self, cause: str, message: str, count: int = 1) -> None:
        self.skipped[cause] += count
        self.reasons.setdefault(cause, message)


def pair_approximate(left: list[int], right: list[int], slop: int) -> list[tuple[int, int]]:
    """(left, right) stamp pairs at most ``slop`` ns apart, the closest pairs first, each stamp
    used once (sorted unique stamps in, pairs in left stamp order out)."""
    candidates = []
    for t in left:
        lo, hi = bisect.bisect_left(right, t - slop), bisect.bisect_right(right, t + slop)
        candidates += [(abs(r - t), t, r) for r in right[lo:hi]]
    used_left: set[int] = set()
    used_right: set[int] = set()
    pairs = []
    for _, t, r in sorted(candidates):
        if t not in used_left and r not in used_right:
            used_left.add(t)
            used_right.add(r)
            pairs.append((t, r))
    return sorted(pairs)


def plan_frames(cameras: Cameras, image_stamps: list[list[int]], info_stamps: list[list[int]],
                slop: int = -1) -> Plan:
    """Pair images (one stamp list per image topic, in bag order) with each other and with
    camera infos (one stamp list per info topic) as described in the module docstring; with
    ``slop`` >= 0 (ns), left and right stamps may differ by up to ``slop`` (approximate_sync)."""
    plan = Plan()
    unique = []
    for topic, stamps in zip(cameras.images, image_stamps):
        unique.append(sorted(set(stamps)))
        if len(unique[-1]) < len(stamps):
            n = len(stamps) - len(unique[-1])
            plan.skip('duplicate', f'{topic}: {n} image(s) repeat an earlier stamp; the first of each is used', n)
    if cameras.mono:
        sets = [(t,) for t in unique[0]]
    elif slop >= 0:
        sets = pair_approximate(unique[0], unique[1], slop)
    else:
        sets = [(t, t) for t in sorted(set(unique[0]) & set(unique[1]))]
    tolerance = f'within {slop * 1e-9:g} s' if slop >= 0 else 'of the same stamp'
    for i, (topic, other) in enumerate(zip(cameras.images, cameras.images[::-1])):
        alone = sorted(set(unique[i]) - {s[i] for s in sets})
        if alone and not cameras.mono:
            plan.skip('unpaired', f'{topic}: {len(alone)} image(s) without an image {tolerance} on {other} '
                      f'(first at {alone[0] * 1e-9:.6f} s)', len(alone))
    infos = [sorted(set(s)) for s in info_stamps]
    for stamps in sets:
        chosen = []
        for topic, stamp, available in zip(cameras.infos, stamps, infos):
            i = bisect.bisect_right(available, stamp)
            if not i:
                plan.skip('camera_info', f'no camera_info on {topic} stamped at or before the image '
                          f'({stamp * 1e-9:.6f} s); frames are skipped until one is recorded')
                break
            chosen.append(available[i - 1])
        else:
            plan.frames.append(FramePlan(tuple(stamps), tuple(chosen)))
    return plan
