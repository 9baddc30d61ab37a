import numpy as np
import pytest

from pipelines.metrics import bootstrap_ci, paired_bootstrap_ci


def test_same_seed_same_interval_and_global_rng_untouched():
    values = np.random.default_rng(0).random(50)
    state = np.random.get_state()
    first = bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) == first
    assert bootstrap_ci(values, seed=2) != first
    assert np.random.get_state()[1].tolist() == state[1].tolist()
    assert first[0] < values.mean() < first[1]


def test_constant_sample_gives_a_degenerate_interval():
    low, high = bootstrap_ci(np.full(5000, 0.25), seed=0, num_resamples=200)
    assert low == high == pytest.approx(0.25)


def test_normal_sample_interval_holds_the_mean_and_has_the_textbook_width():
    # A fixed sample whose mean is 0.6 standard errors below 5; that 95% of such
    # intervals hold the true mean is what the coverage test below checks.
    values = np.random.default_rng(1).normal(5.0, 1.0, 2000)
    low, high = bootstrap_ci(values, seed=0)
    assert low < 5.0 < high
    assert low < values.mean() < high
    # 95% interval of a mean: about 2 * 1.96 * sigma / sqrt(n).
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.15)


def test_coverage_is_near_the_nominal_level():
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        low, high = bootstrap_ci(rng.normal(0.0, 1.0, 40), seed=trial, num_resamples=200)
        covered += low <= 0.0 <= high
    # The percentile bootstrap undercovers a little at n=40; 200 trials: +-3% noise.
    assert 0.86 <= covered / 200 <= 0.99


def test_other_statistics_and_confidence_levels():
    values = np.arange(101, dtype=float)
    low, high = bootstrap_ci(values, statistic=np.median, seed=0, confidence=0.5)
    wide_low, wide_high = bootstrap_ci(values, statistic=np.median, seed=0, confidence=0.99)
    assert wide_low <= low < 50 < high <= wide_high


def test_paired_interval_of_a_constant_difference_and_of_no_difference():
    rng = np.random.default_rng(3)
    b = rng.random(300)
    low, high = paired_bootstrap_ci(b + 0.1, b, seed=0, num_resamples=300)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    low, high = paired_bootstrap_ci(rng.random(300), rng.random(300), seed=0)
    assert low < 0 < high


def test_pairing_narrows_the_interval_when_samples_share_difficulty():
    rng = np.random.default_rng(5)
    difficulty = rng.random(200)
    a = difficulty + rng.normal(0.05, 0.02, 200)
    b = difficulty
    paired = paired_bootstrap_ci(a, b, seed=0, num_resamples=300)
    low_a, high_a = bootstrap_ci(a, seed=0, num_resamples=300)
    assert paired[0] > 0  # the paired test sees a's small, consistent gain
    assert paired[1] - paired[0] < (high_a - low_a) / 5


def test_inputs_are_not_modified():
    values = np.array([1.0, 2.0, 3.0])
    bootstrap_ci(values, seed=0, num_resamples=10)
    assert values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_sample_values": []}, r"^per_sample_values must be a non-empty 1-D sequence, got"),
        ({"per_sample_values": [1.0, np.nan]}, r"^per_sample_values must be finite; it holds"),
        ({"num_resamples": 0}, r"^num_resamples \(0\) must be an integer > 0$"),
        ({"confidence": 1.0}, r"^confidence \(1.0\) must be between 0 and 1$"),
    ],
)
def test_errors_name_the_bad_value(kwargs, message):
    arguments = {"per_sample_values": [1.0, 2.0], "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(**arguments)


def test_paired_lengths_must_match():
    with pytest.raises(ValueError, match=r"^values_a has 2 samples and values_b 3: paired"):
        paired_bootstrap_ci([1.0, 2.0], [1.0, 2.0, 3.0], seed=0)
