"""Procedural textures and lambert (+ optional Blinn-Phong specular) shading of ray hits (numpy or torch).

A texture is a function of the hit point's surface coordinates (a, b) in metres, so both
cameras of a stereo pair see the same surface pattern. It mixes multi-octave value noise
(integer-hashed lattice, identical on numpy and torch), a sinusoidal grating, a soft checker
and soft stripes (clipped sinusoids). Every component fades to its mean once it gets finer
than a few pixels (``footprint``: size of a pixel on the surface), which keeps the images free
of aliasing so that resampling one view into the other is accurate.

A slot may instead show a photograph of the scene's bank (``textures.PhotoBank``), repeated over
the surface in the same surface coordinates and sampled trilinearly from its mip pyramid at the
pixel's footprint (``photo_color``).
"""
from __future__ import annotations

import math

from .raycast import Rays, _col
from .scene import (TEX_COLOR0, TEX_COLOR1, TEX_DIRECTION, TEX_FREQ, TEX_PHOTO, TEX_PHOTO_SCALE, TEX_SCALE,
                    TEX_SEED, TEX_SHININESS, TEX_SPECULAR, TEX_WEIGHTS, TEXTURE_PARAMS, Scene)
from .textures import PhotoBank
from .xp import Array, arange, asarray, astype, is_numpy, namespace, take_columns

OCTAVES = 3
# 16-bit lattice hash in int32 arithmetic: every product stays below 2**31, so numpy and torch
# (CPU or GPU) compute bit-identical values without relying on integer overflow.
_PRIME_X, _PRIME_Y, _PRIME_SEED = 0x9E37, 0x7F4B, 0x3C6F
_MIX1, _MIX2 = 0x6D2B, 0x5A4D
_MASK16 = 0xFFFF
_LATTICE_LIMIT = 16384.0   # lattice coordinates are clamped to +-this (texture seeds are < 4096)
_TEXTURE_START = 15        # texture columns follow centre (3), rotation (9) and size (3) in shade's table


def _hash01(h: Array) -> Array:
    """Integer lattice hash (int32 in) -> float32 in [0, 1)."""
    h = h & _MASK16
    h = ((h ^ (h >> 8)) * _MIX1) & _MASK16
    h = ((h ^ (h >> 7)) * _MIX2) & _MASK16
    return astype(h ^ (h >> 8), 'float32') * (1.0 / 65536.0)


def value_noise(x: Array, y: Array, seed: Array) -> Array:
    """Smooth value noise in [0, 1] with one random value per unit lattice cell; ``seed`` int32."""
    xp = namespace(x)
    x0, y0 = xp.floor(x), xp.floor(y)
    fx, fy = x - x0, y - y0
    ix = astype(xp.clip(x0, -_LATTICE_LIMIT, _LATTICE_LIMIT), 'int32')
    iy = astype(xp.clip(y0, -_LATTICE_LIMIT, _LATTICE_LIMIT), 'int32')
    base = ix * _PRIME_X + iy * _PRIME_Y + seed * _PRIME_SEED
    v00, v10 = _hash01(base), _hash01(base + _PRIME_X)
    v01, v11 = _hash01(base + _PRIME_Y), _hash01(base + (_PRIME_X + _PRIME_Y))
    sx, sy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
    bottom = v00 + (v10 - v00) * sx
    top = v01 + (v11 - v01) * sx
    return bottom + (top - bottom) * sy


def _fade(pixels_per_cycle: Array) -> Array:
    """Weight of a pattern component: 0 at <= 2 pixels per cycle, 1 at >= 4."""
    return namespace(pixels_per_cycle).clip(0.5 * pixels_per_cycle - 1.0, 0.0, 1.0)


