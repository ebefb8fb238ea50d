"""Fingerprint matcher benchmark (issues 7, 19): accuracy per difficulty
tier, 1:1 speed, the impostor tail the gate's threshold rests on, 1:N
identification with never-enrolled strangers, gallery start, memory,
beside the `afis` package's MCC and Bozorth3 on the same synthetic
templates (simulators/fingerprints.py: the classic impression and the
tiers easy, fvc, hard).

    .venv/bin/python bench/matcher_bench.py          # full (hours on one core)
    .venv/bin/python bench/matcher_bench.py --quick  # smoke: small sizes
    .venv/bin/python bench/matcher_bench.py --tiers hard --sizes 10000 --strangers 10000

Protocol (FVC): genuine = every pair of impressions of a finger;
impostor = first impression against first impression of every other
finger. The peers are slow in Python (Bozorth3 tens of ms a comparison),
so they run on the first PEER_FINGERS fingers; ours is reported on that
same subset too, and on the whole set. The matcher's settings were chosen
on seed 1 of the hard tier (bench/README.md); this bench reports seed 7.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

# One core for every figure: the matcher's one matmul must not borrow a
# second BLAS thread the peers do not get.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.biometrics import gallery as gal  # noqa: E402
from gateway.biometrics import iso19794, mcc  # noqa: E402
from simulators import fingerprints as fpg  # noqa: E402
from simulators.biometric_eval import eer, fnmr_at_fmr  # noqa: E402
from simulators.peer_matchers import afis_bozorth3, afis_mcc, afis_minutiae  # noqa: E402

SEED = 7


def ours_scores(feats: list[list[mcc.Features]]) -> tuple[np.ndarray, np.ndarray]:
    gen: list[float] = []
    imp: list[float] = []
    for row in feats:
        b = mcc.Batch.of(row)
        for a in range(len(row) - 1):
            gen.extend(mcc.scores(row[a], b.take(np.arange(a + 1, len(row)))).tolist())
    firsts = [row[0] for row in feats]
    for k in range(len(firsts) - 1):
        rest = np.arange(k + 1, len(firsts))
        for c in range(0, len(rest), 64):
            imp.extend(mcc.scores(firsts[k], mcc.Batch.of([firsts[i] for i in rest[c : c + 64]])).tolist())
    return np.array(gen), np.array(imp)


def peer_scores(data: list[list[fpg.Impression]]) -> dict[str, tuple[np.ndarray, np.ndarray, list[float]]]:
    build, match = afis_mcc()
    mins = [[afis_minutiae(im.minutiae) for im in row] for row in data]
    cyl = [[build(m) for m in row] for row in mins]

    def run(f):  # type: ignore[no-untyped-def]
        gen, imp, t = [], [], []
        for r in range(len(data)):
            for a, b in itertools.combinations(range(len(data[r])), 2):
                t0 = time.perf_counter()
                gen.append(f(r, a, r, b))
                t.append(time.perf_counter() - t0)
        for r1 in range(len(data)):
            for r2 in range(r1 + 1, len(data)):
                t0 = time.perf_counter()
                imp.append(f(r1, 0, r2, 0))
                t.append(time.perf_counter() - t0)
        return np.array(gen, float), np.array(imp, float), t

    def m_mcc(r1: int, a: int, r2: int, b: int) -> float:
        return match(cyl[r1][a], cyl[r2][b])

    def m_boz(r1: int, a: int, r2: int, b: int) -> float:
        return float(afis_bozorth3(mins[r1][a], mins[r2][b]))

    m_mcc(0, 0, 0, 1)  # numba compiles on first use when it is installed
    m_boz(0, 0, 0, 1)
    return {"afis MCC": run(m_mcc), "afis Bozorth3": run(m_boz)}


def _impression(f: int, i: int, seed: int, tier: str) -> fpg.Impression:
    m = fpg.master(f, seed)
    return (
        fpg.impression(m, i, seed) if tier == "classic" else fpg.tier_impression(m, i, seed, fpg.TIERS[tier])
    )


def identification(n: int, probes: int, strangers: int, tier: str, views: int = 1) -> dict[str, float]:
    """The gate's own API (Gallery.identify at its default FPIR): mates
    (another impression of an enrolled finger) and strangers (fingers
    never enrolled) against a gallery of n fingers, each enrolled from its
    first `views` impressions (the views of one record)."""

    # As the gate gets them: ISO records, so positions are whole pixels and
    # directions 256ths of a turn on both sides (the gallery stores them so).
    def record(f: int, i: int) -> bytes:
        im = _impression(f, i, SEED + 1, tier)
        return iso19794.single(im.minutiae, im.width, im.height)

    def enrolment(f: int) -> bytes:
        ims = [_impression(f, i, SEED + 1, tier) for i in range(views)]
        return iso19794.impressions([im.minutiae for im in ims], ims[0].width, ims[0].height)

    g = gal.Gallery()
    enrol = 0.0
    for f in range(n):
        rec = enrolment(f)
        t0 = time.perf_counter()
        g.enrol(f"p-{f}/1", rec)
        enrol += (time.perf_counter() - t0) / n
    rng = np.random.default_rng(n)
    who = rng.choice(n, size=min(probes, n), replace=False)
    lat, hit, ident = [], 0, 0
    for f in who:
        p = gal.features_of(record(int(f), views))  # a press not enrolled
        t0 = time.perf_counter()
        m = g.identify(p)
        lat.append(time.perf_counter() - t0)
        # Outside the timing. Finger f's templates are numbers f * views ..
        # f * views + views - 1 (enrolled in order, nothing removed).
        hit += any(int(f) * views <= t < (int(f) + 1) * views for t in g.candidates(p).tolist())
        ident += m is not None and m.ref == f"p-{f}/1"
    accepted = 0
    for f in range(n, n + strangers):
        accepted += g.identify(gal.features_of(record(f, 0))) is not None
    return {
        "threshold": g.threshold(views),
        "strangers": strangers,
        "accepted": accepted,
        "n": n,
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": float(np.percentile(lat, 95)) * 1000,
        "probes": len(who),
        "hit": hit / len(who),
        "ident": ident / len(who),
        "bytes": g.nbytes_per_template(),
        "enrol_ms": enrol * 1000,
    }


def gallery_start(n: int) -> tuple[float, float]:
    """Seconds from nothing in memory to a gallery deciding fingers, as the
    gateway starts (biostore.BioStore, then usb_import.load_gallery): cold
    (no feature cache: every template extracted) and warm (from it)."""
    import tempfile

    from gateway import biostore
    from gateway.biometrics.featurecache import FeatureCache
    from gateway.usb_import import load_gallery

    with tempfile.TemporaryDirectory() as d:
        key = os.urandom(32)
        st = biostore.State()
        for f in range(n):
            im = fpg.impression(fpg.master(f, SEED + 2), 0, SEED + 2)
            st.persons[f"p-{f}"] = {1: iso19794.single(im.minutiae, im.width, im.height)}
        biostore.BioStore(Path(d) / "biometrics.enc", key).commit(st)
        out = []
        for _ in ("cold", "warm"):
            t0 = time.perf_counter()
            store = biostore.BioStore(Path(d) / "biometrics.enc", key)
            g = gal.Gallery()
            load_gallery(g, store.state, FeatureCache(Path(d) / "gallery-features.enc", key))
            out.append(time.perf_counter() - t0)
            assert len(g) == n
        return out[0], out[1]


def impostor_tail(tier: str, fingers: int) -> dict[int, dict[int, float]]:
    """1:1 impostor scores as the gallery decides them: a press of one
    finger against the enrolled views of every other finger, fused over
    the first K views as the gallery fuses them (gallery.fused, K = 1 ..
    iso19794.MAX_VIEWS), every feature quantised as the gallery keeps it;
    and each tail read from FMR 1e-2 to the rarest decade with 10 scores
    above it: {K: {decades e: score reached by FMR 10^-e}}, as
    gallery.TAIL holds it."""
    k_max = iso19794.MAX_VIEWS
    data = fpg.dataset(fingers, k_max + 1, SEED + 3, None if tier == "classic" else tier)
    q = gal._Store.quantised
    probes = [q(mcc.extract(r[k_max].minutiae, r[k_max].width, r[k_max].height)) for r in data]
    views = [q(mcc.extract(im.minutiae, im.width, im.height)) for r in data for im in r[:k_max]]
    batches = [mcc.Batch.of(views[c : c + 64]) for c in range(0, len(views), 64)]
    s = np.empty((fingers, fingers * k_max))
    for k in range(fingers):
        s[k] = np.concatenate([mcc.scores(probes[k], b) for b in batches])
    # (probe finger, other finger, view): a finger against itself is no impostor.
    other = s.reshape(fingers, fingers, k_max)[~np.eye(fingers, dtype=bool)]
    out: dict[int, dict[int, float]] = {}
    for k in range(1, k_max + 1):
        imp = np.array([gal.fused(row) for row in other[:, :k]])
        decades = [e for e in range(2, 9) if len(imp) * 10.0**-e >= 10]  # at least 10 scores above
        out[k] = {e: float(np.quantile(imp, 1 - 10.0**-e)) for e in decades}
        print(f"  {tier:<8}{k:>6}{len(imp):>11,}" + "".join(f"  1e-{e}: {v:.4f}" for e, v in out[k].items()))
    return out


def main() -> int:
    # Every data set derives its seed from SEED, so a run with --seed is a
    # run on fingers the settings never saw.
    global SEED
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiers", nargs="*", help="default: all four; --quick: hard")
    ap.add_argument("--sizes", type=int, nargs="*", help="1:N gallery sizes (none: skip 1:N)")
    ap.add_argument("--probes", type=int, help="1:N mate probes per gallery (default 1,000; 300 past 10,000)")
    ap.add_argument("--strangers", type=int, help="1:N never-enrolled probes per gallery (default 1,000)")
    ap.add_argument("--only-1n", action="store_true", help="skip accuracy, 1:1 speed and the tail")
    ap.add_argument("--only-tail", action="store_true", help="only the impostor tail")
    ap.add_argument(
        "--views",
        type=int,
        default=1,
        choices=range(1, 5),
        help="1:N presses enrolled per finger (default 1)",
    )
    ap.add_argument(
        "--fingers",
        type=int,
        nargs=3,
        metavar=("FINGERS", "IMPRESSIONS", "PEER_FINGERS"),
        help="accuracy set size (default 500 8 60; --quick 16 6 4)",
    )
    ap.add_argument("--tail-fingers", type=int, help="impostor tail set (default 1,000; --quick 120)")
    ap.add_argument("--start-sizes", type=int, nargs="*", help="gallery start sizes (default 1,000 10,000)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"data seed (default {SEED}; tuned on 1)")
    args = ap.parse_args()
    SEED = args.seed
    q = args.quick
    fingers, imps, peer_fingers = args.fingers or ((16, 6, 4) if q else (500, 8, 60))
    sizes = args.sizes if args.sizes is not None else (200,) if q else (1000, 10000, 50000)
    if args.tiers is None:
        args.tiers = ["hard"] if q else ["classic", "easy", "fvc", "hard"]

    if not args.only_1n and not args.only_tail:
        accuracy_and_speed(q, fingers, imps, peer_fingers, args.tiers)
    if not args.only_1n:
        tail(args.tail_fingers or (120 if q else 1000), args.tiers)
    if args.only_tail:
        return 0
    for tier in args.tiers if sizes else []:
        print(f"1:N identification, tier {tier}, {args.views} press(es) enrolled per finger, one core,"
              f" the gate's API (FPIR {gal.FPIR:g} per attempt):")  # fmt: skip
        cols = [("gallery", 8), ("mates", 7), ("p50 ms", 9), ("p95 ms", 9), ("hit %", 8), ("FNIR %", 8)]
        cols += [("strangers", 10), ("accepted", 9), ("threshold", 10), ("bytes/tpl", 11), ("enrol ms", 9)]
        print("  " + "".join(f"{c:>{w}}" for c, w in cols))
        for n in sizes:
            # Enough probes to resolve the 99.5 % hit-rate goal where the run
            # time allows (50,000 costs about a second a probe).
            probes = args.probes or (30 if q else (1000 if n <= 10000 else 300))
            strangers = args.strangers if args.strangers is not None else (30 if q else 1000)
            r = identification(n, probes, strangers, tier, args.views)
            hit, fnir = r["hit"] * 100, (1 - r["ident"]) * 100
            print(
                f"  {r['n']:>8,}{r['probes']:>7,}{r['p50_ms']:9.1f}{r['p95_ms']:9.1f}{hit:8.1f}{fnir:8.1f}"
                f"{r['strangers']:>10,}{r['accepted']:>9,}{r['threshold']:10.4f}{r['bytes']:11,.0f}"
                f"{r['enrol_ms']:9.2f}"
            )
    if sizes:
        print(
            "  [goals: FPIR <= 1e-4 with FNIR <= 3 % at 10,000 (hard); p95 <= 500 ms; hit >= 99.5 %; <= 4 KB]"
        )
        print("  [0 of S strangers accepted bounds FPIR below 3/S at 95 % confidence]")
    print("gallery start (store decrypted, gallery built, one core):")
    for n in args.start_sizes if args.start_sizes is not None else (200,) if q else (1000, 10000):
        cold, warm = gallery_start(n)
        print(f"  {n:>8,} templates: cold {cold:7.1f} s (every template extracted), "
              f"warm {warm:5.2f} s (from the feature cache)")  # fmt: skip
    print("  [goal: <= 5 s at 10,000, warm]")
    return 0


def tail(fingers: int, tiers: list[str]) -> None:
    print(f"impostor tail (seed {SEED + 3}; a press against K views, fused; FMR 1e-2, 1e-3, ... reached at):")
    print(f"  {'tier':<8}{'views':>6}{'impostors':>11}")
    fits = {t: impostor_tail(t, fingers) for t in tiers}
    for k, decades in gal.TAIL.items():
        gate = "  ".join(f"1e-{e}: {v:.4f}" for e, v in decades)
        print(f"  the gate's TAIL, {k} view(s) (seed 10, the highest of the tiers): {gate}")
        for e, v in decades:
            seen = [f[k][e] for f in fits.values() if e in f[k]]
            if seen and max(seen) > v:
                print(f"  WARNING: this run's tail at 1e-{e}, {k} view(s), ({max(seen):.4f}) is above"
                      f" the gate's ({v:.4f})")  # fmt: skip


def accuracy_and_speed(q: bool, fingers: int, imps: int, peer_fingers: int, tiers: list[str]) -> None:
    for tier in tiers:
        t0 = time.perf_counter()
        data = fpg.dataset(fingers, imps, SEED, None if tier == "classic" else tier)
        feats = [[mcc.extract(im.minutiae, im.width, im.height) for im in row] for row in data]
        t_ext = (time.perf_counter() - t0) / (fingers * imps)
        one_tier(q, fingers, imps, peer_fingers, tier, data, feats)
    print(f"feature extraction {t_ext * 1000:.2f} ms per template")


def one_tier(q: bool, fingers: int, imps: int, peer_fingers: int, tier: str,
             data: list[list[fpg.Impression]], feats: list[list[mcc.Features]]) -> None:  # fmt: skip
    gen, imp = ours_scores(feats)
    # 1:1 rate as the gate runs it: a probe against prebuilt batches of
    # gallery.CHUNK templates.
    flat = [f for row in feats for f in row]
    batch = mcc.Batch.of(flat[: gal.CHUNK])
    probes = flat[gal.CHUNK : gal.CHUNK + (20 if q else 100)]
    t0 = time.perf_counter()
    for pr in probes:
        mcc.scores(pr, batch)
    ours_rate = len(probes) * gal.CHUNK / (time.perf_counter() - t0)

    # 1:1 one pair at a time (no batching), like the peers are called.
    pairs = [(feats[r][0], feats[r][1]) for r in range(min(fingers, 50))]
    single_t = []
    for a, b in pairs:
        t0 = time.perf_counter()
        mcc.score(a, b)
        single_t.append(time.perf_counter() - t0)

    gsub, isub = ours_scores(feats[:peer_fingers])
    peers = peer_scores(data[:peer_fingers])

    print(f"matcher bench ({'quick' if q else 'full'}), tier {tier}: {fingers} fingers x {imps} impressions,"
          f" seed {SEED}")  # fmt: skip
    print(f"  ours: {len(gen)} genuine, {len(imp)} impostor comparisons")
    fn4, thr4 = fnmr_at_fmr(gen, imp, 1e-4)
    fn3, _ = fnmr_at_fmr(gen, imp, 1e-3)
    e_all = eer(gen, imp) * 100
    print(
        f"  ours EER {e_all:.3f} %   FNMR at FMR 1e-3 {fn3 * 100:.2f} %   FNMR at FMR 1e-4 {fn4 * 100:.2f} %"
    )
    print(f"  (threshold at FMR 1e-4: {thr4:.4f})   [goal FNMR <= 2 % at FMR 1e-4]")
    lo = 1.0 / len(isub)
    print(f"same {peer_fingers} fingers for all three ({len(gsub)} genuine, {len(isub)} impostor; "
          f"lowest measurable FMR {lo:.1e}):")  # fmt: skip
    head = "FNMR@FMR=" + format(lo, ".0e") + " %"
    print(f"  {'matcher':<16}{'EER %':>9}{head:>22}{'mean/s':>10}{'median/s':>10}{'ratio':>9}")
    # Like with like: each rate is 1 / (mean time) and 1 / (median time) per
    # comparison, over the same kind of call. The batched row has only a mean
    # (one call scores a whole batch); its ratio is mean over the faster
    # peer's mean, the single-pair row's is median over the faster median.
    rows: list[tuple[str, np.ndarray, np.ndarray, float, float | None]] = [
        ("ours (batched)", gsub, isub, ours_rate, None),
        ("ours (1 pair)", gsub, isub, 1 / statistics.fmean(single_t), 1 / statistics.median(single_t)),
    ]
    for name, (g_, i_, ts) in peers.items():
        rows.append((name, g_, i_, 1 / statistics.fmean(ts), 1 / statistics.median(ts)))
    peer_mean = max(1 / statistics.fmean(ts) for _g, _i, ts in peers.values())
    peer_median = max(1 / statistics.median(ts) for _g, _i, ts in peers.values())
    for name, g_, i_, mean_r, med_r in rows:
        fn, _ = fnmr_at_fmr(g_, i_, lo)
        ratio = (med_r / peer_median) if med_r is not None else (mean_r / peer_mean)
        med_s = f"{med_r:10,.0f}" if med_r is not None else f"{'-':>10}"
        print(f"  {name:<16}{eer(g_, i_) * 100:9.3f}{fn * 100:22.2f}{mean_r:10,.0f}{med_s}{ratio:8.1f}x")
    print("  (ratio: the batched row's mean over the faster peer's mean; the others' median over the faster"
          " peer's median; goal >= 20x; peers use prebuilt cylinders where the API allows: afis MCC yes,"
          " Bozorth3 no)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
