"""Stereo rendering (batched, numpy or torch) and the simple numpy API for single frames.

Stereo convention (REP 103 optical frames, rectified pair): the right camera sits at
+baseline along the left camera's x axis with the same orientation and intrinsics, so a point
at depth Z has disparity d = fx * B / Z >= 0 and appears at u_r = u_l - d in the right image
(same row); a right pixel's left match is u_l = u_r + d_r.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from .raycast import Window, camera_rays, nearest_hit, slot_windows
from .scene import Scene
from .texture import shade
from .xp import Array, arange, astype, namespace, stack, take_along_last


@dataclass(frozen=True)
class StereoCamera:
    """A rectified stereo camera: image size (px), left intrinsics (px) and baseline (m)."""

    width: int = 640
    height: int = 480
    fx: float = 500.0
    fy: float = 500.0
    cx: float = 319.5
    cy: float = 239.5
    baseline: float = 0.12


def pose_matrix(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """Scene-from-camera transform (4, 4): translation (m, scene frame), then yaw (rad, about the
    camera's y axis, positive turns right) and pitch (rad, about its x axis, positive looks down)."""
    cy_, sy_, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    yaw_m = np.array([[cy_, 0.0, sy_], [0.0, 1.0, 0.0], [-sy_, 0.0, cy_]])
    pitch_m = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    pose = np.eye(4)
    pose[:3, :3] = yaw_m @ pitch_m
    pose[:3, 3] = (x, y, z)
    return pose


NUMPY_CHUNK_PIXELS = 40960  # numpy renders in row blocks this big so that temporaries stay in cache


def full_windows(scene: Scene, height: int, width: int) -> list[Window | None]:
    """No culling: the whole image for every slot used in a (numpy) scene batch. Lets torch
    render without any host synchronisation (large batches gain little from culling anyway)."""
    return [(0, height, 0, width) if used else None for used in np.asarray(scene.valid).any(0)]


def render_view(scene: Scene, fx: Array, fy: Array, cx: Array, cy: Array, origin: Array, rot: Array,
                height: int, width: int, chunk_pixels: int | None = None,
                windows: list[Window | None] | None = None) -> tuple[Array, tuple[Array, Array, Array]]:
    """Depth (B, H, W) m (inf where nothing is hit) and RGB (3 x (B, H, W) in [0, 1]) of one view.

    Intrinsics are (B,) arrays in pixels; ``origin`` (B, 3) and ``rot`` (B, 3, 3) are the
    camera centre and the scene-from-camera rotation. The image is rendered in blocks of rows
    of about ``chunk_pixels`` pixels (default: NUMPY_CHUNK_PIXELS for numpy, one block for torch).
    ``windows`` (per slot, see ``slot_windows``, which computes them when None) restrict where
    each primitive is intersected.
    """
    xp = namespace(fx)
    batch = scene.batch
    if chunk_pixels is None:
        chunk_pixels = NUMPY_CHUNK_PIXELS if xp is np else batch * height * width
    rows = max(1, chunk_pixels // (batch * width))
    focal = xp.sqrt(fx * fy)
    depths, colors = [], []
    with np.errstate(all='ignore'):
        if windows is None:
            windows = slot_windows(scene, origin, rot, fx, fy, cx, cy, height, width)
        for r0 in range(0, height, rows):
            r1 = min(r0 + rows, height)
            rays = camera_rays(fx, fy, cx, cy, rot, (r0, r1), width)
            depth, slot = nearest_hit(scene, origin, rays, windows, r0)
            depths.append(depth)
            colors.append(shade(scene, origin, rays, depth, slot, focal))
    if len(depths) == 1:
        return depths[0], colors[0]
    return xp.concatenate(depths, 1), tuple(xp.concatenate([c[i] for c in colors], 1) for i in range(3))


def occlusion_mask(depth: Array, depth_other: Array, disparity: Array, direction: int, rel_tol: float = 1e-3) -> Array:
    """Pixels of a view that the other view of the pair does not see (B, H, W) bool.

    ``depth``/``disparity`` belong to the reference view, ``depth_other`` to the other one;
    ``direction`` is -1 for the left view (match at u - d) and +1 for the right (u + d). A
    pixel is visible when its match lies inside the other image and one of the two pixels
    around it sees a surface at least as far as the point; pixels hitting nothing are visible.
    """
    xp = namespace(depth)
    width = depth.shape[-1]
    match = arange(width, depth) + direction * disparity
    inside = (match >= 0.0) & (match <= width - 1.0)
    left = astype(xp.floor(xp.clip(match, 0.0, width - 1.0)), 'int64')
    right = xp.clip(left + 1, 0, width - 1)
    seen = xp.maximum(take_along_last(depth_other, left), take_along_last(depth_other, right))
    visible = inside & (seen >= depth * (1.0 - rel_tol))
    return ~visible & (depth < float('inf'))


def render_pair(scene: Scene, fx: Array, fy: Array, cx: Array, cy: Array, origin: Array, rot: Array,
                height: int, width: int, baseline: Array | Callable[[Array], Array],
                windows: list[Window | None] | None = None) -> dict[str, Array]:
    """Render a batch of stereo pairs; ``baseline`` (B,) m, or a function of the left depth giving it.
    ``windows`` are passed to ``render_view`` for both views.

    Returns 'left', 'right' (3 x (B, H, W) RGB in [0, 1]), 'depth', 'depth_right' (m, inf where
    nothing is hit), 'disparity', 'disparity_right' (px, 0 where nothing is hit), 'occlusion',
    'occlusion_right' (bool) and 'baseline' (B,).
    """
    depth, left = render_view(scene, fx, fy, cx, cy, origin, rot, height, width, windows=windows)
    base = baseline(depth) if callable(baseline) else baseline
    origin_right = origin + rot[:, :, 0] * base[:, None]
    depth_right, right = render_view(scene, fx, fy, cx, cy, origin_right, rot, height, width, windows=windows)
    scale = (fx * base).reshape(-1, 1, 1)
    disparity, disparity_right = scale / depth, scale / depth_right
    return {'left': left, 'right': right, 'depth': depth, 'depth_right': depth_right,
            'disparity': disparity, 'disparity_right': disparity_right,
            'occlusion': occlusion_mask(depth, depth_right, disparity, -1),
            'occlusion_right': occlusion_mask(depth_right, depth, disparity_right, +1),
            'baseline': base}


def _to_uint8(rgb: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """3 x (1, H, W) floats in [0, 1] -> (H, W, 3) uint8."""
    return (np.clip(stack(list(rgb), -1)[0], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_stereo(scene: Scene, camera: StereoCamera, pose: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Render one stereo pair of a one-scene batch (numpy).

    ``pose`` (4, 4) is the scene-from-left-camera transform (identity if None, see
    ``pose_matrix``). Returns 'left', 'right' (H, W, 3) uint8 RGB; 'depth', 'depth_right'
    (H, W) float32 m; 'disparity', 'disparity_right' (H, W) float32 px (NaN where nothing is
    hit); 'occlusion' (H, W) bool (left pixels the right camera does not see) and
    'occlusion_right'.
    """
    if scene.batch != 1:
        raise ValueError(f'render_stereo renders one scene, got a batch of {scene.batch}')
    pose = np.eye(4) if pose is None else np.asarray(pose, dtype=np.float64)
    params = [np.array([v], dtype=np.float32) for v in (camera.fx, camera.fy, camera.cx, camera.cy, camera.baseline)]
    out = render_pair(scene, *params[:4], pose[None, :3, 3].astype(np.float32), pose[None, :3, :3].astype(np.float32),
                      camera.height, camera.width, params[4])
    result = {'left': _to_uint8(out['left']), 'right': _to_uint8(out['right'])}
    for key in ('depth', 'depth_right', 'disparity', 'disparity_right'):
        missed = ~np.isfinite(out['depth' if key in ('depth', 'disparity') else 'depth_right'][0])
        result[key] = np.where(missed, np.nan, out[key][0]).astype(np.float32)
    result['occlusion'] = out['occlusion'][0]
    result['occlusion_right'] = out['occlusion_right'][0]
    return result
