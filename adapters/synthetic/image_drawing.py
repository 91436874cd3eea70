"""Procedural TrojAI-style synthetic traffic-sign images for tiny backdoored classifiers.

Everything here is numpy + Pillow only and takes an explicit ``numpy.random.Generator`` so a
seed fully determines every image. The pieces mirror the TrojAI image rounds: per-class sign
foregrounds, procedural backgrounds, polygon triggers pasted onto the sign, "instagram" filter
triggers applied to the whole image, and a compositor with the usual nuisance augmentations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "INSTAGRAM_FILTERS",
    "MAX_CLASSES",
    "compose",
    "make_background",
    "make_foregrounds",
    "make_polygon_trigger",
    "paste_polygon_trigger",
    "render_example",
]

RGB = tuple[int, int, int]

# Saturated sign colours; a tiny CNN at 32 px keys mostly on colour, so keep them far apart.
_RED: RGB = (215, 25, 30)
_BLUE: RGB = (20, 70, 200)
_YELLOW: RGB = (250, 205, 15)
_WHITE: RGB = (245, 245, 245)
_BLACK: RGB = (20, 20, 20)
_GREEN: RGB = (15, 145, 60)
_ORANGE: RGB = (245, 125, 15)

# Outer shapes as (corner count, rotation in degrees); the circle is a fine polygon so all shapes
# share one code path (fit to canvas, inset for the border, symbol on the incentre).
_SHAPES: dict[str, tuple[int, float]] = {
    "circle": (96, 0.0),
    "triangle": (3, -90.0),
    "inverted_triangle": (3, 90.0),
    "square": (4, 45.0),
    "diamond": (4, 0.0),
    "pentagon": (5, -90.0),
    "hexagon": (6, 0.0),
    "octagon": (8, 22.5),
}

# (border, fill, symbol) colour schemes modelled on real sign families.
_SCHEMES: tuple[tuple[RGB, RGB, RGB], ...] = (
    (_RED, _WHITE, _BLACK),  # prohibition
    (_WHITE, _BLUE, _WHITE),  # mandatory
    (_BLACK, _YELLOW, _BLACK),  # warning
    (_WHITE, _RED, _WHITE),  # stop-like
    (_WHITE, _GREEN, _WHITE),  # direction
    (_BLACK, _ORANGE, _BLACK),  # road works
    (_YELLOW, _BLACK, _YELLOW),  # hazard marker
    (_RED, _YELLOW, _RED),
    (_BLUE, _WHITE, _RED),
)

_SYMBOLS: tuple[str, ...] = ("bar", "cross", "saltire", "dot", "ring", "arrow", "pause")

MAX_CLASSES = len(_SHAPES) * len(_SCHEMES) * len(_SYMBOLS)

_SUPERSAMPLE = 4  # draw at 4x and box-downsample for clean anti-aliased edges


# --------------------------------------------------------------------------------------------
# Foregrounds
# --------------------------------------------------------------------------------------------


def _class_attributes(num_classes: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Pick distinct (shape, scheme, symbol) index triples, one per class.

    Index i maps to (i mod 8, i mod 9, i mod 7). Two indices below lcm of any two moduli (>= 56)
    agree in at most one attribute, so up to 56 classes every pair differs in at least two of
    shape / colours / symbol. Label permutations and the class order come from ``rng``.
    """
    n_sh, n_sc, n_sy = len(_SHAPES), len(_SCHEMES), len(_SYMBOLS)
    latin = min(num_classes, n_sh * n_sy)  # 56: smallest pairwise lcm of the moduli
    combos = [(i % n_sh, i % n_sc, i % n_sy) for i in range(latin)]
    if num_classes > latin:
        # Beyond the well-separated set, fall back to the remaining combinations in random order.
        used = set(combos)
        rest = [
            (a, b, c) for a in range(n_sh) for b in range(n_sc) for c in range(n_sy) if (a, b, c) not in used
        ]
        order = rng.permutation(len(rest))[: num_classes - latin]
        combos.extend(rest[k] for k in order)
    p_sh, p_sc, p_sy = rng.permutation(n_sh), rng.permutation(n_sc), rng.permutation(n_sy)
    combos = [(int(p_sh[a]), int(p_sc[b]), int(p_sy[c])) for a, b, c in combos]
    return [combos[k] for k in rng.permutation(len(combos))]


