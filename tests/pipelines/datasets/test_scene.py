"""Scenes and rendering: paired actions are exact time reversals, before and after H.264."""

import json
import math
import re

import av
import numpy as np
import pytest

from pipelines.datasets.render import coverage, render_frames
from pipelines.datasets.scene import (
    ACTIONS,
    COLOURS,
    NOISE_STD,
    PAIRED_ACTION,
    ObjectState,
    Scene,
    SceneObject,
    sample_scene,
    swept_box,
)
from pipelines.datasets.video_writer import write_video


def sampled(action, seed=0, *, size=64, num_frames=12):
    return sample_scene(action, np.random.default_rng(seed), size=size, num_frames=num_frames)


def still(x, y, size, opacity=1.0):
    return ObjectState(x=x, y=y, size=size, opacity=opacity)


def red_square(start, end):
    return SceneObject(shape="square", colour="red", start=start, end=end)


def scene_with(action, primary, distractors=(), num_frames=4):
    return Scene(
        action=action,
        size=64,
        num_frames=num_frames,
        background=(50, 50, 50),
        noise_seeds=tuple(range(num_frames)),
        primary=primary,
        distractors=distractors,
    )


def shows_action(scene):
    """An independent reading of what the primary does, from its start and end states."""
    s, e = scene.primary.start, scene.primary.end
    dx, dy = e.x - s.x, e.y - s.y
    if s.opacity == 0.0 and e.opacity == 1.0 and (dx, dy) == (0, 0) and s.size == e.size:
        return "appear"
    if s.opacity == 1.0 and e.opacity == 0.0 and (dx, dy) == (0, 0) and s.size == e.size:
        return "disappear"
    if (dx, dy) == (0, 0) and e.size >= 2 * s.size:
        return "grow"
    if (dx, dy) == (0, 0) and s.size >= 2 * e.size:
        return "shrink"
    travel = 0.4 * scene.size
    if s.size == e.size and dy == 0 and abs(dx) >= travel:
        return "move_right" if dx > 0 else "move_left"
    if s.size == e.size and dx == 0 and abs(dy) >= travel:
        return "move_down" if dy > 0 else "move_up"
    return None


def test_actions_pair_up():
    assert len(ACTIONS) == 8
    assert set(PAIRED_ACTION) == set(ACTIONS)
    for action in ACTIONS:
        assert PAIRED_ACTION[action] != action
        assert PAIRED_ACTION[PAIRED_ACTION[action]] == action


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("action", ACTIONS)
def test_reversed_scene_is_the_pair_and_renders_the_frames_reversed(action, seed):
    scene = sampled(action, seed)
    back = scene.reversed()  # constructing it validates it as a scene of its action
    assert shows_action(scene) == action
    assert back.action == PAIRED_ACTION[action]
    assert shows_action(back) == PAIRED_ACTION[action]
    assert back.reversed() == scene
    frames = render_frames(scene)
    assert frames.shape == (12, 64, 64, 3)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(render_frames(back), frames[::-1])


def decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("action", ["move_left", "move_down", "grow", "appear"])
def test_reversal_survives_h264(action, tmp_path):
    scene = sampled(action, seed=3, num_frames=16)
    write_video(tmp_path / "a.mp4", render_frames(scene), fps=12, codec="h264")
    write_video(tmp_path / "b.mp4", render_frames(scene.reversed()), fps=12, codec="h264")
    forward = decode(tmp_path / "a.mp4").astype(np.int16)
    backward = decode(tmp_path / "b.mp4").astype(np.int16)
    assert len(forward) == len(backward) == 16
    # The two encodes differ only by the encoder's choices (the first frame is
    # the keyframe in each), measured here at about 1 mean and 7 at the 99th percentile.
    difference = np.abs(backward - forward[::-1])
    assert difference.mean() < 2.0
    assert np.percentile(difference, 99) <= 12


def test_sampling_is_seeded_and_leaves_the_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    assert sampled("grow", 7) == sampled("grow", 7)
    assert sampled("grow", 7) != sampled("grow", 8)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_distractors_are_distinct_small_slow_and_clear_of_the_primary():
    numbers = set()
    for seed in range(200):
        scene = sampled(ACTIONS[seed % 8], seed)
        numbers.add(len(scene.distractors))
        colours = [o.colour for o in scene.objects]
        assert len(set(colours)) == len(colours)
        for d in scene.distractors:
            assert (
                d.start.size == d.end.size <= max(scene.primary.start.size, scene.primary.end.size)
            )
            assert math.hypot(d.end.x - d.start.x, d.end.y - d.start.y) <= 0.1 * scene.size + 1e-9
            for other in scene.objects:
                if other is d:
                    continue
                left, top, right, bottom = swept_box(d)
                o_left, o_top, o_right, o_bottom = swept_box(other)
                assert right <= o_left or o_right <= left or bottom <= o_top or o_bottom <= top
    assert numbers == {0, 1, 2}


def test_backgrounds_vary_and_stay_dark():
    backgrounds = {sampled("appear", seed).background for seed in range(20)}
    assert len(backgrounds) == 20
    assert all(max(b) <= 100 for b in backgrounds)
    assert all(max(colour) >= 190 for colour in COLOURS.values())


