"""Scene content beyond random blocks (numpy, vectorized over the batch): thin structures and
objects at real sizes, for ``sample_scenes(..., content='rich')``.

- ``thin_structures``: N_THIN box slots per scene forming one of: loose rods and poles (wires
  down to 4 mm), a fence (pickets and two rails), a ring or wheel rim (a polygon of thin
  segments), or a grid (crossing bars, a window or a mesh). These are what stereo networks
  smooth away and what FlyingThings3D-style training puts in front of them.
- ``REAL_SIZES``: full sizes (w, h, d) m of furniture, doors, people and cars; resting boxes take
  one of them (indoor or outdoor set), so that sizes and camera heights carry a metric scale cue
  a mono network can learn.
- ``held_planes`` (``content='held'``: 'rich' plus this): a board, poster or book held 0.35-2 m
  in front of the camera, roughly facing it, covering a good part of the view: a near object
  against a far room, the layout the mono students got wrong on the real-camera board.
- ``board_planes`` (``content='boards'``: 'rich' plus this): the same object posed as in a camera
  calibration (larger, slanted up to 60 deg either way, any roll), half of them with a periodic pattern
  (checker, grating, stripes): slant from perspective, where the students applied a "lower rows are
  nearer" prior on the real-camera board whatever its slant.

Coordinates: the room frame of ``sampler.py`` (camera at the origin, y down, the floor at y = h).
"""
from __future__ import annotations

import numpy as np

N_THIN = 10
MODES = ('rods', 'fence', 'ring', 'grid')
REAL_SIZES = {   # full width, height, depth in m
    'indoor': [(1.2, 0.75, 0.8), (0.45, 0.9, 0.5), (0.9, 2.0, 0.05), (0.45, 1.75, 0.28), (0.8, 1.8, 0.4),
               (2.0, 0.85, 0.9), (0.5, 0.5, 0.5), (1.6, 0.45, 2.0)],
    # table, chair, door, person, cabinet, sofa, box, bed
    'outdoor': [(1.8, 1.45, 4.4), (2.0, 2.2, 5.2), (0.45, 1.75, 0.28), (0.6, 1.0, 1.7), (0.3, 2.5, 0.3),
                (2.5, 1.2, 0.6), (0.6, 1.1, 0.6)],   # car, van, person, bicycle, post, bench, bin
}


def real_sizes(rng: np.random.Generator, indoor: np.ndarray, count: int) -> np.ndarray:
    """Half sizes (n, count, 3) m drawn from REAL_SIZES (per scene's set), each scaled by +-10 %."""
    out = np.empty((len(indoor), count, 3))
    for flag, key in ((True, 'indoor'), (False, 'outdoor')):
        table = np.asarray(REAL_SIZES[key])
        rows = indoor == flag
        picks = table[rng.integers(0, len(table), (int(rows.sum()), count))]
        out[rows] = 0.5 * picks * rng.uniform(0.9, 1.1, picks.shape[:-1] + (1,))
    return out


def _yaw(angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about the vertical (y) axis."""
    c, s, o, i = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([c, o, s, o, i, o, -s, o, c], -1).reshape(angle.shape + (3, 3))


def _frame(rng: np.random.Generator) -> np.ndarray:
    """A random rotation (3, 3) (columns = local axes)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _structure(rng: np.random.Generator, mode: str, h: float, anchor: np.ndarray) -> tuple[np.ndarray, ...]:
    """One scene's N_THIN slots: centre (K, 3), rot (K, 3, 3), half size (K, 3), valid (K,)."""
    k = np.arange(N_THIN)
    center, rot = np.tile(anchor, (N_THIN, 1)), np.tile(np.eye(3), (N_THIN, 1, 1))
    size, valid = np.zeros((N_THIN, 3)), np.zeros(N_THIN, bool)
    radius = np.exp(rng.uniform(np.log(0.002), np.log(0.03)))        # bar half thickness, m
    if mode == 'rods':
        valid = rng.random(N_THIN) < 0.7
        length = rng.uniform(0.2, 1.5, N_THIN)
        thick = np.exp(rng.uniform(np.log(0.002), np.log(0.03), N_THIN))
        size = np.stack([thick, length, thick], -1)
        pole = rng.random(N_THIN) < 0.4                                  # standing on the floor
        rot = np.where(pole[:, None, None], np.eye(3), np.stack([_frame(rng) for _ in k]))
        center = anchor + rng.uniform(-1.0, 1.0, (N_THIN, 3)) * [1.5, 0.8, 1.0]
        center[:, 1] = np.where(pole, h - length, np.minimum(center[:, 1], h - length - 0.05))
    elif mode == 'fence':
        m = int(rng.integers(5, N_THIN - 1))
        spacing, height = rng.uniform(0.08, 0.3), rng.uniform(0.6, 1.6)
        direction = _yaw(np.array(rng.uniform(-0.6, 0.6)))
        offsets = (np.arange(m) - (m - 1) / 2) * spacing
        valid[:m + 2] = True
        center[:m] = anchor + offsets[:, None] * direction[:, 0]
        center[:m, 1] = h - height / 2
        size[:m] = (rng.uniform(1.0, 2.5) * radius + 0.005, height / 2, radius + 0.003)
        rot[:m + 2] = direction
        for j, level in enumerate((0.2, 0.85)):
            center[m + j] = anchor
            center[m + j, 1] = h - level * height
            size[m + j] = (m * spacing / 2, radius + 0.004, radius + 0.006)
    elif mode == 'ring':
        frame, big = _frame(rng), rng.uniform(0.25, 1.0)
        phi = 2 * np.pi * k / N_THIN
        valid[:] = True
        tangent = np.outer(-np.sin(phi), frame[:, 0]) + np.outer(np.cos(phi), frame[:, 1])
        radial = np.outer(np.cos(phi), frame[:, 0]) + np.outer(np.sin(phi), frame[:, 1])
        center = anchor + big * np.cos(np.pi / N_THIN) * radial
        rot = np.stack([tangent, radial, np.tile(frame[:, 2], (N_THIN, 1))], -1)
        size = np.tile([big * np.sin(np.pi / N_THIN) + radius, radius + 0.005, radius + 0.005], (N_THIN, 1))
    else:   # grid: crossing bars in a plane
        frame = _yaw(np.array(rng.uniform(-0.7, 0.7))) @ _frame_tilt(rng)
        half = N_THIN // 2
        spacing = rng.uniform(0.06, 0.4)
        offsets = (np.arange(half) - (half - 1) / 2) * spacing
        extent = half * spacing / 2 + radius
        valid[:] = True
        center = anchor + np.concatenate([offsets[:, None] * frame[:, 0], offsets[:, None] * frame[:, 1]])
        rot[:] = frame
        size[:half] = (radius, extent, radius)
        size[half:] = (extent, radius, radius)
    return center, rot, size, valid


def _frame_tilt(rng: np.random.Generator) -> np.ndarray:
    """A small random tilt (3, 3) about x."""
    a = rng.uniform(-0.3, 0.3)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])