def pattern(a: Array, b: Array, footprint: Array, tex: Array) -> Array:
    """Texture value in [0, 1] at surface coordinates a, b (m); footprint (m/pixel); tex (TEXTURE_PARAMS, ...)."""
    xp = namespace(a)
    scale = tex[TEX_SCALE]
    x, y, cell = a * scale, b * scale, footprint * scale   # lattice units; cell = lattice units per pixel
    seed = astype(tex[TEX_SEED], 'int32')
    noise = 0.0
    for octave in range(OCTAVES):
        f = 2.0 ** octave
        n = value_noise(x * f, y * f, seed + 977 * octave)
        noise = noise + (0.5 ** octave) * (0.5 + _fade(1.0 / (f * cell)) * (n - 0.5))
    noise = xp.clip(0.5 + 2.5 * (noise / (2.0 - 0.5 ** (OCTAVES - 1)) - 0.5), 0.0, 1.0)
    freq, (cos, sin) = tex[TEX_FREQ], tex[TEX_DIRECTION]
    along, across = x * cos + y * sin, y * cos - x * sin
    periodic = _fade(1.0 / (freq * cell))
    wave = xp.sin((2.0 * math.pi) * freq * along)
    sharp = xp.clip(0.1 / (freq * cell), 0.5, 6.0)
    grating = 0.5 + 0.5 * periodic * wave
    # soft square waves: a sinusoid amplified by ``sharp`` and clipped (edges stay >= ~1.5 px wide)
    stripes = 0.5 + 0.5 * periodic * xp.clip(sharp * wave, -1.0, 1.0)
    checker = 0.5 + 0.5 * periodic * xp.clip(
        (2.0 * sharp) * xp.sin(math.pi * freq * along) * xp.sin(math.pi * freq * across), -1.0, 1.0)
    w = tex[TEX_WEIGHTS]
    return w[0] * noise + w[1] * grating + w[2] * checker + w[3] * stripes


def photo_color(bank: PhotoBank, index: Array, u: Array, v: Array, cell: Array) -> list[Array]:
    """RGB in [0, 1] (3 x (...)) of photographs ``index`` (integer-valued floats >= 0) at texture
    coordinates u, v (one unit = one photograph, repeated); ``cell``: texture units per pixel, which
    picks the mip level (trilinear: bilinear in the two nearest levels)."""
    xp = namespace(u)
    texels = bank.texels if is_numpy(bank.texels) == is_numpy(u) else asarray(bank.texels, u)
    texels = texels.T                           # (rows, 3) view of the channel-major table
    top = bank.levels - 1
    level = xp.clip(xp.log2(xp.clip(cell * bank.size, 1.0, None)), 0.0, float(top))
    start = astype(index, 'int64') * bank.per_photo(bank.size)
    offsets = asarray(bank.level_offsets(bank.size), u, 'int64')
    lower = xp.floor(level)
    frac = level - lower
    fu, fv = u - xp.floor(u), v - xp.floor(v)
    out = [0.0, 0.0, 0.0]
    for lvl, weight in ((lower, 1.0 - frac), (xp.clip(lower + 1.0, 0.0, float(top)), frac)):
        side_f = bank.size * xp.exp2(-lvl)
        side = astype(side_f, 'int64')
        first = start + offsets[astype(lvl, 'int64')]
        x, y = fu * side_f - 0.5, fv * side_f - 0.5
        x0, y0 = xp.floor(x), xp.floor(y)
        wx, wy = x - x0, y - y0
        ix, iy = astype(x0, 'int64') % side, astype(y0, 'int64') % side
        for row, w_row in ((iy, 1.0 - wy), ((iy + 1) % side, wy)):
            for col, w_col in ((ix, 1.0 - wx), ((ix + 1) % side, wx)):
                rgb = take_columns(texels, first + row * side + col)
                w = weight * w_row * w_col
                out = [out[c] + w * rgb[c] for c in range(3)]
    return out