def _fit_polygon(n: int, rot_deg: float, canvas: float, margin: float) -> tuple[np.ndarray, float, float]:
    """Regular n-gon scaled so its bounding box fills the canvas; returns (vertices, centre, inradius)."""
    ang = np.deg2rad(rot_deg) + 2.0 * np.pi * np.arange(n) / n
    unit = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    scale = (canvas - 2.0 * margin) / float((hi - lo).max())
    verts = (unit - (lo + hi) / 2.0) * scale + canvas / 2.0
    # For a regular polygon the vertex mean is the incentre, so insetting about it keeps the
    # border an even width on every side.
    centre = verts.mean(axis=0)
    inradius = scale * math.cos(math.pi / n)
    return verts, centre, inradius


def _as_points(verts: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in verts]


def _rotated_rect(cx: float, cy: float, half_len: float, half_thick: float, deg: float) -> list:
    """Corners of a rectangle centred on (cx, cy) rotated by ``deg``."""
    a = math.radians(deg)
    ca, sa = math.cos(a), math.sin(a)
    pts = [(-half_len, -half_thick), (half_len, -half_thick), (half_len, half_thick), (-half_len, half_thick)]
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def _draw_symbol(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, color: RGB) -> None:
    """Draw an inner symbol of radius ``r``; shapes are chunky so they survive a 20 px downscale."""
    if name == "bar":
        draw.rectangle([cx - 0.9 * r, cy - 0.3 * r, cx + 0.9 * r, cy + 0.3 * r], fill=color)
    elif name == "cross":
        draw.rectangle([cx - 0.9 * r, cy - 0.26 * r, cx + 0.9 * r, cy + 0.26 * r], fill=color)
        draw.rectangle([cx - 0.26 * r, cy - 0.9 * r, cx + 0.26 * r, cy + 0.9 * r], fill=color)
    elif name == "saltire":
        draw.polygon(_rotated_rect(cx, cy, 0.95 * r, 0.24 * r, 45.0), fill=color)
        draw.polygon(_rotated_rect(cx, cy, 0.95 * r, 0.24 * r, -45.0), fill=color)
    elif name == "dot":
        draw.ellipse([cx - 0.6 * r, cy - 0.6 * r, cx + 0.6 * r, cy + 0.6 * r], fill=color)
    elif name == "ring":
        width = max(1, round(0.32 * r))
        draw.ellipse([cx - 0.9 * r, cy - 0.9 * r, cx + 0.9 * r, cy + 0.9 * r], outline=color, width=width)
    elif name == "arrow":
        draw.polygon([(cx, cy - r), (cx - 0.8 * r, cy - 0.05 * r), (cx + 0.8 * r, cy - 0.05 * r)], fill=color)
        draw.rectangle([cx - 0.27 * r, cy - 0.2 * r, cx + 0.27 * r, cy + 0.95 * r], fill=color)
    elif name == "pause":
        draw.rectangle([cx - 0.75 * r, cy - 0.78 * r, cx - 0.2 * r, cy + 0.78 * r], fill=color)
        draw.rectangle([cx + 0.2 * r, cy - 0.78 * r, cx + 0.75 * r, cy + 0.78 * r], fill=color)
    else:  # pragma: no cover - guarded by _SYMBOLS
        raise ValueError(f"unknown symbol {name!r}")


