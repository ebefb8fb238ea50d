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

from collections.abc import Callable
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


# -- Difficulty tiers (issue 19) ---------------------------------------------
#
# The classic impression above is what the project's figures were first
# measured on. The tiers below share its masters and sensor geometry but
# draw each impression from a parameterised model, so a figure can be
# reported per tier and a matcher judged on data it was not tuned on.
#
# Plastic distortion in the form of Cappelli, Maio and Maltoni (2001),
# "Modelling plastic distortion in fingerprint images": a close-contact
# region (an ellipse about the contact centre) does not move; outside it the
# skin follows a rigid motion tau (a rotation about the centre and a
# translation), blended in by the brake function
# brake(d) = 1 - exp(-d^2 / (2 k^2)) of the distance d past the ellipse:
#     v' = v + (tau(v) - v) * brake(d(v)).
# A low-frequency random field (two broad Gaussian bumps, a third of the
# magnitude) adds the irregularity of real skin. The field, less its mean
# (a translation any alignment removes), is scaled to a drawn RMS per axis
# over the finger's minutiae: that number is the tier's distortion figure.
# Two impressions of one finger then differ by about sqrt(2) times it.
#
# Why these values (FVC2000-2006 descriptions: Maio et al., "FVC2002:
# Second Fingerprint Verification Competition", ICPR 2002; Cappelli et al.,
# "Performance evaluation of fingerprint verification systems", TPAMI 2006):
# - easy: a cooperative user on a good optical sensor, as FVC2002 DB1/DB2
#   plain impressions: little rotation and distortion, few missing minutiae.
# - fvc: the FVC2002 acquisition protocol (rotations up to about 25 degrees,
#   shifts to the sensor's edge, some dry and wet fingers): distortion 3-5 px.
# - hard: FVC2004 DB1/DB2, where volunteers were asked to exaggerate skin
#   distortion and rotation, and plain impressions are often partial: 4-8 px
#   RMS per axis (about 6 on average, 8-9 px between two impressions),
#   +/-25 degrees, +/-40 px, a cropped window, more minutiae lost and added,
#   and endings read as bifurcations (and back) at one in five.


@dataclass(frozen=True)
class Tier:
    name: str
    distortion_px: tuple[float, float]  # RMS per axis of the elastic field, drawn per impression
    contact_px: tuple[float, float]  # semi-axes of the close-contact ellipse
    brake_px: float  # k of the brake function
    rotation_deg: float  # rigid rotation, uniform in +/- this
    translation_px: float  # rigid shift, uniform in +/- this per axis
    position_noise_px: float
    angle_noise_deg: float
    missing: tuple[float, float]  # share of the visible minutiae lost, drawn per impression
    spurious: tuple[float, float]  # share added, drawn per impression
    type_swap: float  # chance an ending reads as a bifurcation or back
    crop: tuple[float, float]  # share of the window's width and height kept, drawn per impression


TIERS = {
    "easy": Tier(
        "easy", (1.0, 3.0), (90, 110), 40, 15, 20, 1.5, 5, (0.05, 0.15), (0.0, 0.08), 0.05, (1.0, 1.0)
    ),
    "fvc": Tier(
        "fvc", (3.0, 5.0), (70, 90), 45, 25, 40, 2.0, 7, (0.10, 0.25), (0.05, 0.12), 0.10, (0.85, 1.0)
    ),
    "hard": Tier(
        "hard", (4.0, 8.0), (55, 75), 50, 25, 40, 2.5, 8, (0.10, 0.30), (0.05, 0.15), 0.20, (0.7, 1.0)
    ),
}


