"""kernel.nearest picks the hits a distance-ordered page reads: a prefix of the stable distance
order holding at least the k nearest and every tie of its last distance, with each distance's
text as the page writes it."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
import pytest

from api.geofence import kernel, service


def _distances(rng: random.Random, n: int) -> np.ndarray:
    values = [
        rng.choice([rng.uniform(0, 5000), rng.randrange(0, 50_000) / 10 + 0.05]) for _ in range(n)
    ]
    for i in range(0, n, 7):  # ties: the same distance at several hits
        values[i] = values[i // 2]
    values[:3] = [0.0, 5000.0, math.nextafter(1000.05, 0)]
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize("seed", range(6))
def test_nearest_is_a_prefix_of_the_stable_distance_order_ending_after_a_tie(seed: int) -> None:
    rng = random.Random(seed)
    d = _distances(rng, rng.choice([0, 1, 5, 60, 400]))
    position = np.array(rng.sample(range(10_000), len(d)), dtype=np.int64)
    for lower in (-math.inf, *(rng.choice(d.tolist() or [0.0]) for _ in range(3))):
        chosen = np.flatnonzero(d >= lower)
        order = chosen[np.argsort(d[chosen], kind="stable")]
        for k in (1, 4, 17, len(order) or 1):
            positions, distances, texts, cut = kernel.nearest(d, position, lower, k, 5000.0)
            taken = len(positions)
            assert min(k, len(order)) <= taken <= len(order)
            assert cut == (taken < len(order))
            if cut:  # the next hit is strictly farther: no tie of the last one is left out
                assert d[order[taken]] > d[order[taken - 1]]
            assert positions.tolist() == position[order[:taken]].tolist()
            assert distances.tolist() == d[order[:taken]].tolist()
            table = service.distance_texts(distances.tolist())
            for text, written, value in zip(texts.tolist(), table, distances.tolist(), strict=True):
                assert written == orjson.dumps(round(value, 1))
                if text >= 0:  # from the table: the same bytes
                    assert orjson.dumps(text / 10) == written


def test_nearest_writes_plain_distances_from_the_table_and_leaves_the_rest() -> None:
    values = [0.0, -0.0, 0.05, 0.15, 2.675, 1000.0, 4999.95, 5000.0, 5000.05, 7000.25]
    rng = random.Random(4)
    for _ in range(5000):
        tenth = rng.randrange(0, 50_000) / 10
        values += [tenth, tenth + 0.05, math.nextafter(tenth + 0.05, 0), rng.uniform(0, 5000)]
    d = np.array(values, dtype=np.float64)
    _, distances, texts, _ = kernel.nearest(
        d, np.arange(len(d), dtype=np.int64), -math.inf, len(d), 5000.0
    )
    for value, text in zip(distances.tolist(), texts.tolist(), strict=True):
        if text >= 0:
            assert 0 < value <= 5000
            assert orjson.dumps(text / 10) == orjson.dumps(round(value, 1))
        else:  # zero, past 5 km, or within rounding error of a half: written per item
            assert value <= 0 or value > 5000 or abs(value * 10 - round(value * 10)) > 0.49


@pytest.mark.parametrize(
    "values",
    [
        [250.0] * 40,  # every hit at one distance: all of them, in hit order
        [1.0 + i * 1e-9 for i in range(300)] + [4999.0],  # most in the first bucket
        [5000.0 - i * 0.25 for i in range(300)],  # far first in hit order
    ],
    ids=["all-tied", "crowded-bucket", "descending"],
)
def test_nearest_orders_crowded_and_tied_distances_stably(values: list[float]) -> None:
    d = np.array(values, dtype=np.float64)
    position = np.arange(100, 100 + len(d), dtype=np.int64)
    order = np.argsort(d, kind="stable")
    for k in (1, 10, len(d)):
        positions, distances, _, cut = kernel.nearest(d, position, -math.inf, k, 5000.0)
        taken = len(positions)
        assert taken >= k
        assert positions.tolist() == position[order[:taken]].tolist()
        assert distances.tolist() == sorted(distances.tolist())
        assert cut == (taken < len(d))
