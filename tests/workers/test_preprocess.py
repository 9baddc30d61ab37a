import numpy as np
import pytest
import torch
from torchvision.models import ResNet18_Weights

from workers.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_frames


@pytest.fixture(scope="module")
def reference():
    # The transforms object only; no weights are downloaded.
    return ResNet18_Weights.IMAGENET1K_V1.transforms()


@pytest.mark.parametrize(("height", "width"), [(48, 64), (64, 40), (50, 50)])
def test_matches_torchvision_image_classification(reference, height, width):
    frames = np.random.default_rng(height * width).integers(
        0, 256, (3, height, width, 3), dtype=np.uint8
    )
    out = preprocess_frames(frames, resize=256, crop=224)
    expected = torch.stack([reference(torch.from_numpy(f).permute(2, 0, 1)) for f in frames])
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_downscaling_and_odd_crops_match_too():
    frames = np.random.default_rng(1).integers(0, 256, (2, 90, 120, 3), dtype=np.uint8)
    transform = ResNet18_Weights.IMAGENET1K_V1.transforms(resize_size=37, crop_size=31)
    out = preprocess_frames(torch.from_numpy(frames), resize=37, crop=31)
    expected = torch.stack([transform(torch.from_numpy(f).permute(2, 0, 1)) for f in frames])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_constant_frames_give_known_values():
    frames = np.full((1, 20, 30, 3), (0, 128, 255), dtype=np.uint8)
    out = preprocess_frames(frames, resize=10, crop=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    assert out.shape == (1, 3, 8, 8)
    for channel, value in enumerate([(0 - 0.5) / 0.5, (128 / 255 - 0.5) / 0.25, (1 - 0.5) / 0.5]):
        torch.testing.assert_close(out[0, channel], torch.full((8, 8), value), rtol=0, atol=1e-6)


def test_does_not_touch_its_input():
    frames = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    before = frames.copy()
    preprocess_frames(frames, resize=8, crop=8, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    np.testing.assert_array_equal(frames, before)


def test_bad_arguments():
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^crop \(9\) must be <= resize \(8\)$"):
        preprocess_frames(frames, resize=8, crop=9)
    with pytest.raises(ValueError, match=r"^resize \(0\) must be > 0$"):
        preprocess_frames(frames, resize=0, crop=1)
    with pytest.raises(
        ValueError, match=r"^frames must be \(N, H, W, 3\) uint8, got \(8, 8, 3\) torch.uint8$"
    ):
        preprocess_frames(frames[0], resize=8, crop=8)
    with pytest.raises(ValueError, match=r"^std \(0.2, 0.0, 0.2\) must be finite and > 0$"):
        preprocess_frames(frames, resize=8, crop=8, std=(0.2, 0.0, 0.2))
