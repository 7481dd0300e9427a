"""Past the statistics budget a column keeps a uniform random sample of fixed size (reservoir)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from workers.stats import NumericStats


def sampled(values: np.ndarray, capacity: int, batch: int, seed: int) -> NumericStats:
    stats = NumericStats(capacity, np.random.default_rng(seed))
    for start in range(0, len(values), batch):
        stats.update(pa.array(values[start : start + batch]))
    return stats


def test_every_value_is_equally_likely_to_be_kept():
    n, capacity, trials = 1_000, 100, 1_000
    kept = np.zeros(n)
    for seed in range(trials):
        stats = sampled(np.arange(n, dtype=np.float64), capacity, batch=37, seed=seed)
        sample = stats._sample
        assert sample is not None
        assert len(sample) == capacity
        assert len(np.unique(sample)) == capacity  # each value once: slots never hold a stale copy
        kept[sample.astype(int)] += 1
    # each value is kept in capacity/n of the trials; per block of 100 values that is 10,000 with a
    # standard deviation of about 95: the first values (which fill the reservoir), the last ones
    # and those in between all land within five of it
    blocks = kept.reshape(10, 100).sum(axis=1)
    expected = trials * capacity / n * 100
    assert np.all(np.abs(blocks - expected) < 5 * np.sqrt(expected)), blocks
    assert kept.min() > 0


def test_quantiles_from_the_sample_and_exact_moments():
    values = np.random.default_rng(3).normal(size=200_000)
    stats = sampled(values, capacity=20_000, batch=4_096, seed=0).result()
    assert stats["quantiles_exact"] is False
    assert stats["count"] == len(values)
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-9)
    for name, q in [("p01", 0.01), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p99", 0.99)]:
        # rank error of a 20,000-value sample: about 1/sqrt(20,000) = 0.7 %; 3 % is far out
        rank = np.searchsorted(np.sort(values), stats[name]) / len(values)
        assert abs(rank - q) < 0.03, (name, rank)


def test_within_the_budget_the_quantiles_are_exact():
    values = np.random.default_rng(4).normal(size=5_000)
    stats = sampled(values, capacity=5_000, batch=999, seed=0).result()
    assert stats["quantiles_exact"] is True
    assert stats["p25"] == pytest.approx(np.quantile(values, 0.25))


def test_a_slot_drawn_twice_in_a_batch_keeps_the_later_value_as_one_at_a_time_would():
    # small capacity, big batches: many values of a batch draw the same slot
    values, capacity, batch = np.arange(20_000, dtype=np.float64), 50, 4_000
    stats = sampled(values, capacity, batch, seed=7)
    # Algorithm R value by value, with the very draws the batched code makes (same generator, same calls)
    rng = np.random.default_rng(7)
    sample, seen = values[:capacity].copy(), capacity
    for start in range(0, len(values), batch):  # the first batch fills the reservoir, then goes on
        chunk = values[max(start, capacity) : start + batch]
        offered = np.arange(seen + 1, seen + len(chunk) + 1, dtype=np.float64)
        chosen = np.flatnonzero(rng.random(len(chunk)) * offered < capacity)
        for position, slot in zip(chosen, rng.integers(0, capacity, len(chosen)), strict=True):
            sample[slot] = chunk[position]
        seen += len(chunk)
    assert stats._sample is not None
    assert np.array_equal(stats._sample, sample)