def shade(scene: Scene, origin: Array, rays: Rays, depth: Array, slot: Array,
          focal: Array) -> tuple[Array, Array, Array]:
    """RGB in [0, 1] (3 x (B, H, W)) of the hits (depth, slot from ``nearest_hit``; black where missed).

    ``focal`` (B,) is the camera focal length in pixels (sqrt(fx * fy)), used for the texture
    level of detail.
    """
    xp = namespace(depth)
    hit = depth < float('inf')
    t = xp.where(hit, depth, 1.0)
    n_slots = scene.n_slots
    table = xp.concatenate([scene.center, scene.rot.reshape(scene.batch, n_slots, 9), scene.size, scene.texture], -1)
    index = slot + _col(arange(scene.batch, depth, 'int64')) * n_slots
    # per pixel, the hit slot's columns: centre (0-2), rotation (3-11, row-major), size (12-14), texture
    g = take_columns(table.reshape(scene.batch * n_slots, _TEXTURE_START + TEXTURE_PARAMS), index)
    rot = [[g[3 + 3 * j + k] for k in range(3)] for j in range(3)]
    rel = [_col(origin[:, j]) + t * rays[j] - g[j] for j in range(3)]
    p = [rot[0][k] * rel[0] + rot[1][k] * rel[1] + rot[2][k] * rel[2] for k in range(3)]
    size = [g[12 + k] for k in range(3)]
    is_box = slot < scene.n_planes + scene.n_boxes
    # face axis: boxes (and planes) the face the point lies on, ellipsoids the dominant axis
    score = [xp.where(is_box, -xp.abs(xp.abs(p[k]) - size[k]), xp.abs(p[k]) / size[k]) for k in range(3)]
    on_x = (score[0] >= score[1]) & (score[0] >= score[2])
    on_z = ~on_x & (score[2] > score[1])
    on_y = ~on_x & ~on_z
    a = xp.where(on_x, p[1], p[0])
    b = xp.where(on_z, p[1], p[2])
    # box faces: the face axis (its sign does not matter, normals are turned towards the camera)
    normal_local = [xp.where(is_box, astype(face, 'float32'), p[k] / (size[k] * size[k]))
                    for k, face in enumerate((on_x, on_y, on_z))]
    normal = [rot[j][0] * normal_local[0] + rot[j][1] * normal_local[1] + rot[j][2] * normal_local[2] for j in range(3)]
    n_len = xp.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2) + 1e-12
    d_len = xp.sqrt(rays[0] ** 2 + rays[1] ** 2 + rays[2] ** 2)
    facing = (normal[0] * rays[0] + normal[1] * rays[1] + normal[2] * rays[2]) / (n_len * d_len)
    light = sum(normal[j] * _col(scene.light[:, j]) for j in range(3)) / n_len
    lambert = xp.clip(-xp.sign(facing) * light, 0.0, None)
    ambient = _col(scene.ambient)
    shading = ambient + (1.0 - ambient) * lambert
    footprint = t / _col(focal) / xp.clip(xp.abs(facing), 0.25, None)
    tex = g[_TEXTURE_START:]
    value = pattern(a, b, footprint, tex)
    color0, color1 = tex[TEX_COLOR0], tex[TEX_COLOR1]
    color = [color0[c] + (color1[c] - color0[c]) * value for c in range(3)]
    if scene.photos is not None:
        photo, repeats = tex[TEX_PHOTO], tex[TEX_PHOTO_SCALE]
        rgb = photo_color(scene.photos, xp.clip(photo, 0.0, None), a * repeats, b * repeats, footprint * repeats)
        color = [xp.where(photo >= 0.0, rgb[c], color[c]) for c in range(3)]
    shaded = [color[c] * shading for c in range(3)]
    if not is_numpy(depth) or (scene.texture[..., TEX_SPECULAR] > 0).any():   # torch: no host sync
        # Blinn-Phong with the normal turned towards the viewer: a white, view-dependent highlight
        n_dot_l = -xp.sign(facing) * light
        l_dot_v = -sum(rays[j] * _col(scene.light[:, j]) for j in range(3)) / d_len
        n_dot_h = (n_dot_l + xp.abs(facing)) / xp.sqrt(xp.clip(2.0 + 2.0 * l_dot_v, 1e-6, None))
        highlight = tex[TEX_SPECULAR] * xp.clip(n_dot_h, 0.0, 1.0) ** tex[TEX_SHININESS]
        highlight = xp.where(n_dot_l > 0.0, highlight, 0.0)
        shaded = [shaded[c] + highlight for c in range(3)]
    return tuple(xp.where(hit, shaded[c], 0.0) for c in range(3))
