"""Random scenes and cameras (numpy, vectorized over the batch, seeded).

Layouts, in a room frame with the camera at the origin (y down, z forward), then turned by a
random camera yaw / pitch / roll:

- indoor: floor below the camera (0.8-1.8 m), often a ceiling, a back wall 4-16 m away and
  side walls 1-5 m to the sides; boxes, bounded rectangles and ellipsoids resting on the
  floor or floating;
- outdoor: ground plane (camera 1-3 m above it), sometimes a slanted hill plane, a far
  background dome (14-20 m) and larger objects.

Every scene also has a background dome so that every ray hits something. Objects keep at
least ~0.5 m from the camera; depths stay roughly within 0.5-20 m.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any
from collections.abc import Callable

import numpy as np

from .content import N_THIN, board_planes, held_planes, real_sizes, thin_structures
from .render import full_windows, render_view
from .scene import (TEX_FREQ, TEX_PHOTO, TEX_SHININESS, TEX_SPECULAR, TEX_WEIGHTS, Scene, assign_photos,
                    sample_textures)
from .textures import PhotoBank
from .xp import Array, namespace

N_PLANES, N_BOXES, N_ELLIPSOIDS = 6, 10, 5
CONTENTS = ('basic', 'rich', 'held', 'boards')
HELD_CONTENTS = ('held', 'boards')   # the contents with a held object (in slot HELD)
FLOOR, CEILING, BACK, LEFT, RIGHT, HILL = range(N_PLANES)
BOX0, ELL0 = N_PLANES, N_PLANES + N_BOXES
DOME = N_PLANES + N_BOXES + N_ELLIPSOIDS - 1
HELD = BOX0 + N_BOXES - 1   # the near flat object's slot in content 'held' and 'boards' (the last regular box)


def _rot_x(a: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) about x by angles a (n,) rad."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([i, o, o, o, c, -s, o, s, c], -1).reshape(-1, 3, 3)


def _rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) about y by angles a (n,) rad."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([c, o, s, o, i, o, -s, o, c], -1).reshape(-1, 3, 3)


def _rot_z(a: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) about z by angles a (n,) rad."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([c, -s, o, s, c, o, o, o, i], -1).reshape(-1, 3, 3)


def _random_rotations(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniformly random rotations (*shape, 3, 3) from normalized gaussian quaternions."""
    q = rng.standard_normal(shape + (4,))
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                     2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                     2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(shape + (3, 3))


# plane frames (columns = local axes, z = normal): floor/ceiling horizontal, walls facing the camera or sideways
_HORIZONTAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_SIDEWAYS = _rot_y(np.array([np.pi / 2]))[0]


def _place(rng: np.random.Generator, size: np.ndarray, rot: np.ndarray, h: np.ndarray, indoor: np.ndarray,
           depth_far: np.ndarray, x_limits: tuple[np.ndarray, np.ndarray], rest: np.ndarray,
           ceiling_y: np.ndarray) -> np.ndarray:
    """Centres (n, k, 3) for objects of half size (n, k, 3) and rotation (n, k, 3, 3).

    Resting objects touch the floor (y = h); floating ones hang between the ceiling (or 2 m
    above the camera) and the floor. Their bounding spheres stay 0.5 m in front of the camera.
    """
    reach = np.linalg.norm(size, axis=-1)                          # bounding radius (n, k)
    support = np.sqrt(((rot[..., 1, :] * size) ** 2).sum(-1))     # half height along y (n, k)
    z_near = 0.5 + reach
    z_far = np.maximum(depth_far[:, None] - support - 0.3, z_near + 0.1)
    z = z_near + rng.random(reach.shape) ** 1.5 * (z_far - z_near)   # favour near objects
    x = np.clip(z * rng.uniform(-0.8, 0.8, reach.shape), x_limits[0][:, None] + reach, x_limits[1][:, None] - reach)
    top = np.maximum(ceiling_y[:, None], -2.0) + support
    bottom = h[:, None] - support - 0.2
    floating = top + rng.random(reach.shape) * np.maximum(bottom - top, 0.0)
    y = np.where(rest, h[:, None] - support, floating)
    return np.stack([x, y, z], -1)