def _draw_sign(shape: str, scheme: tuple[RGB, RGB, RGB], symbol: str, size: int) -> Image.Image:
    border, fill, sym_color = scheme
    ss = size * _SUPERSAMPLE
    n, rot = _SHAPES[shape]
    verts, centre, inradius = _fit_polygon(n, rot, ss, margin=_SUPERSAMPLE)
    # Border width is a fixed fraction of the canvas so thin triangles keep a visible rim.
    border_w = 0.085 * ss
    inner = centre + (verts - centre) * (1.0 - border_w / inradius)
    inner_r = inradius - border_w

    # Paint RGB everywhere in the border colour so anti-aliased edge pixels never bleed black.
    rgb = Image.new("RGB", (ss, ss), border)
    alpha = Image.new("L", (ss, ss), 0)
    ImageDraw.Draw(alpha).polygon(_as_points(verts), fill=255)
    draw = ImageDraw.Draw(rgb)
    draw.polygon(_as_points(inner), fill=fill)
    # Triangles have a small incircle but roomy corners, so their symbol may use more of it.
    sym_r = (0.8 if n == 3 else 0.74) * inner_r
    _draw_symbol(draw, symbol, float(centre[0]), float(centre[1]), sym_r, sym_color)
    rgb.putalpha(alpha)
    return rgb.resize((size, size), Image.Resampling.BOX)


def make_foregrounds(num_classes: int, rng: np.random.Generator, size: int = 64) -> list[Image.Image]:
    """One distinct RGBA sign design per class (``size`` x ``size``, transparent outside the sign).

    Designs come from a shuffled deterministic enumeration of shape x colour scheme x symbol, so
    no two classes are identical; up to 56 classes any two differ in at least two attributes.
    """
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    shape_names = list(_SHAPES)
    return [
        _draw_sign(shape_names[a], _SCHEMES[b], _SYMBOLS[c], size)
        for a, b, c in _class_attributes(num_classes, rng)
    ]


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached pixel-centre coordinate grids (read-only) for an h x w image."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (all in [0, 1]) to an RGB float32 triple in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


def _muted(
    rng: np.random.Generator,
    hue: tuple[float, float] = (0.0, 1.0),
    sat: tuple[float, float] = (0.05, 0.45),
    val: tuple[float, float] = (0.25, 0.8),
) -> np.ndarray:
    """Random low-saturation colour so the saturated sign stays the salient object."""
    return _hsv(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val))