def test_render_matches_a_hand_computed_frame():
    # An axis-aligned square on pixel boundaries has no partial pixels.
    scene = scene_with("appear", red_square(still(32, 32, 16, 0.0), still(32, 32, 16, 1.0)))
    expected = np.full((64, 64, 3), 50.0)
    expected[24:40, 24:40] = COLOURS["red"]
    last = scene.num_frames - 1
    noise = np.random.default_rng(scene.noise_seeds[last]).normal(0, NOISE_STD, (64, 64, 3))
    want = np.clip(np.rint(expected + noise), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(render_frames(scene)[last], want)
    first_noise = np.random.default_rng(scene.noise_seeds[0]).normal(0, NOISE_STD, (64, 64, 3))
    background = np.clip(np.rint(50 + first_noise), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(render_frames(scene)[0], background)


@pytest.mark.parametrize(
    ("shape", "area"), [("circle", math.pi * 10**2), ("square", 20**2), ("triangle", 20**2 / 2)]
)
def test_coverage_has_the_shape_area(shape, area):
    centres = np.arange(64) + 0.5
    px, py = np.meshgrid(centres, centres)
    covered = coverage(shape, still(30.3, 31.7, 20), px, py)
    assert covered.min() == 0.0
    assert covered.max() == 1.0
    assert covered.sum() == pytest.approx(area, rel=0.02)


def test_triangle_points_up():
    centres = np.arange(64) + 0.5
    px, py = np.meshgrid(centres, centres)
    covered = coverage("triangle", still(32, 32, 32), px, py)
    widths = covered.sum(axis=1)  # per row
    assert widths[20] < widths[32] < widths[44]
    assert widths[44] == pytest.approx(32 * (44.5 - 16) / 32, abs=0.6)


def test_state_is_linear_in_time():
    obj = red_square(still(10, 20, 8), still(40, 20, 8))
    assert obj.state_at(0, 4) == obj.start
    assert obj.state_at(3, 4) == obj.end
    assert obj.state_at(1, 4).x == pytest.approx(20.0)
    with pytest.raises(ValueError, match=re.escape("frame_index (4) must be in [0, 4)")):
        obj.state_at(4, 4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: scene_with("move_left", red_square(still(40, 30, 10), still(30, 30, 10))),
            "move_left needs the primary to travel >= 40% of 64 px that way; it travels 10.0 px",
        ),
        (
            lambda: scene_with("move_right", red_square(still(40, 30, 10), still(10, 30, 10))),
            "move_right needs the primary to travel >= 40% of 64 px that way; it travels -30.0 px",
        ),
        (
            lambda: scene_with("move_up", red_square(still(30, 50, 10), still(31, 20, 10))),
            "move_up must change only the primary's y",
        ),
        (
            lambda: scene_with("grow", red_square(still(30, 30, 10), still(30, 30, 15))),
            "grow needs a size change >= 2.0x; it goes from 10.0 to 15.0 px",
        ),
        (
            lambda: scene_with("appear", red_square(still(30, 30, 10), still(30, 30, 10))),
            "appear needs opacity 0 -> 1; got 1 -> 1",
        ),
        (
            lambda: scene_with(
                "grow",
                red_square(still(30, 30, 10), still(30, 30, 20)),
                (red_square(still(5, 5, 6), still(5, 5, 6)),),
            ),
            "object colours ['red', 'red'] must all differ",
        ),
        (
            lambda: scene_with("grow", red_square(still(56, 30, 10), still(56, 30, 20))),
            "the red square at (56.0, 30.0) of size 20.0 leaves the 64x64 canvas",
        ),
        (
            lambda: Scene(
                action="grow",
                size=64,
                num_frames=4,
                background=(0, 0, 0),
                noise_seeds=(1, 2),
                primary=red_square(still(30, 30, 10), still(30, 30, 20)),
            ),
            "noise_seeds has 2 seeds for 4 frames",
        ),
        (
            lambda: scene_with(
                "grow",
                red_square(still(30, 30, 10), still(30, 30, 20)),
                (
                    SceneObject(
                        shape="circle", colour="blue", start=still(5, 5, 6), end=still(15, 5, 6)
                    ),
                ),
            ),
            "distractor blue circle drifts 10.0 px; at most 10% of 64 allowed",
        ),
        (lambda: still(1, 1, 4, opacity=1.5), "opacity (1.5) must be in [0, 1]"),
        (lambda: still(1, 1, 0), "size (0) must be > 0"),
        (
            lambda: SceneObject(
                shape="star", colour="red", start=still(1, 1, 1), end=still(1, 1, 1)
            ),
            "shape 'star' is not one of circle, square, triangle",
        ),
        (
            lambda: SceneObject(
                shape="circle", colour="pink", start=still(1, 1, 1), end=still(1, 1, 1)
            ),
            "colour 'pink' is not one of red, green, blue, yellow, white",
        ),
        (
            lambda: sampled("jump"),
            "action 'jump' is not one of move_left, move_right, move_up, move_down, grow, "
            "shrink, appear, disappear",
        ),
        (lambda: sampled("grow", size=16), "size (16) must be >= 32"),
    ],
)
def test_invalid_scenes_name_the_problem(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()


def test_scene_round_trips_through_json():
    scene = sampled("move_up", 5)
    assert Scene.from_json(json.loads(json.dumps(scene.to_json()))) == scene