def sample_scenes(rng: np.random.Generator, n: int, indoor_prob: float = 0.6, photos: PhotoBank | None = None,
                  photo_prob: float = 0.5, content: str = 'basic') -> Scene:
    """``n`` random scenes (numpy Scene with N_PLANES + N_BOXES + N_ELLIPSOIDS slots); with a ``photos``
    bank, a share ``photo_prob`` of the surfaces show its photographs (the rest stay procedural).
    ``content`` 'rich' adds N_THIN box slots of thin structures (rods, fences, rings, grids) and
    gives half of the resting boxes real-world sizes (furniture, doors, people, cars; see
    ``content.py``) and a quarter of the surfaces specular highlights; 'held' is 'rich' with, in 70 %
    of the scenes, the last box slot a flat object held 0.35-2 m before the camera (drawn after
    the rest: the same seed gives the same 'rich' scene around it); 'boards' is 'rich' with, in 90 %,
    that slot a larger, strongly slanted board (``board_planes``), half of them with a high-contrast
    periodic pattern; 'basic' (the shipped models' training and validation data) has none of these."""
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {content!r}")
    rich = content != 'basic'
    p = N_PLANES + N_BOXES + N_ELLIPSOIDS
    center = np.zeros((n, p, 3))
    rot = np.tile(np.eye(3), (n, p, 1, 1))
    size = np.zeros((n, p, 3))
    valid = np.zeros((n, p), dtype=bool)
    indoor = rng.random(n) < indoor_prob
    h = np.where(indoor, rng.uniform(0.8, 1.8, n), rng.uniform(1.0, 3.0, n))
    room_height = h + rng.uniform(0.6, 2.4, n)
    back = rng.uniform(4.0, 16.0, n)
    half_left, half_right = rng.uniform(1.0, 5.0, n), rng.uniform(1.0, 5.0, n)

    size[:, :N_PLANES] = (np.inf, np.inf, 0.0)
    valid[:, FLOOR] = True
    center[:, FLOOR, 1] = h
    rot[:, FLOOR] = _HORIZONTAL
    valid[:, CEILING] = indoor & (rng.random(n) < 0.7)
    center[:, CEILING, 1] = h - room_height
    rot[:, CEILING] = _HORIZONTAL
    valid[:, BACK] = indoor
    center[:, BACK, 2] = back
    rot[:, BACK] = _rot_y(rng.uniform(-0.4, 0.4, n))
    for slot, sign, half in ((LEFT, -1.0, half_left), (RIGHT, 1.0, half_right)):
        valid[:, slot] = indoor & (rng.random(n) < 0.85)
        center[:, slot, 0] = sign * half
        rot[:, slot] = _rot_y(rng.uniform(-0.12, 0.12, n)) @ _SIDEWAYS
    valid[:, HILL] = ~indoor & (rng.random(n) < 0.3)
    center[:, HILL] = np.stack([np.zeros(n), h, rng.uniform(6.0, 15.0, n)], -1)
    rot[:, HILL] = _rot_x(rng.uniform(0.08, 0.35, n)) @ _HORIZONTAL

    x_limits = (np.where(valid[:, LEFT], -half_left, -30.0), np.where(valid[:, RIGHT], half_right, 30.0))
    depth_far = np.where(indoor, back, 18.0)
    ceiling_y = np.where(valid[:, CEILING], h - room_height, -30.0)
    # boxes: 55 % resting, 25 % floating, 20 % thin rectangles (floating, any orientation)
    n_box = np.where(indoor, rng.integers(1, N_BOXES - 1, n), rng.integers(2, N_BOXES + 1, n))
    boxes = slice(BOX0, BOX0 + N_BOXES)
    valid[:, boxes] = np.arange(N_BOXES) < n_box[:, None]
    kind = rng.random((n, N_BOXES))
    rest = kind < 0.55
    half = rng.uniform(0.1, 0.7, (n, N_BOXES, 3))
    big = ~indoor[:, None] & (rng.random((n, N_BOXES)) < 0.3)     # outdoor 'buildings'
    half *= np.where(big, 2.5, 1.0)[..., None]
    half[..., 2] = np.where(kind >= 0.8, 0.0, half[..., 2])
    if rich:
        real = rest & (rng.random((n, N_BOXES)) < 0.5)
        half = np.where(real[..., None], real_sizes(rng, indoor, N_BOXES), half)
    upright = _rot_y(rng.uniform(0, 2 * np.pi, n * N_BOXES)).reshape(n, N_BOXES, 3, 3)
    rot[:, boxes] = np.where(rest[..., None, None], upright, _random_rotations(rng, (n, N_BOXES)))
    size[:, boxes] = half
    center[:, boxes] = _place(rng, half, rot[:, boxes], h, indoor, depth_far, x_limits, rest, ceiling_y)
    # ellipsoids (60 % spheres), the last slot is the background dome
    objects = slice(ELL0, DOME)
    n_obj = DOME - ELL0
    valid[:, objects] = np.arange(n_obj) < rng.integers(0, n_obj + 1, n)[:, None]
    radii = rng.uniform(0.15, 0.8, (n, n_obj, 3))
    radii = np.where(rng.random((n, n_obj, 1)) < 0.6, radii[..., :1], radii)
    rot[:, objects] = _random_rotations(rng, (n, n_obj))
    size[:, objects] = radii
    center[:, objects] = _place(rng, radii, rot[:, objects], h, indoor, depth_far, x_limits,
                                rng.random((n, n_obj)) < 0.6, ceiling_y)
    valid[:, DOME] = True
    size[:, DOME] = np.where(indoor, 30.0, rng.uniform(14.0, 20.0, n))[:, None]

    texture = sample_textures(rng, (n, p), scale=(2.0, 25.0))
    texture[:, :N_PLANES] = sample_textures(rng, (n, N_PLANES), scale=(1.0, 12.0))
    weak = rng.random((n, N_PLANES)) < 0.15     # some weakly textured walls
    texture[:, :N_PLANES][weak] = sample_textures(rng, (int(weak.sum()),), scale=(1.0, 12.0), contrast=(0.02, 0.1))
    texture[:, DOME] = sample_textures(rng, (n,), scale=(0.5, 4.0), contrast=(0.1, 0.6))
    n_boxes = N_BOXES
    if rich:   # thin structures: box slots between the boxes and the ellipsoids
        thin = (*thin_structures(rng, h, depth_far, x_limits), sample_textures(rng, (n, N_THIN), scale=(5.0, 40.0)))
        center, rot, size, valid, texture = (np.concatenate([a[:, :ELL0], b.astype(a.dtype), a[:, ELL0:]], 1)
                                             for a, b in zip((center, rot, size, valid, texture), thin))
        n_boxes += N_THIN
        glossy = (rng.random(texture.shape[:2]) < 0.25) & (np.arange(texture.shape[1]) < texture.shape[1] - 1)
        texture[..., TEX_SPECULAR] = np.where(glossy, rng.uniform(0.2, 0.7, glossy.shape), 0.0)
        texture[..., TEX_SHININESS] = np.exp(rng.uniform(np.log(8.0), np.log(128.0), glossy.shape))
    if photos is not None:
        texture = assign_photos(rng, texture, photos.count, photo_prob)
        texture[:, -1, TEX_PHOTO] = -1.0   # the sky (dome) stays procedural
    # camera orientation: turn the whole room about the camera
    turn = _rot_y(rng.uniform(-0.3, 0.3, n)) @ _rot_x(rng.uniform(-0.2, 0.2, n)) @ _rot_z(rng.uniform(-0.08, 0.08, n))
    center = np.einsum('nij,npj->npi', turn, center)
    rot = np.einsum('nij,npjk->npik', turn, rot)
    light = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, -0.2, n), rng.uniform(-1, 0.5, n)], -1)
    light /= np.linalg.norm(light, axis=-1, keepdims=True)
    ambient = rng.uniform(0.35, 0.7, n)
    if content in HELD_CONTENTS:   # in the camera's frame (not turned), replacing the last regular box where drawn
        h_center, h_rot, h_size, h_valid = (held_planes if content == 'held' else board_planes)(rng, n)
        for array, value in ((center, h_center), (rot, h_rot), (size, h_size)):
            array[h_valid, HELD] = value[h_valid]
        valid[:, HELD] = h_valid   # no held object: the slot stays empty (not the regular box it replaces)
        if content == 'boards':
            periodic = h_valid & (rng.random(n) < 0.5)
            texture[periodic, HELD] = periodic_textures(rng, int(periodic.sum()))
    return Scene(center=center.astype(np.float32), rot=rot.astype(np.float32), size=size.astype(np.float32),
                 valid=valid, texture=texture, light=light.astype(np.float32),
                 ambient=ambient.astype(np.float32), n_planes=N_PLANES, n_boxes=n_boxes, photos=photos)


