"""Scene description: a batch of scenes, each a fixed number of primitive slots.

Coordinates are metres in the scene frame, which is the left camera's optical frame at the
identity pose (REP 103 optical: x right, y down, z forward). Every primitive has a centre, a
rotation whose columns are its local axes, and a half size:

- slots ``[0, n_planes)``: infinite planes through ``center`` with normal = local z
  (size is ``(inf, inf, 0)``);
- slots ``[n_planes, n_planes + n_boxes)``: oriented boxes with half extents ``size``; a
  bounded rectangle is a box of zero thickness (``size[2] == 0``);
- the remaining slots: ellipsoids with radii ``size`` (spheres when they are equal).

Unused slots have ``valid == False``. Each slot also carries ``TEXTURE_PARAMS`` numbers that
describe its procedural texture or name a photograph of the scene's ``photos`` bank (see
``texture.py`` and ``textures.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from collections.abc import Callable, Sequence

import numpy as np

from .textures import PhotoBank
from .xp import Array

# Texture parameter layout (last axis of Scene.texture).
TEX_COLOR0 = slice(0, 3)      # RGB in [0, 1]
TEX_COLOR1 = slice(3, 6)      # RGB in [0, 1]
TEX_SCALE = 6                 # noise lattice cells per metre
TEX_WEIGHTS = slice(7, 11)    # mix of value noise, grating, checker, stripes (sum 1)
TEX_DIRECTION = slice(11, 13)  # grating / stripe direction in surface coordinates (cos, sin)
TEX_FREQ = 13                 # grating / checker / stripe cycles per lattice cell
TEX_SEED = 14                 # integer-valued noise seed in [0, SEED_LIMIT)
TEX_PHOTO = 15                # index of a photograph of Scene.photos (integer-valued), -1: procedural
TEX_PHOTO_SCALE = 16          # photograph repeats per metre of surface
TEX_SPECULAR = 17             # strength of the (white, Blinn-Phong) specular highlight, 0 = matte
TEX_SHININESS = 18            # Blinn-Phong exponent
TEXTURE_PARAMS = 19
SEED_LIMIT = 1 << 12


@dataclass
class Scene:
    """A batch of B scenes with P primitive slots each (arrays are numpy or torch)."""

    center: Array    # (B, P, 3) m
    rot: Array       # (B, P, 3, 3) columns = local axes in scene coordinates
    size: Array      # (B, P, 3) half extents / radii, m
    valid: Array     # (B, P) bool
    texture: Array   # (B, P, TEXTURE_PARAMS)
    light: Array     # (B, 3) unit vector pointing towards the light
    ambient: Array   # (B,) ambient share of the shading, in [0, 1]
    n_planes: int
    n_boxes: int
    photos: PhotoBank | None = None   # photographs that TEX_PHOTO indexes (shared by the batch)

    @property
    def batch(self) -> int:
        """Number of scenes B."""
        return int(self.center.shape[0])

    @property
    def n_slots(self) -> int:
        """Number of primitive slots P."""
        return int(self.center.shape[1])

    def slot_kind(self, k: int) -> str:
        """'plane', 'box' or 'ellipsoid' for slot ``k``."""
        if k < self.n_planes:
            return 'plane'
        return 'box' if k < self.n_planes + self.n_boxes else 'ellipsoid'

    def arrays(self) -> dict[str, Array]:
        """The array fields by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not f.name.startswith('n_') and f.name != 'photos'}

    def map(self, fn: Callable[[Array], Array]) -> Scene:
        """Apply ``fn`` to every array, e.g. ``lambda a: torch.as_tensor(a, device=dev)``."""
        return replace(self, **{name: fn(a) for name, a in self.arrays().items()})


@dataclass
class Primitive:
    """One primitive for ``make_scene`` (see the module docstring for the meaning of the fields)."""

    kind: str                      # 'plane' | 'box' | 'ellipsoid'
    center: Sequence[float]        # m
    size: Sequence[float]          # half extents / radii, m
    rot: np.ndarray | None = None  # (3, 3), identity if None
    texture: np.ndarray | None = None  # (TEXTURE_PARAMS,), random if None


