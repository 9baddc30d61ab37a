import numpy as np
import pytest
import torch
import torchvision.models as tvm
from torch import nn

from hybrid_models.backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    build_backbone,
    extract,
)
from hybrid_models.small_cnn import SmallCNNConfig, build_small_cnn

# Written out here rather than read from BACKBONES, so a wrong spec cannot agree with itself.
EXPECTED_DIMS = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
    "efficientnet_b0": 1280,
    "vgg16": 4096,
    "vit_b_16": 768,
    "small_cnn": 128,
    "small_cnn_grid": 512,
}
# What to cut from torchvision's own model so that its forward() returns the pooled vector,
# and which module's output is the spatial map.
REFERENCE_CUTS = {
    "resnet18": (["fc"], "layer4"),
    "resnet34": (["fc"], "layer4"),
    "resnet50": (["fc"], "layer4"),
    "mobilenet_v3_small": (["classifier"], "features"),
    "mobilenet_v3_large": (["classifier"], "features"),
    "efficientnet_b0": (["classifier"], "features"),
    "vgg16": (["classifier.5", "classifier.6"], "features"),
    "vit_b_16": (["heads"], "encoder"),
}


def assert_close_to_scale(actual, expected, tolerance=1e-4):
    """Equal up to float reordering (NHWC vs NCHW kernels), relative to the values' scale."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=tolerance * scale)


def same_numbers(a, b) -> bool:
    a_state, b_state = a.state_dict(), b.state_dict()
    return a_state.keys() == b_state.keys() and all(
        torch.equal(a_state[k], b_state[k]) for k in a_state
    )


def frames(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


def torchvision_reference(name: str, extractor) -> tuple[nn.Module, dict]:
    """torchvision's own model holding the extractor's numbers, head cut, spatial map hooked."""
    cuts, spatial_module = REFERENCE_CUTS[name]
    with torch.device("meta"):
        model = getattr(tvm, name)()
    for cut in cuts:
        parent, _, child = cut.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
    state = {k: v.contiguous() for k, v in extractor.model.state_dict().items()}
    model.load_state_dict(state, strict=True, assign=True)
    seen = {}
    model.get_submodule(spatial_module).register_forward_hook(
        lambda module, inputs, output: seen.__setitem__("spatial", output)
    )
    return model.eval(), seen


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_contract(name):
    spec = BACKBONES[name]
    size = 224 if name == "vit_b_16" else 72  # 72/32 = 2.25 tells ceil from floor
    batch = 1 if name == "vit_b_16" else 2
    x = frames(batch, size)
    rng_before = torch.get_rng_state()
    first = build_backbone(name, weights=None, seed=0, spatial_map=True, input_size=size)
    again = build_backbone(name, weights=None, seed=0, spatial_map=True, input_size=size)
    other = build_backbone(name, weights=None, seed=1, spatial_map=True, input_size=size)
    pooled, spatial = extract(first, x)
    assert torch.equal(torch.get_rng_state(), rng_before)
    # Equal numbers give equal outputs; comparing them spares two forward passes.
    assert same_numbers(first, again) and not same_numbers(first, other)

    assert first.feature_dim == EXPECTED_DIMS[name]
    assert pooled.shape == (batch, EXPECTED_DIMS[name]) and pooled.dtype == np.float32
    assert first.spatial_shape == spec.spatial_map_shape(size)
    assert spatial.shape == (batch, *first.spatial_shape) and spatial.dtype == np.float32
    assert np.isfinite(pooled).all() and np.isfinite(spatial).all()
    assert first.weights_digest == "init-seed:0" and other.weights_digest == "init-seed:1"
    assert not first.training and first.input_size == size

    if name in REFERENCE_CUTS:
        reference, seen = torchvision_reference(name, first)
        with torch.inference_mode():
            expected_pooled = reference(x)
        expected_spatial = seen["spatial"]
        if name == "vit_b_16":
            expected_spatial = expected_spatial[:, 1:].transpose(1, 2).reshape(1, 768, 14, 14)
        assert_close_to_scale(pooled, expected_pooled)
        assert_close_to_scale(spatial, expected_spatial)
    else:  # small_cnn: pooled is the plain or 2×2-grid average of the spatial map
        grid = 2 if name == "small_cnn_grid" else 1
        expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(spatial), grid)
        assert_close_to_scale(pooled, expected.flatten(1))


@pytest.mark.parametrize(
    ("name", "size", "shape"),
    [
        ("resnet18", 224, (512, 7, 7)),
        ("resnet18", 100, (512, 4, 4)),
        ("resnet50", 112, (2048, 4, 4)),
        ("mobilenet_v3_small", 100, (576, 4, 4)),
        ("efficientnet_b0", 224, (1280, 7, 7)),
        ("vgg16", 100, (512, 3, 3)),
        ("vit_b_16", 224, (768, 14, 14)),
        ("small_cnn", 64, (128, 8, 8)),  # first block at full resolution
        ("small_cnn", 112, (128, 14, 14)),
        ("small_cnn_grid", 100, (128, 13, 13)),
    ],
)
def test_spatial_map_shape_without_running(name, size, shape):
    assert BACKBONES[name].spatial_map_shape(size) == shape


def test_spatial_map_off_gives_none():
    extractor = build_backbone("small_cnn", weights=None)
    pooled, spatial = extract(extractor, frames(1, 64).numpy())
    assert spatial is None and extractor.spatial_shape is None and pooled.shape == (1, 128)


def test_preprocessing_without_torchvision_weights():
    assert build_backbone("small_cnn", weights=None).preprocessing == Preprocessing(
        resize_size=64, crop_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    resnet = build_backbone("resnet18", weights=None, input_size=112)
    assert resnet.preprocessing == Preprocessing(
        resize_size=112,
        crop_size=112,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        interpolation="bilinear",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 0}, r"crop_size \(0\) must be > 0"),
        ({"resize_size": 60}, r"resize_size \(60\) must be >= crop_size \(64\)"),
        ({"std": (0.2, 0.0, 0.2)}, r"std \(0.2, 0.0, 0.2\) must be > 0"),
        ({"mean": (0.5,)}, r"mean \(0.5,\) and std .* must have 3 values each"),
        (
            {"interpolation": "area"},
            "interpolation 'area' is not one of nearest, bilinear, bicubic",
        ),
    ],
)
def test_preprocessing_rejects(kwargs, message):
    values = dict(resize_size=64, crop_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Preprocessing(**values)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu_is_close_to_fp32(precision):
    extractor = build_backbone("resnet18", weights=None, input_size=64, spatial_map=True)
    x = frames(2, 64)
    exact, _ = extract(extractor, x)
    reduced, spatial = extract(extractor, x, precision=precision)
    assert reduced.dtype == np.float32 and spatial.dtype == np.float32
    assert not np.array_equal(reduced, exact)  # autocast really ran
    relative_error = np.linalg.norm(reduced - exact) / np.linalg.norm(exact)
    assert relative_error < 0.05


def test_build_rejects():
    with pytest.raises(ValueError, match="backbone 'resnet9' is not one of resnet18, resnet34"):
        build_backbone("resnet9", weights=None)
    with pytest.raises(ValueError, match=r"input_size \(112\) must be 224"):
        build_backbone("vit_b_16", weights=None, input_size=112)
    with pytest.raises(ValueError, match=r"input_size \(16\) must be >= 32"):
        build_backbone("resnet18", weights=None, input_size=16)
    with pytest.raises(ValueError, match="device 'tpu' is not cpu, cuda or cuda:<index>"):
        build_backbone("small_cnn", weights=None, device="tpu")


def test_extract_rejects():
    extractor = build_backbone("small_cnn", weights=None)
    x = frames(1, 64)
    with pytest.raises(ValueError, match="precision 'fp8' is not one of fp32, bf16, fp16"):
        extract(extractor, x, precision="fp8")
    with pytest.raises(
        ValueError, match=r"small_cnn takes \(B, 3, 64, 64\) input, got \(1, 3, 72, 72\)"
    ):
        extract(extractor, frames(1, 72))
    with pytest.raises(
        ValueError, match="batch must be float .preprocessed frames., got torch.uint8"
    ):
        extract(extractor, torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(
        ValueError, match=r"extractor small_cnn is in training mode; call .eval\(\) first"
    ):
        extract(extractor.train(), x)


def test_gpu_asked_for_is_never_a_cpu_fallback():
    extractor = build_backbone("small_cnn", weights=None)
    if torch.cuda.is_available():
        message = r"extractor small_cnn is on cpu, not on device cuda:0; build it with"
    else:
        message = "device 'cuda' was asked for but torch sees no CUDA GPU"
    with pytest.raises(ValueError, match=message):
        extract(extractor, frames(1, 64), device="cuda")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": ()}, "widths must name at least one block"),
        ({"widths": (8, 0)}, r"widths \(8, 0\) must all be > 0"),
        ({"pool_grid": 0}, r"pool_grid \(0\) must be > 0"),
        ({"num_classes": 0}, r"num_classes \(0\) must be > 0 or None"),
        ({"dropout": 1.0}, r"dropout \(1.0\) must be in \[0, 1\)"),
    ],
)
def test_small_cnn_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmallCNNConfig(**kwargs)


def test_small_cnn_size_and_seeding():
    config = SmallCNNConfig(num_classes=4)
    rng_before = torch.get_rng_state()
    model = build_small_cnn(config, seed=5)
    same = build_small_cnn(config, seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert same_numbers(model, same)
    num_params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= num_params <= 300_000
    assert SmallCNNConfig().feature_dim == 128 and SmallCNNConfig(pool_grid=2).feature_dim == 512


def blob_frames(num_frames: int, size: int, generator: torch.Generator):
    """Frames with one bright square in the left or the right half; label 0 = left, 1 = right."""
    x = torch.zeros(num_frames, 3, size, size)
    labels = torch.arange(num_frames) % 2
    half = size // 2
    for index, label in enumerate(labels.tolist()):
        top = int(torch.randint(0, size - 6, (1,), generator=generator))
        left = int(torch.randint(0, half - 6, (1,), generator=generator)) + label * half
        x[index, :, top : top + 6, left : left + 6] = 1.0
    return x, labels


def test_small_cnn_classifier_trains_on_a_position_task():
    generator = torch.Generator().manual_seed(0)
    x, labels = blob_frames(16, 32, generator)
    model = build_small_cnn(SmallCNNConfig(num_classes=2), seed=0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(15):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        if step == 0:
            no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
            assert no_grad == []
        optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(x).argmax(1) == labels).float().mean().item()
    assert accuracy == 1.0


def test_small_cnn_first_stride_keeps_the_first_block_at_full_resolution():
    for first_stride, side in ((2, 3), (1, 6)):
        config = SmallCNNConfig(first_stride=first_stride)
        cnn = build_small_cnn(config, seed=0).eval()
        with torch.no_grad():
            pooled, spatial = cnn.forward_features(torch.randn(2, 3, 48, 48))
        assert spatial.shape == (2, 128, side, side) and pooled.shape == (2, 128)
        assert config.stride == 48 // side
    with pytest.raises(ValueError, match=r"first_stride \(3\) must be 1 or 2"):
        SmallCNNConfig(first_stride=3)