def periodic_textures(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, TEXTURE_PARAMS) high-contrast procedural textures dominated by one periodic pattern (a
    grating, a checker or stripes; squares and bars 3-20 cm), a little value noise on top."""
    tex = sample_textures(rng, (n,), scale=(5.0, 15.0), contrast=(0.5, 1.0))
    weights = np.zeros((n, 4), np.float32)
    weights[:, 0] = 0.1
    weights[np.arange(n), rng.integers(1, 4, n)] = 0.9
    tex[:, TEX_WEIGHTS] = weights
    tex[:, TEX_FREQ] = rng.uniform(1.0, 3.0, n)
    return tex


def random_scene(seed: int, indoor_prob: float = 0.6, photos: PhotoBank | None = None, content: str = 'basic') -> Scene:
    """One random scene (a batch of one, numpy); the same seed gives the same scene."""
    return sample_scenes(np.random.default_rng(seed), 1, indoor_prob, photos, content=content)


def sample_cameras(rng: np.random.Generator, n: int, height: int, width: int,
                   hfov_deg: tuple[float, float] = (45.0, 100.0)) -> dict[str, np.ndarray]:
    """Random pinhole intrinsics (n,) float32 in pixels: 'fx', 'fy' (fx +- 3 %), 'cx', 'cy' (centre +- 5 %)."""
    hfov = np.radians(rng.uniform(*hfov_deg, n))
    fx = 0.5 * width / np.tan(0.5 * hfov)
    cams = {'fx': fx, 'fy': fx * rng.uniform(0.97, 1.03, n),
            'cx': (width - 1) / 2 + width * rng.uniform(-0.05, 0.05, n),
            'cy': (height - 1) / 2 + height * rng.uniform(-0.05, 0.05, n)}
    return {k: v.astype(np.float32) for k, v in cams.items()}


def sample_views(rng: np.random.Generator, n: int, height: int, width: int, *, indoor_prob: float = 0.6,
                 hfov_deg: tuple[float, float] = (45.0, 100.0), photos: PhotoBank | None = None,
                 content: str = 'basic') -> tuple[Scene, dict[str, Any]]:
    """``n`` random scenes and cameras (numpy): the scene batch and the keyword arguments of
    ``render_view`` / ``render_pair`` (fx, fy, cx, cy (n,) px; the camera at the scene origin, the
    scene itself is randomly turned; height, width; no culling). The one front end of batch
    rendering: training (torch, after uploading the arrays) and rendered datasets (numpy) use it."""
    scene = sample_scenes(rng, n, indoor_prob, photos, content=content)
    cams = sample_cameras(rng, n, height, width, hfov_deg)
    view = dict(fx=cams['fx'], fy=cams['fy'], cx=cams['cx'], cy=cams['cy'], origin=np.zeros((n, 3), np.float32),
                rot=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)), height=height, width=width,
                windows=full_windows(scene, height, width))
    return scene, view


def held_mask(scene: Scene, view: dict[str, Any], depth: Array) -> Array:
    """(B, H, W) bool: the pixels of ``depth`` (``render_view(scene, **view)``'s, m) that show the held
    object (content 'held' / 'boards'), i.e. whose depth grows when it is taken out of the scene; all
    False in a scene without one. Costs a second render (numpy or torch, as ``depth``)."""
    xp = namespace(depth)
    valid = scene.valid.copy() if xp is np else scene.valid.clone()
    valid[:, HELD] = False
    without, _ = render_view(replace(scene, valid=valid), **view)
    return xp.isfinite(depth) & (depth < without)


def nearest_baseline(share: Array, fx: Array, max_disparity: float,
                     limits: tuple[float, float] = (0.05, 0.5)) -> Callable[[Array], Array]:
    """``baseline(depth)`` for ``render_pair`` (numpy or torch): per pair, the nearest point of the left
    depth (B, H, W) gets a disparity of ``share`` (B,) x ``max_disparity``, with the baseline kept
    within ``limits`` m unless that would break the hard limit: every disparity stays below max_disparity."""
    per_metre = (max_disparity - 1.0) / fx   # baseline per metre of the nearest depth

    def baseline(depth: Array) -> Array:
        xp = namespace(depth)
        nearest = depth.reshape(depth.shape[0], -1).min(1)
        nearest = nearest if xp is np else nearest.values
        return xp.minimum(xp.clip(share * per_metre * nearest, *limits), 0.99 * per_metre * nearest)

    return baseline
