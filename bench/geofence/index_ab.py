"""Index query A/B without a database: compiled kernel vs NumPy path, same index, same queries.

Synthetic Seoul-like points (25 districts on a 5 × 5 layout over Seoul's box, each a few dense
clusters), 150,000 and 554,092 of them; query points are random stores ± 0.003° (populated places,
as in ``run.py index``). Each query is timed on both paths back to back (interleaved, so both share
the machine's noise), and every answer is compared (positions and distances must be identical).
Prints one JSON line per case; takes ≈ 1 min with the defaults.

    uv run python bench/geofence/index_ab.py --queries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

import numpy as np

from api.geofence.index import DistrictGrid, GeoIndex

SCALES = (150_000, 554_092)
RADII = (1_000, 3_000)


def _grids(total: int, seed: int) -> list[DistrictGrid]:
    rng = np.random.default_rng(seed)
    grids = []
    per = total // 25
    for d in range(25):
        south, west = 37.43 + 0.054 * (d // 5), 126.76 + 0.084 * (d % 5)
        n = per + (total - 25 * per if d == 0 else 0)
        centers = rng.uniform((south, west), (south + 0.054, west + 0.084), size=(8, 2))
        which = rng.integers(0, 8, n)
        spread = rng.uniform(0.004, 0.015, size=(8, 1))
        pts = centers[which] + rng.normal(size=(n, 2)) * spread[which]
        grids.append(
            DistrictGrid([f"{d}-{i}" for i in range(n)], pts[:, 0].tolist(), pts[:, 1].tolist())
        )
    return grids


def _stats(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {
        "p50_us": round(float(np.percentile(a, 50)), 1),
        "p99_us": round(float(np.percentile(a, 99)), 1),
        "mean_us": round(float(a.mean()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000, help="queries per scale and radius")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps({"command": " ".join(sys.argv), "load_avg": os.getloadavg()}), flush=True)
    for scale in SCALES:
        started = time.perf_counter()
        index = GeoIndex(_grids(scale, args.seed))
        built_s = time.perf_counter() - started
        rng = random.Random(args.seed)
        for radius in RADII:
            points = []
            for _ in range(args.queries):
                p = int(rng.randrange(len(index)))
                lat, lon = float(index.lat[p]), float(index.lon[p])
                points.append((lat + rng.uniform(-0.003, 0.003), lon + rng.uniform(-0.003, 0.003)))
            for lat0, lon0 in points[:50]:  # warm-up
                index.within(lat0, lon0, radius)
                index.within_numpy(lat0, lon0, radius)
            kernel, numpy_path, sizes, differing = [], [], [], 0
            for lat0, lon0 in points:
                t = time.perf_counter()
                fast = index.within(lat0, lon0, radius)
                kernel.append(time.perf_counter() - t)
                t = time.perf_counter()
                slow = index.within_numpy(lat0, lon0, radius)
                numpy_path.append(time.perf_counter() - t)
                sizes.append(len(fast))
                same = np.array_equal(fast.position, slow.position) and np.array_equal(
                    fast.distances, slow.distances
                )
                differing += not same
            row: dict[str, Any] = {
                "points": scale,
                "radius_m": radius,
                "kernel": _stats(kernel),
                "numpy_path": _stats(numpy_path),
                "mean_hits": round(float(np.mean(sizes)), 1),
                "answers_differing": differing,
                "index_built_s": round(built_s, 2),
                "load_avg": os.getloadavg(),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
