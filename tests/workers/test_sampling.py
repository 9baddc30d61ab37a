import random
import re

import numpy as np
import pytest
import torch

from workers.sampling import SamplingSpec, parse_sampling, sample_indices


def cfr(num_frames, fps=12.0):
    return [i / fps for i in range(num_frames)]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("uniform:8", "uniform:8"),
        ("segments:3,2", "segments:3,2"),
        ("segments: 3 , 2", "segments:3,2"),
        ("fps:2.0", "fps:2"),
        ("fps:2.5", "fps:2.5"),
        ("fps:0.1", "fps:0.1"),
        ("stride:4", "stride:4"),
        ("all", "all"),
    ],
)
def test_str_is_canonical_and_round_trips(text, canonical):
    spec = parse_sampling(text)
    assert str(spec) == canonical
    assert parse_sampling(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uniform:0", "sampling 'uniform:0': K must be > 0"),
        ("uniform:-2", "sampling 'uniform:-2': K must be > 0"),
        ("uniform:x", "sampling 'uniform:x': K must be an integer, got 'x'"),
        ("uniform:1_0", "sampling 'uniform:1_0': K must be an integer, got '1_0'"),
        ("uniform", "sampling 'uniform': expected uniform:K"),
        ("segments:3", "sampling 'segments:3': expected segments:S,L"),
        ("segments:3,0", "sampling 'segments:3,0': L must be > 0"),
        ("fps:0", "sampling 'fps:0': R must be a finite number > 0"),
        ("fps:nan", "sampling 'fps:nan': R must be a finite number > 0"),
        ("fps:fast", "sampling 'fps:fast': R must be a number, got 'fast'"),
        ("stride:1.5", "sampling 'stride:1.5': N must be an integer, got '1.5'"),
        ("all:3", "sampling 'all:3': expected all"),
        (
            "random:3",
            "sampling 'random:3': unknown mode 'random'; "
            "expected one of uniform:K, segments:S,L, fps:R, stride:N, all",
        ),
    ],
)
def test_bad_specs_name_the_text_and_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_sampling(text)


def test_spec_checks_its_own_fields():
    with pytest.raises(ValueError, match=r"^num_frames \(0\) must be > 0$"):
        SamplingSpec(mode="uniform", num_frames=0)
    with pytest.raises(ValueError, match=r"^mode 'uniform' needs num_frames$"):
        SamplingSpec(mode="uniform")
    with pytest.raises(ValueError, match=r"^stride \(2\) is not used by mode 'all'$"):
        SamplingSpec(mode="all", stride=2)
    with pytest.raises(ValueError, match=r"^fps \(inf\) must be a finite number > 0$"):
        SamplingSpec(mode="fps", fps=float("inf"))


def test_uniform_takes_the_centres_of_k_equal_bins():
    # 24 frames in 4 bins of 6: centres at 3, 9, 15, 21.
    assert sample_indices("uniform:4", cfr(24)) == [3, 9, 15, 21]
    # 10 frames in 3 bins of 10/3: centres at 5/3, 5, 25/3.
    assert sample_indices("uniform:3", cfr(10)) == [1, 5, 8]
    assert sample_indices("uniform:1", cfr(5)) == [2]


def test_short_videos_give_what_exists_without_repeats():
    assert sample_indices("uniform:16", cfr(5)) == [0, 1, 2, 3, 4]
    assert sample_indices("segments:8,2", cfr(5)) == [0, 1, 2, 3, 4]
    assert sample_indices("uniform:4", []) == []


def test_segments_are_centred_by_default():
    # 24 frames, 3 segments of 8, snippets of 2 at offset (8 - 2) // 2 = 3.
    assert sample_indices("segments:3,2", cfr(24)) == [3, 4, 11, 12, 19, 20]
    # A segment shorter than L lends frames from the next one.
    assert sample_indices("segments:2,4", cfr(6)) == [0, 1, 2, 3, 4, 5]


def test_random_segment_offsets_are_seeded_and_stay_in_their_segment():
    times = cfr(300)
    first = sample_indices("segments:3,5", times, rng=np.random.default_rng(7))
    again = sample_indices("segments:3,5", times, rng=np.random.default_rng(7))
    other = sample_indices("segments:3,5", times, rng=np.random.default_rng(8))
    assert first == again
    assert first != other
    starts = first[::5]
    for segment, start in enumerate(starts):
        assert first[segment * 5 : segment * 5 + 5] == list(range(start, start + 5))
        assert segment * 100 <= start <= segment * 100 + 95
    seeded = torch.Generator().manual_seed(3)
    assert sample_indices("segments:3,5", times, rng=seeded) == sample_indices(
        "segments:3,5", times, rng=torch.Generator().manual_seed(3)
    )


def test_sampling_leaves_the_global_rngs_untouched():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    for spec in ("uniform:5", "segments:4,3", "fps:3", "stride:2", "all"):
        sample_indices(spec, cfr(100), rng=np.random.default_rng(0))
        sample_indices(spec, cfr(100), rng=torch.Generator().manual_seed(0))
        sample_indices(spec, cfr(100))
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


def test_fps_samples_by_timestamp_on_variable_frame_rate():
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 1.0, 1.05]
    # Targets 0, 0.25, 0.5, 0.75, 1.0 s -> first frame at or after each; 0.75 and 1.0 share frame 6.
    assert sample_indices("fps:4", times) == [0, 3, 5, 6]
    assert sample_indices("fps:1", times) == [0, 6]


def test_fps_is_measured_from_the_first_frame_and_tolerates_float_error():
    times = [10.0 + i * (1 / 30) for i in range(90)]  # 3 s at 30 fps, starting at 10 s
    assert sample_indices("fps:10", times) == list(range(0, 90, 3))
    assert sample_indices("fps:60", times) == list(range(90))


def test_stride_and_all():
    assert sample_indices("stride:5", cfr(12)) == [0, 5, 10]
    assert sample_indices(SamplingSpec(mode="all"), cfr(3)) == [0, 1, 2]


def test_bad_arguments():
    with pytest.raises(
        ValueError, match="^timestamps_s must be finite and sorted in presentation order$"
    ):
        sample_indices("all", [0.0, 0.2, 0.1])
    with pytest.raises(TypeError, match="^rng must be a numpy or torch Generator, got Random$"):
        sample_indices("segments:2,1", cfr(10), rng=random.Random(0))