def frame_from_normal(normal: Sequence[float]) -> np.ndarray:
    """A rotation (3, 3) whose third column is the unit ``normal``."""
    z = np.asarray(normal, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def plane(point: Sequence[float], normal: Sequence[float], texture: np.ndarray | None = None) -> Primitive:
    """Infinite plane through ``point`` (m) with the given normal."""
    return Primitive('plane', point, (np.inf, np.inf, 0.0), frame_from_normal(normal), texture)


def box(center: Sequence[float], half_size: Sequence[float], rot: np.ndarray | None = None,
        texture: np.ndarray | None = None) -> Primitive:
    """Oriented box; ``half_size`` (3,) m along the local axes (columns of ``rot``)."""
    return Primitive('box', center, half_size, rot, texture)


def rectangle(center: Sequence[float], half_size: Sequence[float], rot: np.ndarray | None = None,
              texture: np.ndarray | None = None) -> Primitive:
    """Bounded rectangle spanning local x and y with half sizes (2,) m; normal = local z."""
    return Primitive('box', center, (half_size[0], half_size[1], 0.0), rot, texture)


def ellipsoid(center: Sequence[float], radii: Sequence[float], rot: np.ndarray | None = None,
              texture: np.ndarray | None = None) -> Primitive:
    """Ellipsoid with radii (3,) m along the local axes."""
    return Primitive('ellipsoid', center, radii, rot, texture)


def sphere(center: Sequence[float], radius: float, texture: np.ndarray | None = None) -> Primitive:
    """Sphere of ``radius`` m."""
    return Primitive('ellipsoid', center, (radius, radius, radius), None, texture)


def sample_textures(rng: np.random.Generator, shape: tuple[int, ...], scale: tuple[float, float],
                    contrast: tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """Random texture parameters (*shape, TEXTURE_PARAMS); ``scale`` = lattice cells per metre range,
    ``contrast`` the range of the per-channel difference between the two colours."""
    tex = np.empty(shape + (TEXTURE_PARAMS,), dtype=np.float32)
    color0 = rng.random(shape + (3,)) ** 0.8
    step = rng.uniform(*contrast, size=shape + (1,)) * rng.uniform(0.5, 1.0, shape + (3,))
    towards = np.where(rng.random(shape + (3,)) < color0, -1.0, 1.0)   # towards the far end of [0, 1]
    tex[..., TEX_COLOR0] = color0
    tex[..., TEX_COLOR1] = np.clip(color0 + towards * step, 0.0, 1.0)
    tex[..., TEX_SCALE] = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), shape))
    weights = 0.75 * rng.dirichlet([0.6] * 4, size=shape)
    weights[..., 0] += 0.25    # always some value noise
    tex[..., TEX_WEIGHTS] = weights
    angle = rng.uniform(0.0, np.pi, shape)
    tex[..., TEX_DIRECTION] = np.stack([np.cos(angle), np.sin(angle)], -1)
    tex[..., TEX_FREQ] = rng.uniform(0.5, 3.0, shape)
    tex[..., TEX_SEED] = rng.integers(0, SEED_LIMIT, shape)
    tex[..., TEX_PHOTO] = -1.0
    tex[..., TEX_PHOTO_SCALE] = 1.0
    tex[..., TEX_SPECULAR] = 0.0
    tex[..., TEX_SHININESS] = 1.0
    return tex


def assign_photos(rng: np.random.Generator, texture: np.ndarray, count: int, prob: float,
                  metres: tuple[float, float] = (0.3, 4.0)) -> np.ndarray:
    """``texture`` (..., TEXTURE_PARAMS) with a random share ``prob`` of the slots showing one of ``count``
    photographs, each covering a square of ``metres`` (log-uniform) side."""
    out = texture.copy()
    chosen = rng.random(texture.shape[:-1]) < prob if count else np.zeros(texture.shape[:-1], bool)
    out[..., TEX_PHOTO] = np.where(chosen, rng.integers(0, max(count, 1), texture.shape[:-1]), -1)
    out[..., TEX_PHOTO_SCALE] = np.exp(-rng.uniform(np.log(metres[0]), np.log(metres[1]), texture.shape[:-1]))
    return out


def make_scene(primitives: Sequence[Primitive], *, light: Sequence[float] = (0.3, -1.0, -0.4),
               ambient: float = 0.45, seed: int = 0) -> Scene:
    """Pack primitives into a one-scene batch (numpy); missing textures are random from ``seed``."""
    order = {'plane': 0, 'box': 1, 'ellipsoid': 2}
    prims = sorted(primitives, key=lambda p: order[p.kind])
    n = len(prims)
    rng = np.random.default_rng(seed)
    random_tex = sample_textures(rng, (n,), scale=(1.0, 4.0))
    center = np.array([p.center for p in prims], dtype=np.float32).reshape(1, n, 3)
    size = np.array([p.size for p in prims], dtype=np.float32).reshape(1, n, 3)
    rot = np.stack([np.eye(3) if p.rot is None else np.asarray(p.rot) for p in prims]).reshape(1, n, 3, 3)
    tex = np.stack([random_tex[i] if p.texture is None else np.asarray(p.texture) for i, p in enumerate(prims)])
    direction = np.asarray(light, dtype=np.float64)
    return Scene(center=center, rot=rot.astype(np.float32), size=size,
                 valid=np.ones((1, n), dtype=bool), texture=tex.reshape(1, n, TEXTURE_PARAMS).astype(np.float32),
                 light=(direction / np.linalg.norm(direction)).reshape(1, 3).astype(np.float32),
                 ambient=np.array([ambient], dtype=np.float32),
                 n_planes=sum(p.kind == 'plane' for p in prims), n_boxes=sum(p.kind == 'box' for p in prims))
