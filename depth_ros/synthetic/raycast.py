"""Ray casting against planes, oriented boxes and ellipsoids (numpy or torch, batched).

Rays come from a pinhole camera: for pixel (u, v) (integer coordinates at pixel centres) the
direction in the camera frame is ((u - cx) / fx, (v - cy) / fy, 1), so the ray parameter t of
a hit IS its depth Z along the optical axis. Directions are kept as three (B, H, W) arrays
(x, y, z in scene coordinates); per-scene quantities are (B, 1, 1) so they broadcast.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .scene import Scene
from .xp import Array, arange, asarray, astype, full, namespace, stack

EPS_T = 1e-4      # m; hits closer than this to the ray origin are ignored
NEAR_Z = 0.05     # m; a bounded primitive with a corner closer than this is never culled
Rays = tuple[Array, Array, Array]
Window = tuple[int, int, int, int]  # rows [r0, r1), columns [c0, c1)
_CORNER_SIGNS = np.array([[1.0 - 2.0 * ((i >> k) & 1) for k in range(3)] for i in range(8)], dtype=np.float32)


def _col(x: Array) -> Array:
    """(B,) -> (B, 1, 1) so that per-scene values broadcast over (B, H, W) images."""
    return x.reshape(-1, 1, 1)


def camera_rays(fx: Array, fy: Array, cx: Array, cy: Array, rot: Array, rows: tuple[int, int], width: int) -> Rays:
    """Ray directions (3 x (B, r1 - r0, W)) of image rows [r0, r1) in scene coordinates.

    ``rot`` (B, 3, 3) is the scene-from-camera rotation.
    """
    xc = (arange(width, fx).reshape(1, 1, width) - _col(cx)) / _col(fx)
    yc = (arange(rows[1] - rows[0], fx).reshape(1, -1, 1) + (rows[0] - _col(cy))) / _col(fy)
    return tuple(_col(rot[:, j, 0]) * xc + _col(rot[:, j, 1]) * yc + _col(rot[:, j, 2]) for j in range(3))


def to_local(rot: Array, vec: Rays) -> Rays:
    """``rot^T @ vec`` for rotations (B, 3, 3) and vectors given as three broadcastable arrays."""
    return tuple(_col(rot[:, 0, k]) * vec[0] + _col(rot[:, 1, k]) * vec[1] + _col(rot[:, 2, k]) * vec[2]
                 for k in range(3))


def _offsets(origin: Array, center: Array) -> Rays:
    """origin - center, as three (B, 1, 1) arrays."""
    return tuple(_col(origin[:, j] - center[:, j]) for j in range(3))


def hit_plane(origin: Array, rays: Rays, center: Array, rot: Array, size: Array) -> Array:
    """Ray parameter of the hit with planes (normal = rot[:, :, 2]); inf where missed. (B, h, w)."""
    xp = namespace(rays[0])
    normal = rot[:, :, 2]
    reach = _col(((center - origin) * normal).sum(-1))
    t = reach / (_col(normal[:, 0]) * rays[0] + _col(normal[:, 1]) * rays[1] + _col(normal[:, 2]) * rays[2])
    return xp.where(t > EPS_T, t, float('inf'))


def hit_box(origin: Array, rays: Rays, center: Array, rot: Array, size: Array) -> Array:
    """Slab test against oriented boxes (zero thickness allowed); inf where missed. (B, h, w)."""
    xp = namespace(rays[0])
    o_local = to_local(rot, _offsets(origin, center))
    d_local = to_local(rot, rays)
    near = far = None
    for k in range(3):
        inv = 1.0 / d_local[k]
        half = _col(size[:, k])
        t1 = (-half - o_local[k]) * inv
        t2 = (half - o_local[k]) * inv
        lo, hi = xp.minimum(t1, t2), xp.maximum(t1, t2)
        near = lo if near is None else xp.maximum(near, lo)
        far = hi if far is None else xp.minimum(far, hi)
    return xp.where((near <= far) & (near > EPS_T), near, float('inf'))


def hit_ellipsoid(origin: Array, rays: Rays, center: Array, rot: Array, size: Array) -> Array:
    """Ray parameter of the first hit with ellipsoids (far side if the origin is inside). (B, h, w)."""
    xp = namespace(rays[0])
    o_local = [o / _col(size[:, k]) for k, o in enumerate(to_local(rot, _offsets(origin, center)))]
    d_local = [d / _col(size[:, k]) for k, d in enumerate(to_local(rot, rays))]
    a = d_local[0] * d_local[0] + d_local[1] * d_local[1] + d_local[2] * d_local[2]
    b = o_local[0] * d_local[0] + o_local[1] * d_local[1] + o_local[2] * d_local[2]
    c = o_local[0] * o_local[0] + o_local[1] * o_local[1] + o_local[2] * o_local[2] - 1.0
    disc = b * b - a * c
    root = xp.sqrt(xp.clip(disc, 0.0, None))
    q = xp.where(b < 0, root - b, -root - b)   # the numerically stable pair of roots: q / a, c / q
    t_a, t_b = q / a, c / q
    t_near, t_far = xp.minimum(t_a, t_b), xp.maximum(t_a, t_b)
    t = xp.where(t_near > EPS_T, t_near, t_far)
    return xp.where((disc >= 0) & (t > EPS_T), t, float('inf'))


HITS: dict[str, Callable[..., Array]] = {'plane': hit_plane, 'box': hit_box, 'ellipsoid': hit_ellipsoid}


def slot_windows(scene: Scene, origin: Array, rot: Array, fx: Array, fy: Array, cx: Array, cy: Array,
                 height: int, width: int) -> list[Window | None]:
    """Per slot, the image window that can contain its hits over the whole batch (None: no hits).

    Bounded primitives are culled by projecting the corners of their bounding box; planes, and
    primitives reaching behind the camera, get the full image. One host transfer per call.
    """
    xp = namespace(scene.center)
    signs = asarray(_CORNER_SIGNS, scene.center)
    bounded = xp.where(scene.size < float('inf'), scene.size, 0.0)
    # corners (B, P, 8, 3) in scene coordinates, then in the camera frame: (X - origin) @ rot
    offsets = (signs[None, None, :, None, :] * bounded[:, :, None, None, :] * scene.rot[:, :, None]).sum(-1)
    corners = scene.center[:, :, None, :] + offsets - origin[:, None, None, :]
    cam = xp.matmul(corners, rot[:, None])
    z = cam[..., 2]
    ahead = xp.all(z > NEAR_Z, -1)
    z_safe = xp.where(z > NEAR_Z, z, 1.0)
    u = fx[:, None, None] * cam[..., 0] / z_safe + cx[:, None, None]
    v = fy[:, None, None] * cam[..., 1] / z_safe + cy[:, None, None]
    is_plane = (arange(scene.n_slots, fx) < scene.n_planes)[None]
    full_frame = (is_plane | ~ahead) & scene.valid
    inf = float('inf')
    box = [xp.where(scene.valid, xp.amin(u, -1), inf), xp.where(scene.valid, xp.amax(u, -1), -inf),
           xp.where(scene.valid, xp.amin(v, -1), inf), xp.where(scene.valid, xp.amax(v, -1), -inf)]
    limits = [(-1.0, width + 1.0)] * 2 + [(-1.0, height + 1.0)] * 2
    reduce = [xp.amin, xp.amax, xp.amin, xp.amax]
    summary = [xp.clip(r(b, 0), lo, hi) for b, r, (lo, hi) in zip(box, reduce, limits)]
    summary.append(astype(xp.any(full_frame, 0), 'float32'))
    summary.append(astype(xp.any(scene.valid, 0), 'float32'))
    windows: list[Window | None] = []
    for u0, u1, v0, v1, whole, used in stack(summary, 1).tolist():
        if not used:
            windows.append(None)
        elif whole:
            windows.append((0, height, 0, width))
        else:
            c0, c1 = max(int(u0) - 1, 0), min(int(u1) + 2, width)
            r0, r1 = max(int(v0) - 1, 0), min(int(v1) + 2, height)
            windows.append((r0, r1, c0, c1) if c0 < c1 and r0 < r1 else None)
    return windows


def nearest_hit(scene: Scene, origin: Array, rays: Rays, windows: list[Window | None],
                row0: int = 0) -> tuple[Array, Array]:
    """Depth of the nearest hit (B, h, W) (inf where nothing is hit) and the slot hit (int64).

    ``rays`` cover image rows [row0, row0 + h); ``windows`` are in full-image rows.
    """
    xp = namespace(rays[0])
    shape = tuple(rays[0].shape)
    t_best = full(shape, float('inf'), rays[0])
    slot = full(shape, 0, rays[0], 'int64')
    for k, window in enumerate(windows):
        if window is None:
            continue
        r0, r1, c0, c1 = window
        r0, r1 = max(r0 - row0, 0), min(r1 - row0, shape[1])
        if r0 >= r1:
            continue
        sub = tuple(d[:, r0:r1, c0:c1] for d in rays)
        t = HITS[scene.slot_kind(k)](origin, sub, scene.center[:, k], scene.rot[:, k], scene.size[:, k])
        t = xp.where(_col(scene.valid[:, k]), t, float('inf'))
        current = t_best[:, r0:r1, c0:c1]
        closer = t < current
        t_best[:, r0:r1, c0:c1] = xp.where(closer, t, current)
        slot[:, r0:r1, c0:c1] = xp.where(closer, k, slot[:, r0:r1, c0:c1])
    return t_best, slot
