import numpy as np
import pytest

from pipelines.datasets.video_writer import write_video
from workers.decoding import decode_video
from workers.flow import FlowConfig, farneback_flow, farneback_flows, flow_to_image


def square_at(left, size=64, top=20, side=16):
    frame = np.zeros((size, size, 3), np.uint8)
    frame[top : top + side, left : left + side] = (255, 200, 120)
    return frame


# Inside the square, away from its moving edges: 2 px margin plus the shift.
INSIDE = (slice(22, 34), slice(29, 35))


@pytest.mark.parametrize("shift", [3, -3])
def test_a_translated_square_gives_its_shift_inside(shift):
    flow = farneback_flow(square_at(24), square_at(24 + shift))
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    dx, dy = flow[INSIDE].reshape(-1, 2).mean(axis=0)
    assert dx == pytest.approx(shift, abs=0.3)
    assert dy == pytest.approx(0.0, abs=0.3)
    assert np.abs(flow[:8, :8]).max() < 0.05  # still background


def test_vertical_motion_lands_in_dy():
    a = np.zeros((64, 64, 3), np.uint8)
    a[20:36, 24:40] = 255
    b = np.roll(a, 2, axis=0)  # down by 2 px
    dx, dy = farneback_flow(a, b)[23:33, 27:37].reshape(-1, 2).mean(axis=0)
    assert dy == pytest.approx(2.0, abs=0.3) and dx == pytest.approx(0.0, abs=0.3)


def test_encoded_images_show_the_direction():
    right = flow_to_image(farneback_flow(square_at(24), square_at(27)))
    left = flow_to_image(farneback_flow(square_at(24), square_at(21)))
    assert right.dtype == np.uint8 and right.shape == (64, 64, 3)
    # x channel: above 128 where things move right, below where they move left.
    assert right[..., 0].mean() > 128 > left[..., 0].mean()
    assert right[INSIDE][..., 0].mean() > 140 and left[INSIDE][..., 0].mean() < 116
    assert right[..., 2].mean() == pytest.approx(left[..., 2].mean(), rel=0.2)  # same speed


def test_flow_to_image_maps_linearly_and_saturates():
    flow = np.array([[[-20.0, 20.0], [0.0, 0.0], [10.0, 0.0], [40.0, -40.0]]], np.float32)
    image = flow_to_image(flow, bound=20.0)
    assert image.tolist() == [[[0, 255, 255], [128, 128, 0], [191, 128, 128], [255, 0, 255]]]
    batch = flow_to_image(np.stack([flow, -flow]), bound=20.0)
    assert batch.shape == (2, 1, 4, 3)


def test_flow_from_decoded_successors(tmp_path):
    frames = np.stack([square_at(10 + 2 * i) for i in range(12)])
    path = tmp_path / "moving.mp4"
    write_video(path, frames, fps=12, gop=6)
    clip = decode_video(str(path), "uniform:3", with_successors=True)
    flows = farneback_flows(clip.frames, clip.successor_frames)
    assert flows.shape == (3, 64, 64, 2)
    for flow, index in zip(flows, clip.frame_indices, strict=True):
        left = 10 + 2 * int(index)
        inside = flow[23:33, left + 4 : left + 12].reshape(-1, 2).mean(axis=0)
        assert inside[0] == pytest.approx(2.0, abs=0.4)


def test_config_is_validated_and_described():
    assert FlowConfig().describe() == (
        "farneback(pyr_scale=0.5,levels=3,winsize=15,iterations=3,poly_n=5,poly_sigma=1.2)"
        "+tsn_image(bound=20.0)"
    )
    with pytest.raises(ValueError, match=r"^pyr_scale \(1.0\) must be in \(0, 1\)$"):
        FlowConfig(pyr_scale=1.0)
    with pytest.raises(ValueError, match=r"^poly_n \(6\) must be 5 or 7$"):
        FlowConfig(poly_n=6)
    with pytest.raises(
        ValueError, match=r"^frame_a \(8, 8, 3\) and frame_b \(8, 9, 3\) differ in shape$"
    ):
        farneback_flow(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"^frame_a must be \(H, W, 3\) uint8, got \(8, 8\) uint8$"
    ):
        farneback_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
