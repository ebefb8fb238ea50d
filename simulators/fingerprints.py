"""Synthetic fingerprint minutiae for tests and benchmarks.

No images: the model works on minutiae directly, which is what the matcher
and the ISO/IEC 19794-2 records carry. Deterministic by seed.

Master finger (one per finger id):
- A 500 ppi finger area of about 16 x 20 mm (320 x 400 px), elliptical.
- Ridge flow from the zero-pole model (Sherlock and Monro 1993): the
  orientation at z is half the sum of arg(z - core) minus arg(z - delta),
  plus a base angle. Classes drawn like real populations: loops 65 %
  (one core, one delta), whorls 30 % (two of each), arches 5 % (a gentle
  sinusoidal flow, no singularity).
- Minutiae by Poisson-disk sampling (no two closer than 12 px, about one
  ridge and a half at 500 ppi) at 0.23 to 0.33 per mm^2, which gives 45-80
  in the finger area and 25-55 in a plain impression, as in FVC-style data.
- Direction: the local ridge orientation (mod pi) with one of its two
  senses at random, plus 6 degrees of noise; type ending or bifurcation
  (ISO codes 1, 2) at equal odds.

Impression of a master (one per capture):
- Elastic distortion: a smooth displacement that grows away from the
  contact centre (in the spirit of Cappelli, Maio and Maltoni 2001): a sum
  of three Gaussian bumps of random direction with amplitude up to 7 px
  plus a mild shear that reaches 4 % at the edges.
- Rotation uniform in +/-30 degrees about the contact centre and a
  translation up to 40 px in each axis.
- The sensor window (280 x 360 px) sees only part of the finger: with the
  translation, overlap between two impressions varies from full to about
  half.
- Position noise sigma 2 px, angle noise sigma 7 degrees.
- 10-30 % of the visible minutiae missing, 5-15 % spurious ones added
  (random positions in the window, angles from the local flow with more
  noise, as spurious minutiae from scars and creases follow the ridges).
- Quality 40-100 per minutia.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTH = 320  # finger area, px at 500 ppi
HEIGHT = 400
SENSOR_W = 280  # impression image size
SENSOR_H = 360
MIN_DIST = 12.0


@dataclass(frozen=True)
class Impression:
    """Minutiae in ISO conventions: x right, y down (pixels), angle in
    radians counter-clockwise from the x axis as seen on the image."""

    finger: int
    index: int
    minutiae: np.ndarray  # (n, 5): x, y, angle, type (1 ending, 2 bifurcation), quality 0-100
    width: int = SENSOR_W
    height: int = SENSOR_H


@dataclass(frozen=True)
class Master:
    finger: int
    cores: np.ndarray  # (k, 2)
    deltas: np.ndarray
    base: float
    arch: bool
    minutiae: np.ndarray  # (n, 4): x, y, angle, type


def _orientation(m_cores: np.ndarray, m_deltas: np.ndarray, base: float, arch: bool,
                 x: np.ndarray, y: np.ndarray) -> np.ndarray:  # fmt: skip
    """Ridge orientation (mod pi) at image points, y down."""
    if arch:
        return (
            base + 0.6 * np.sin((x - WIDTH / 2) / 90.0) * np.exp(-(((y - HEIGHT * 0.45) / 160.0) ** 2))
        ) % np.pi
    z = x + 1j * (HEIGHT - y)  # y up for the complex-plane model
    th = np.full(np.shape(x), base, dtype=float)
    for c in m_cores:
        th += 0.5 * np.angle(z - (c[0] + 1j * (HEIGHT - c[1])))
    for d in m_deltas:
        th -= 0.5 * np.angle(z - (d[0] + 1j * (HEIGHT - d[1])))
    return th % np.pi


def _inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((x - WIDTH / 2) / (WIDTH / 2)) ** 2 + ((y - HEIGHT / 2) / (HEIGHT / 2)) ** 2 <= 1.0


def _poisson(rng: np.random.Generator, n_target: int) -> np.ndarray:
    """Dart throwing with a minimum distance, inside the finger ellipse."""
    pts: list[tuple[float, float]] = []
    tries = 0
    while len(pts) < n_target and tries < n_target * 60:
        tries += 1
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        if not _inside(np.array(x), np.array(y)):
            continue
        if pts:
            a = np.asarray(pts)
            if np.min((a[:, 0] - x) ** 2 + (a[:, 1] - y) ** 2) < MIN_DIST**2:
                continue
        pts.append((x, y))
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def master(finger: int, seed: int = 0) -> Master:
    rng = np.random.default_rng([seed, finger, 0x4D41])
    u = rng.random()
    cx, cy = WIDTH / 2 + rng.normal(0, 20), HEIGHT * 0.42 + rng.normal(0, 25)
    arch = u < 0.05
    if arch:
        cores = np.zeros((0, 2))
        deltas = np.zeros((0, 2))
    elif u < 0.70:  # loop: delta below and to one side of the core
        side = rng.choice([-1.0, 1.0])
        cores = np.array([[cx, cy]])
        deltas = np.array([[cx + side * rng.uniform(60, 120), cy + rng.uniform(90, 150)]])
    else:  # whorl
        cores = np.array(
            [[cx - rng.uniform(5, 25), cy], [cx + rng.uniform(5, 25), cy + rng.uniform(-10, 10)]]
        )
        deltas = np.array(
            [
                [cx - rng.uniform(80, 130), cy + rng.uniform(90, 150)],
                [cx + rng.uniform(80, 130), cy + rng.uniform(90, 150)],
            ]
        )
    base = rng.uniform(-0.25, 0.25)
    area_mm2 = np.pi * (WIDTH / 2) * (HEIGHT / 2) / (500 / 25.4) ** 2
    n = int(area_mm2 * rng.uniform(0.23, 0.33))
    pts = _poisson(rng, n)
    ori = _orientation(cores, deltas, base, arch, pts[:, 0], pts[:, 1])
    ang = (ori + np.pi * rng.integers(0, 2, len(pts)) + rng.normal(0, np.radians(6), len(pts))) % (2 * np.pi)
    typ = rng.integers(1, 3, len(pts)).astype(float)
    return Master(finger, cores, deltas, base, arch, np.column_stack([pts, ang, typ]))


def impression(m: Master, index: int, seed: int = 0) -> Impression:
    rng = np.random.default_rng([seed, m.finger, index, 0x494D])
    x, y, a, t = m.minutiae.T
    # Elastic distortion around the contact centre.
    ccx, ccy = WIDTH / 2 + rng.normal(0, 25), HEIGHT / 2 + rng.normal(0, 30)
    dx = np.zeros_like(x)
    dy = np.zeros_like(y)
    for _ in range(3):
        bx, by = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        amp, phi = rng.uniform(0, 7), rng.uniform(0, 2 * np.pi)
        g = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * 70.0**2))
        dx += amp * np.cos(phi) * g
        dy += amp * np.sin(phi) * g
    shear = rng.uniform(-0.04, 0.04, 2)
    r = np.hypot(x - ccx, y - ccy) / 200.0
    dx += shear[0] * (y - ccy) * r
    dy += shear[1] * (x - ccx) * r
    # A small angular change follows the local rotation of the displacement.
    xd, yd = x + dx, y + dy
    # Rigid motion: rotation about the contact centre, then translation.
    rot = rng.uniform(-np.pi / 6, np.pi / 6)
    tx, ty = rng.uniform(-40, 40, 2)
    c, s = np.cos(rot), np.sin(rot)
    # Image y is down, so a counter-clockwise turn as seen on the image is
    # (x, y) -> (c x + s y, -s x + c y) about the centre.
    ox = ccx + c * (xd - ccx) + s * (yd - ccy) + tx - (WIDTH - SENSOR_W) / 2
    oy = ccy - s * (xd - ccx) + c * (yd - ccy) + ty - (HEIGHT - SENSOR_H) / 2
    oa = (a + rot) % (2 * np.pi)
    ox += rng.normal(0, 2.0, len(ox))
    oy += rng.normal(0, 2.0, len(oy))
    oa = (oa + rng.normal(0, np.radians(7), len(oa))) % (2 * np.pi)
    keep = (ox >= 8) & (ox < SENSOR_W - 8) & (oy >= 8) & (oy < SENSOR_H - 8)
    # Missing minutiae: 10-30 % of what the window shows.
    keep &= rng.random(len(ox)) >= rng.uniform(0.10, 0.30)
    ox, oy, oa, ot = ox[keep], oy[keep], oa[keep], t[keep]
    # Spurious minutiae: 5-15 %, angles from the local flow, noisier.
    n_sp = round(len(ox) * rng.uniform(0.05, 0.15))
    sx = rng.uniform(8, SENSOR_W - 8, n_sp)
    sy = rng.uniform(8, SENSOR_H - 8, n_sp)
    # Back to master coordinates to read the flow there.
    mx = ccx + c * (sx + (WIDTH - SENSOR_W) / 2 - tx - ccx) - s * (sy + (HEIGHT - SENSOR_H) / 2 - ty - ccy)
    my = ccy + s * (sx + (WIDTH - SENSOR_W) / 2 - tx - ccx) + c * (sy + (HEIGHT - SENSOR_H) / 2 - ty - ccy)
    sa = _orientation(m.cores, m.deltas, m.base, m.arch, mx, my) + rot
    sa = (sa + np.pi * rng.integers(0, 2, n_sp) + rng.normal(0, np.radians(15), n_sp)) % (2 * np.pi)
    st = rng.integers(1, 3, n_sp).astype(float)
    xs = np.concatenate([ox, sx])
    ys = np.concatenate([oy, sy])
    angs = np.concatenate([oa, sa])
    types = np.concatenate([ot, st])
    q = rng.uniform(40, 100, len(xs)).round()
    order = rng.permutation(len(xs))  # extraction order carries no identity
    mins = np.column_stack([xs, ys, angs, types, q])[order]
    return Impression(m.finger, index, mins)


def dataset(fingers: int, impressions: int, seed: int = 0) -> list[list[Impression]]:
    """fingers x impressions, deterministic by seed."""
    out = []
    for f in range(fingers):
        m = master(f, seed)
        out.append([impression(m, i, seed) for i in range(impressions)])
    return out