def _plastic(rng: np.random.Generator, t: Tier, x: np.ndarray, y: np.ndarray, ccx: float, ccy: float
             ) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """One impression's elastic field: a function from master points to
    their displacement (dx, dy), scaled so that over the master's minutiae
    (x, y) its RMS per axis, less its mean, is the tier's drawn figure."""
    a, b = t.contact_px
    th = rng.normal(0, np.radians(4))
    tx, ty = rng.normal(0, 6, 2)
    c, s = np.cos(th), np.sin(th)
    bumps = [(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(0, 2 * np.pi)) for _ in range(2)]

    def parts(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, ...]:
        rho = np.hypot((px - ccx) / a, (py - ccy) / b)
        # Distance past the ellipse along the ray from the centre, in pixels.
        d = np.maximum(rho - 1.0, 0.0) * np.hypot(px - ccx, py - ccy) / np.maximum(rho, 1e-9)
        brake = 1.0 - np.exp(-(d**2) / (2 * t.brake_px**2))
        ux = (ccx + c * (px - ccx) - s * (py - ccy) + tx - px) * brake
        uy = (ccy + s * (px - ccx) + c * (py - ccy) + ty - py) * brake
        rx, ry = np.zeros_like(px), np.zeros_like(py)
        for bx, by, phi in bumps:
            g = np.exp(-((px - bx) ** 2 + (py - by) ** 2) / (2 * 80.0**2))
            rx, ry = rx + np.cos(phi) * g, ry + np.sin(phi) * g
        return ux, uy, rx, ry

    def rms(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.sqrt(((u - u.mean()) ** 2 + (v - v.mean()) ** 2).mean() / 2)) if len(u) else 1.0

    ux, uy, rx, ry = parts(x, y)
    w1, w2 = 1 / max(rms(ux, uy), 1e-9), 1 / max(rms(rx, ry), 1e-9) / 3
    k = rng.uniform(*t.distortion_px) / max(rms(ux * w1 + rx * w2, uy * w1 + ry * w2), 1e-9)

    def field(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ux, uy, rx, ry = parts(px, py)
        return k * (ux * w1 + rx * w2), k * (uy * w1 + ry * w2)

    return field


def tier_impression(m: Master, index: int, seed: int, tier: Tier) -> Impression:
    """One capture of a master under a difficulty tier (see TIERS)."""
    t = tier
    rng = np.random.default_rng([seed, m.finger, index, 0x5449, sum(map(ord, t.name))])
    x, y, a, typ = m.minutiae.T
    ccx, ccy = WIDTH / 2 + rng.normal(0, 25), HEIGHT / 2 + rng.normal(0, 30)
    field = _plastic(rng, t, x, y, ccx, ccy)
    dx, dy = field(x, y)
    xd, yd = x + dx, y + dy
    # A direction turns with the skin under it: follow a point 4 px ahead
    # along it (ISO angles: counter-clockwise as seen, y down).
    ax, ay = x + 4 * np.cos(a), y - 4 * np.sin(a)
    ex, ey = field(ax, ay)
    a = np.arctan2(-(ay + ey - yd), ax + ex - xd)
    rot = np.radians(rng.uniform(-t.rotation_deg, t.rotation_deg))
    tx, ty = rng.uniform(-t.translation_px, t.translation_px, 2)
    c, s = np.cos(rot), np.sin(rot)
    # Counter-clockwise as seen on the image (y down): see impression().
    ox = ccx + c * (xd - ccx) + s * (yd - ccy) + tx - (WIDTH - SENSOR_W) / 2
    oy = ccy - s * (xd - ccx) + c * (yd - ccy) + ty - (HEIGHT - SENSOR_H) / 2
    oa = (a + rot) % (2 * np.pi)
    ox = ox + rng.normal(0, t.position_noise_px, len(ox))
    oy = oy + rng.normal(0, t.position_noise_px, len(oy))
    oa = (oa + rng.normal(0, np.radians(t.angle_noise_deg), len(oa))) % (2 * np.pi)
    # The window: the sensor, cropped to a drawn share of each side.
    kw, kh = rng.uniform(*t.crop, 2)
    w0 = rng.uniform(0, (1 - kw) * SENSOR_W)
    h0 = rng.uniform(0, (1 - kh) * SENSOR_H)
    x_lo, x_hi = max(8.0, w0), min(SENSOR_W - 8.0, w0 + kw * SENSOR_W)
    y_lo, y_hi = max(8.0, h0), min(SENSOR_H - 8.0, h0 + kh * SENSOR_H)
    keep = (ox >= x_lo) & (ox < x_hi) & (oy >= y_lo) & (oy < y_hi)
    keep &= rng.random(len(ox)) >= rng.uniform(*t.missing)
    ox, oy, oa, ot = ox[keep], oy[keep], oa[keep], typ[keep]
    swap = rng.random(len(ot)) < t.type_swap
    ot = np.where(swap, 3 - ot, ot)
    n_sp = round(len(ox) * rng.uniform(*t.spurious))
    sx = rng.uniform(x_lo, x_hi, n_sp)
    sy = rng.uniform(y_lo, y_hi, n_sp)
    mx = ccx + c * (sx + (WIDTH - SENSOR_W) / 2 - tx - ccx) - s * (sy + (HEIGHT - SENSOR_H) / 2 - ty - ccy)
    my = ccy + s * (sx + (WIDTH - SENSOR_W) / 2 - tx - ccx) + c * (sy + (HEIGHT - SENSOR_H) / 2 - ty - ccy)
    sa = _orientation(m.cores, m.deltas, m.base, m.arch, mx, my) + rot
    sa = (sa + np.pi * rng.integers(0, 2, n_sp) + rng.normal(0, np.radians(15), n_sp)) % (2 * np.pi)
    st = rng.integers(1, 3, n_sp).astype(float)
    xs, ys = np.concatenate([ox, sx]), np.concatenate([oy, sy])
    angs, types = np.concatenate([oa, sa]), np.concatenate([ot, st])
    q = rng.uniform(40, 100, len(xs)).round()
    order = rng.permutation(len(xs))
    return Impression(m.finger, index, np.column_stack([xs, ys, angs, types, q])[order])


def dataset(fingers: int, impressions: int, seed: int = 0, tier: str | None = None) -> list[list[Impression]]:
    """fingers x impressions, deterministic by seed; `tier` None is the
    classic impression, else a name in TIERS."""
    out = []
    for f in range(fingers):
        m = master(f, seed)
        if tier is None:
            out.append([impression(m, i, seed) for i in range(impressions)])
        else:
            out.append([tier_impression(m, i, seed, TIERS[tier]) for i in range(impressions)])
    return out