def thin_structures(rng: np.random.Generator, h: np.ndarray, depth_far: np.ndarray,
                    x_limits: tuple[np.ndarray, np.ndarray], prob: float = 0.7) -> tuple[np.ndarray, ...]:
    """(n, N_THIN) slots of thin structures (see the module docstring), one structure per scene with
    probability ``prob``: centre (n, K, 3), rot (n, K, 3, 3), half size (n, K, 3), valid (n, K)."""
    n = len(h)
    out = [np.zeros((n, N_THIN, 3)), np.tile(np.eye(3), (n, N_THIN, 1, 1)), np.zeros((n, N_THIN, 3)),
           np.zeros((n, N_THIN), bool)]
    for i in range(n):
        if rng.random() >= prob:
            continue
        z = rng.uniform(2.2, max(2.3, min(depth_far[i] - 1.0, 8.0)))
        x = np.clip(z * rng.uniform(-0.5, 0.5), x_limits[0][i] + 1.0, x_limits[1][i] - 1.0)
        anchor = np.array([x, h[i] - rng.uniform(0.8, 2.0), z])
        for slot, value in zip(out, _structure(rng, MODES[int(rng.integers(len(MODES)))], h[i], anchor)):
            slot[i] = value
    return tuple(out)


def held_planes(rng: np.random.Generator, n: int, prob: float = 0.7, *, distance: tuple[float, float] = (0.35, 2.0),
                width: tuple[float, float] = (0.08, 0.3), tilt: float = 0.7, roll: float = 0.5
                ) -> tuple[np.ndarray, ...]:
    """One flat box per scene with probability ``prob``, in the camera's frame (y down, z forward):
    centre (n, 3) m, ``distance`` m away within the central part of the view; rot (n, 3, 3), tilted
    up to ``tilt`` rad about x and about y and rolled up to ``roll`` rad (defaults: the normal within
    ~40 deg of the optical axis); half size (n, 3) m, half width ``width`` times its distance (at
    most 0.45 m), 3-30 mm thick; valid (n,)."""
    z = rng.uniform(*distance, n)
    center = np.stack([z * rng.uniform(-0.35, 0.35, n), z * rng.uniform(-0.3, 0.3, n), z], -1)
    tilt_x, tilt_y, turn = rng.uniform(-tilt, tilt, n), rng.uniform(-tilt, tilt, n), rng.uniform(-roll, roll, n)
    cx, sx, cz, sz = np.cos(tilt_x), np.sin(tilt_x), np.cos(turn), np.sin(turn)
    o, i = np.zeros(n), np.ones(n)
    rot_x = np.stack([i, o, o, o, cx, -sx, o, sx, cx], -1).reshape(n, 3, 3)
    rot = _yaw(tilt_y) @ rot_x @ np.stack([cz, -sz, o, sz, cz, o, o, o, i], -1).reshape(n, 3, 3)
    half_width = np.clip(z * rng.uniform(*width, n), 0.05, 0.45)   # (0.08, 0.3): a tenth to a third of a 90 deg view
    size = np.stack([half_width, half_width * rng.uniform(0.6, 1.4, n),
                     np.exp(rng.uniform(np.log(0.003), np.log(0.03), n))], -1)
    return center, rot, size, rng.random(n) < prob


def board_planes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """``held_planes`` as in a calibration session (``content='boards'``): in 90 % of the scenes, 0.35-2.5 m
    away, larger (half width 0.12-0.45 of the distance), slanted up to 60 deg about x and y and rolled
    at any angle, so that its perspective (converging edges, shrinking pattern) is the cue to its
    slant, not the rows it covers."""
    return held_planes(rng, n, 0.9, distance=(0.35, 2.5), width=(0.12, 0.45), tilt=1.05, roll=np.pi)