def _sky_ground(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Sky gradient over a ground gradient split by a soft, slightly tilted horizon."""
    yy, xx = _grid(size, size)
    sky_hue = (0.52, 0.68) if rng.random() < 0.65 else (0.0, 1.0)
    sky_top = _muted(rng, sky_hue, val=(0.45, 0.85))
    sky_low = np.clip(sky_top * rng.uniform(1.0, 1.3) + 0.05, 0.0, 1.0)
    ground_hi = _muted(rng, (0.06, 0.4), val=(0.3, 0.7))
    ground_lo = ground_hi * rng.uniform(0.55, 0.95)
    h0 = rng.uniform(0.25, 0.7) * size
    tilt = rng.uniform(-0.2, 0.2)
    horizon = h0 + tilt * (xx - size / 2.0)
    t_sky = np.clip(yy / np.maximum(horizon, 1.0), 0.0, 1.0)[..., None]
    t_gnd = np.clip((yy - horizon) / np.maximum(size - horizon, 1.0), 0.0, 1.0)[..., None]
    sky = sky_top + (sky_low - sky_top) * t_sky
    ground = ground_hi + (ground_lo - ground_hi) * t_gnd
    w = (1.0 / (1.0 + np.exp(-(yy - horizon) / 0.6)))[..., None]
    return sky * (1.0 - w) + ground * w, horizon, h0


def _bg_horizon(size: int, rng: np.random.Generator) -> np.ndarray:
    return _sky_ground(size, rng)[0]


def _bg_road(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sky/ground scene with a perspective road and a dashed centre line."""
    img, _, h0 = _sky_ground(size, rng)
    yy, xx = _grid(size, size)
    t = np.clip((yy - h0) / max(size - h0, 1.0), 0.0, None)  # 0 at horizon, 1 at bottom edge
    vx = rng.uniform(0.3, 0.7) * size
    bx = rng.uniform(0.2, 0.8) * size
    half = rng.uniform(0.3, 0.65) * size
    centre = vx + (bx - vx) * t
    road = (np.abs(xx - centre) < half * t) & (yy > h0)
    grey = _muted(rng, sat=(0.0, 0.08), val=(0.25, 0.55))
    img = np.where(road[..., None], grey, img)
    dash_period = rng.uniform(0.12, 0.3) * size
    dashes = (
        road
        & (np.abs(xx - centre) < 0.03 * size * t + 0.35)
        & (((yy - h0) % dash_period) < 0.5 * dash_period)
    )
    line = np.clip(grey + rng.uniform(0.2, 0.35), 0.0, 1.0)
    return np.where(dashes[..., None], line, img)


def _bg_stripes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Soft parallel bands at a random angle (facades, fences, fields, road markings)."""
    yy, xx = _grid(size, size)
    a, b = _muted(rng), _muted(rng)
    theta = rng.uniform(0.0, np.pi)
    period = rng.uniform(0.12, 0.5) * size
    coord = xx * math.cos(theta) + yy * math.sin(theta)
    wave = np.sin(2.0 * np.pi * coord / period + rng.uniform(0.0, 2.0 * np.pi))
    w = np.clip((wave - rng.uniform(-0.5, 0.5)) * 2.5 + 0.5, 0.0, 1.0)[..., None]
    return a * (1.0 - w) + b * w


def _add_blobs(img: np.ndarray, rng: np.random.Generator, count: int, strength: tuple[float, float]) -> None:
    """Blend soft Gaussian blobs of muted colour into ``img`` in place."""
    size = img.shape[0]
    yy, xx = _grid(size, size)
    for _ in range(count):
        cy, cx = rng.uniform(-0.1, 1.1, size=2) * size
        sigma = rng.uniform(0.08, 0.35) * size
        w = rng.uniform(*strength) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma * sigma))
        img += (_muted(rng) - img) * w[..., None]


def _bg_blobs(size: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((size, size, 3), dtype=np.float32)
    img[...] = _muted(rng)
    _add_blobs(img, rng, int(rng.integers(3, 8)), (0.5, 1.0))
    return img


_BACKGROUND_KINDS: tuple[Callable[[int, np.random.Generator], np.ndarray], ...] = (
    _bg_horizon,
    _bg_road,
    _bg_stripes,
    _bg_blobs,
)


def _upsample(small: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsample of a 2-D float array via Pillow's float mode."""
    return np.asarray(
        Image.fromarray(small.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    )


def make_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random muted procedural scene as uint8 ``size`` x ``size`` x 3 RGB."""
    kind = _BACKGROUND_KINDS[int(rng.integers(len(_BACKGROUND_KINDS)))]
    img = np.array(kind(size, rng), dtype=np.float32)  # own writable copy
    if rng.random() < 0.35:
        # Occasional soft clutter on top of the structured scenes.
        _add_blobs(img, rng, int(rng.integers(1, 4)), (0.2, 0.6))
    # Low-frequency luminance texture plus fine grain, both small so the scene stays calm.
    coarse = rng.normal(0.0, 0.035, size=(max(2, size // 6), max(2, size // 6)))
    img += _upsample(coarse, size)[..., None]
    img += rng.normal(0.0, 0.012, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Polygon triggers
# --------------------------------------------------------------------------------------------


def make_polygon_trigger(
    side_count: int, color: tuple[int, int, int], rng: np.random.Generator, size: int = 32
) -> Image.Image:
    """RGBA random convex-ish ``side_count``-gon filled with ``color``, transparent elsewhere."""
    if not 3 <= side_count <= 12:
        raise ValueError(f"side_count must be in [3, 12], got {side_count}")
    step = 2.0 * np.pi / side_count
    # Small angular jitter plus 0.7-1.0 radius jitter gives each trigger its own silhouette.
    ang = rng.uniform(0.0, 2.0 * np.pi) + step * np.arange(side_count)
    ang = ang + rng.uniform(-0.2, 0.2, size=side_count) * step
    rad = rng.uniform(0.7, 1.0, size=side_count)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    # Fill the canvas with the polygon's bounding box so size_fraction means visible size.
    ss = size * _SUPERSAMPLE
    margin = 0.5 * _SUPERSAMPLE
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pts = (pts - (lo + hi) / 2.0) * ((ss - 2.0 * margin) / float((hi - lo).max())) + ss / 2.0
    alpha = Image.new("L", (ss, ss), 0)
    ImageDraw.Draw(alpha).polygon(_as_points(pts), fill=255)
    img = Image.new("RGB", (ss, ss), tuple(int(c) for c in color))
    img.putalpha(alpha)
    return img.resize((size, size), Image.Resampling.BOX)


def paste_polygon_trigger(
    foreground: Image.Image, trigger: Image.Image, size_fraction: float, rng: np.random.Generator
) -> Image.Image:
    """Copy of ``foreground`` with ``trigger`` (side = size_fraction x width) pasted inside the sign.

    The trigger's bounding box is placed uniformly among positions fully inside the sign's opaque
    area (falls back to the centre if none fit). Only RGB under opaque trigger pixels changes; the
    foreground's alpha is kept.
    """
    fg = np.array(foreground.convert("RGBA"), dtype=np.float32)
    fh, fw = fg.shape[:2]
    tw = max(1, min(fw, round(size_fraction * fw)))
    th = max(1, min(fh, round(tw * trigger.height / trigger.width)))
    trig = np.asarray(trigger.convert("RGBA").resize((tw, th), Image.Resampling.LANCZOS), dtype=np.float32)

    # Summed-area table of the opaque mask lets every candidate window be tested at once.
    opaque = (fg[..., 3] >= 250).astype(np.int32)
    sat = np.zeros((fh + 1, fw + 1), dtype=np.int32)
    sat[1:, 1:] = opaque.cumsum(0).cumsum(1)
    window = sat[th:, tw:] - sat[:-th, tw:] - sat[th:, :-tw] + sat[:-th, :-tw]
    ys, xs = np.nonzero(window == th * tw)
    if len(ys):
        k = int(rng.integers(len(ys)))
        y, x = int(ys[k]), int(xs[k])
    else:
        y, x = (fh - th) // 2, (fw - tw) // 2

    a = trig[..., 3:4] / 255.0
    region = fg[y : y + th, x : x + tw, :3]
    fg[y : y + th, x : x + tw, :3] = region + (trig[..., :3] - region) * a
    return Image.fromarray(np.clip(fg + 0.5, 0, 255).astype(np.uint8), "RGBA")


# --------------------------------------------------------------------------------------------
# Instagram-style filter triggers
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _radius(h: int, w: int) -> np.ndarray:
    """Normalised distance from the image centre (0 at centre, 1 at the corners), H x W x 1."""
    yy, xx = _grid(h, w)
    dy = (yy - (h - 1) / 2.0) / max((h - 1) / 2.0, 1.0)
    dx = (xx - (w - 1) / 2.0) / max((w - 1) / 2.0, 1.0)
    r = (np.sqrt(dx * dx + dy * dy) / math.sqrt(2.0))[..., None].astype(np.float32)
    r.setflags(write=False)
    return r


def _to_float(img: np.ndarray) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _luma(x: np.ndarray) -> np.ndarray:
    return (x[..., 0:1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114).astype(np.float32)


def _gotham(img: np.ndarray) -> np.ndarray:
    """Mostly desaturated, cold blue cast, hard contrast."""
    x = _to_float(img)
    y = _luma(x)
    x = y + 0.3 * (x - y)
    x = 0.5 + 1.5 * (x - 0.5)
    x = x * np.array([0.78, 0.92, 1.1], np.float32) + np.array([0.0, 0.03, 0.12], np.float32)
    return _to_uint8(x)


def _nashville(img: np.ndarray) -> np.ndarray:
    """Warm pink/peach wash with lifted shadows and softened contrast."""
    x = _to_float(img)
    x = 0.25 + 0.72 * x
    x = x * np.array([1.0, 0.86, 0.82], np.float32) + np.array([0.1, 0.04, 0.08], np.float32)
    return _to_uint8(x)


def _kelvin(img: np.ndarray) -> np.ndarray:
    """Strong orange/amber cast across all tones."""
    x = _to_float(img)
    x = x * np.array([0.9, 0.72, 0.38], np.float32) + np.array([0.25, 0.12, 0.0], np.float32)
    return _to_uint8(x)


def _lomo(img: np.ndarray) -> np.ndarray:
    """Boosted saturation and contrast with a heavy dark vignette."""
    x = _to_float(img)
    y = _luma(x)
    x = y + 1.8 * (x - y)
    x = 0.5 + 1.45 * (x - 0.5)
    r = _radius(*x.shape[:2])
    return _to_uint8(x * (1.0 - 0.85 * r * r))


def _toaster(img: np.ndarray) -> np.ndarray:
    """Faded warm tones, bright glowing centre and darkened edges."""
    x = _to_float(img)
    x = 0.2 + 0.6 * x
    x = x * np.array([1.12, 0.92, 0.7], np.float32) + np.array([0.06, 0.02, 0.0], np.float32)
    r = _radius(*x.shape[:2])
    return _to_uint8(x * (1.3 - 0.8 * r))


INSTAGRAM_FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "GothamFilterXForm": _gotham,
    "NashvilleFilterXForm": _nashville,
    "KelvinFilterXForm": _kelvin,
    "LomoFilterXForm": _lomo,
    "ToasterXForm": _toaster,
}


# --------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------


def compose(
    foreground: Image.Image,
    background: np.ndarray,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.45, 0.75),
    max_rotation: float = 15.0,
    blur_max: float = 0.8,
    noise_std: float = 4.0,
) -> np.ndarray:
    """Composite the RGBA sign onto ``background`` with random scale/position/rotation/brightness,
    then blur the whole image and add Gaussian pixel noise. Returns uint8 H x W x 3 RGB."""
    bg = np.asarray(background)
    h, w = bg.shape[:2]
    # Draw every random number up front in a fixed order so streams stay aligned across calls.
    scale = rng.uniform(*scale_range)
    angle = rng.uniform(-max_rotation, max_rotation)
    brightness = rng.uniform(0.8, 1.2)
    pos_u = rng.random(2)
    blur = rng.uniform(0.0, blur_max) if blur_max > 0 else 0.0

    fg = foreground if foreground.mode == "RGBA" else foreground.convert("RGBA")
    target = max(2, round(scale * min(h, w)))
    k = target / max(fg.size)
    # Pillow resizes/rotates RGBA in premultiplied space, so transparent fringes stay clean.
    fg = fg.resize((max(1, round(fg.width * k)), max(1, round(fg.height * k))), Image.Resampling.BICUBIC)
    if abs(angle) > 1e-3:
        fg = fg.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    bbox = fg.getchannel("A").getbbox()
    if bbox is not None:
        fg = fg.crop(bbox)
    if fg.width > w or fg.height > h:
        # Rotation can push a large sign past the frame; shrink so it still fits fully inside.
        k = min(w / fg.width, h / fg.height)
        fg = fg.resize((max(1, int(fg.width * k)), max(1, int(fg.height * k))), Image.Resampling.BICUBIC)

    x = int(pos_u[0] * (w - fg.width + 1))
    y = int(pos_u[1] * (h - fg.height + 1))
    sign = np.asarray(fg, dtype=np.float32)
    a = sign[..., 3:4] / 255.0
    out = bg.astype(np.float32)  # copy; caller's background is never modified
    region = out[y : y + fg.height, x : x + fg.width]
    region += (np.minimum(sign[..., :3] * brightness, 255.0) - region) * a

    img = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if blur > 0.05:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(blur)))
    if noise_std > 0:
        noisy = img.astype(np.float32) + rng.normal(0.0, noise_std, size=img.shape).astype(np.float32)
        img = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return img


def render_example(
    foreground: Image.Image,
    background_size: int,
    rng: np.random.Generator,
    trigger: Image.Image | None = None,
    trigger_fraction: float = 0.25,
    instagram_filter: str | None = None,
) -> np.ndarray:
    """Render one uint8 H x W x 3 example: optional polygon trigger on the sign, a fresh background,
    composition, then an optional whole-image instagram filter (key of ``INSTAGRAM_FILTERS``)."""
    if trigger is not None:
        foreground = paste_polygon_trigger(foreground, trigger, trigger_fraction, rng)
    background = make_background(background_size, rng)
    img = compose(foreground, background, rng)
    if instagram_filter is not None:
        img = INSTAGRAM_FILTERS[instagram_filter](img)
    return img
