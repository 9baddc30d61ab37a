import hashlib
import io
import re
import urllib.request
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import safetensors.torch
import torch
import torchvision.models as tvm
from torch import nn

from hybrid_models.backbones import Preprocessing, build_backbone, extract
from hybrid_models.small_cnn import SmallCNNConfig, build_small_cnn
from hybrid_models.weights import (
    hub_checkpoint_path,
    load_weights,
    load_weights_bytes,
    state_dict_digest,
    torchvision_weights,
)

RESNET18_FILE = "resnet18-f37072fd.pth"  # basename of ResNet18_Weights.IMAGENET1K_V1.url


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A whole random resnet18 classification state dict (head and BN counters included)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(7)
        model = tvm.resnet18()
    return model.state_dict()


def read_weights(uri: str) -> bytes:
    """The caller's side of reading weights, as workers/ will do it: any fsspec URL."""
    with fsspec.open(uri, "rb") as file:
        return file.read()


def torch_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def frames(batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def resnet18_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Pooled features computed by torchvision's resnet18 itself."""
    model = tvm.resnet18()
    model.load_state_dict(state)
    model.fc = nn.Identity()
    with torch.inference_mode():
        return model.eval()(x)


def test_cached_torchvision_name_loads_the_file_torchvision_would(torch_home, resnet18_state):
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(resnet18_state, checkpoints / RESNET18_FILE)

    weights = load_weights("resnet18", "IMAGENET1K_V1")
    assert weights.source == "ResNet18_Weights.IMAGENET1K_V1"
    assert weights.torchvision_weights is tvm.ResNet18_Weights.IMAGENET1K_V1
    assert hub_checkpoint_path(tvm.ResNet18_Weights.IMAGENET1K_V1) == checkpoints / RESNET18_FILE
    for alias in ("DEFAULT", "ResNet18_Weights.IMAGENET1K_V1"):
        assert load_weights("resnet18", alias).digest == weights.digest

    extractor = build_backbone("resnet18", weights=weights)
    assert extractor.weights_digest == weights.digest
    assert extractor.preprocessing == Preprocessing(
        resize_size=256,
        crop_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        interpolation="bilinear",
    )
    x = frames(1, 224)
    pooled, _ = extract(extractor, x)
    expected = resnet18_reference(resnet18_state, x)
    torch.testing.assert_close(torch.from_numpy(pooled), expected, rtol=1e-4, atol=1e-5)

    smaller = build_backbone("resnet18", weights=weights, input_size=112)
    assert (smaller.preprocessing.resize_size, smaller.preprocessing.crop_size) == (128, 112)


def test_uncached_name_without_network_is_one_line_error(torch_home, monkeypatch):
    path = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    expected = (
        f"weights ResNet18_Weights.IMAGENET1K_V1 for resnet18 are not at {path} "
        "(downloads are off); download https://download.pytorch.org/models/resnet18-f37072fd.pth "
        "where there is internet and copy it to that path "
        "(TORCH_HOME decides the folder: $TORCH_HOME/hub/checkpoints)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_weights("resnet18", "IMAGENET1K_V1", download=False)

    # A download that really fails, whatever network CI has: an unreachable proxy.
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setattr(urllib.request, "_opener", None)  # so urlopen reads the proxy anew
    before, after = expected.split("(downloads are off)")
    failed = f"^{re.escape(before)}\\(download failed: URLError: [^\\n]*\\){re.escape(after)}$"
    with pytest.raises(ValueError, match=failed):
        load_weights("resnet18", "DEFAULT")
    assert not path.exists()


def test_safetensors_and_torch_save_give_same_digest_and_features(tmp_path, resnet18_state):
    # A DataParallel-style prefix, the classifier head and BN counters must not matter.
    wrapped = {f"module.{key}": value for key, value in resnet18_state.items()}
    from_pt = load_weights_bytes("resnet18", torch_bytes(wrapped), "w/resnet18.pt")
    trunk = {k: v for k, v in resnet18_state.items() if not k.startswith("fc.")}
    trunk = {k: v for k, v in trunk.items() if not k.endswith("num_batches_tracked")}
    uri = f"memory://{uuid.uuid4().hex}/resnet18.safetensors"
    fsspec.filesystem("memory").pipe(uri, safetensors.torch.save(trunk))
    from_safetensors = load_weights("resnet18", uri, read_bytes=read_weights)
    local = tmp_path / "resnet18.pt"
    torch.save(resnet18_state, local)
    from_path = load_weights("resnet18", str(local))

    assert from_pt.digest == from_safetensors.digest == from_path.digest
    assert from_pt.digest == state_dict_digest(trunk)
    assert from_safetensors.source == uri and from_safetensors.torchvision_weights is None
    x = frames(2, 64)
    features = [
        extract(build_backbone("resnet18", weights=w, input_size=64), x)[0]
        for w in (from_pt, from_safetensors)
    ]
    np.testing.assert_array_equal(features[0], features[1])
    assert features[0].shape == (2, 512)

    changed = dict(trunk, **{"conv1.weight": trunk["conv1.weight"] + 1e-3})
    half = {key: value.half() for key, value in trunk.items()}
    assert state_dict_digest(changed) != from_pt.digest
    assert state_dict_digest(half) != from_pt.digest


def test_digest_follows_its_documented_recipe():
    state = {"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([[3]], dtype=torch.int64)}
    hasher = hashlib.sha256()
    hasher.update(b"a\0int64\0(1, 1)\0" + np.array([[3]], dtype="<i8").tobytes())
    hasher.update(b"b\0float32\0(2,)\0" + np.array([1.0, 2.0], dtype="<f4").tobytes())
    assert state_dict_digest(state) == f"sha256:{hasher.hexdigest()}"
    assert state_dict_digest(dict(reversed(state.items()))) == state_dict_digest(state)


def _touch(path: Path) -> None:
    path.touch()


class _Payload:
    """Runs code when unpickled, as a malicious checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


class _Config:
    def __init__(self) -> None:
        self.epochs = 3


def test_pickled_objects_are_refused(tmp_path):
    marker = tmp_path / "executed"
    data = torch_bytes({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)})
    with pytest.raises(
        ValueError,
        match=re.escape(
            "weights evil.pt were refused: they hold more than tensors and plain containers "
            "(Unsupported global: GLOBAL tests.hybrid_models.test_weights._touch was not an "
            "allowed global by default); save a plain state dict or .safetensors"
        ),
    ):
        load_weights_bytes("resnet18", data, "evil.pt")
    assert not marker.exists()
    config = torch_bytes({"conv1.weight": torch.zeros(1), "config": _Config()})
    with pytest.raises(ValueError, match=r"GLOBAL tests\.hybrid_models\.test_weights\._Config"):
        load_weights_bytes("resnet18", config, "config.pt")


@pytest.mark.parametrize(
    ("data", "source", "message"),
    [
        (torch_bytes([torch.zeros(1)]), "list.pt", r"state dict \(names to tensors\), got list"),
        (
            torch_bytes({"conv1.weight": torch.zeros(1), "epoch": 3, "lr": 0.1}),
            "ckpt.pt",
            r"weights ckpt.pt must be a state dict \(names to tensors\); not tensors: epoch, lr",
        ),
        (
            b"not a checkpoint",
            "junk.pt",
            "weights junk.pt are not a torch.save file: Unsupported operand 110",
        ),
        (b"\x80\x02}q\x00.", "old.pt", "weights old.pt are not a torch.save file: Invalid magic"),
        (b"", "empty.pt", "weights empty.pt are not a torch.save file: empty file"),
        (b"junk", "junk.safetensors", "weights junk.safetensors are not a valid safetensors file"),
    ],
)
def test_not_a_state_dict_is_refused(data, source, message):
    with pytest.raises(ValueError, match=message):
        load_weights_bytes("resnet18", data, source)


def test_wrong_architecture_names_keys(resnet18_state):
    # resnet34's extra blocks hold 80 tensors besides BatchNorm step counters.
    with torch.device("meta"):
        resnet34 = tvm.resnet34().state_dict()
    resnet34 = {key: torch.zeros(value.shape) for key, value in resnet34.items()}
    with pytest.raises(
        ValueError,
        match=re.escape(
            "weights r34.pt do not fit resnet18: unexpected layer1.2.conv1.weight, "
            "layer1.2.bn1.weight, layer1.2.bn1.bias and 77 more"
        ),
    ):
        load_weights_bytes("resnet18", torch_bytes(resnet34), "r34.pt")

    no_layer4 = {k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}
    # layer4 holds 25 tensors besides its BatchNorm step counters.
    with pytest.raises(ValueError, match=r"missing layer4\.0\.conv1\.weight, .* and 22 more$"):
        load_weights_bytes("resnet18", torch_bytes(no_layer4), "cut.pt")

    plain_cnn = build_small_cnn(SmallCNNConfig(coord_conv=False), seed=0).state_dict()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "weights plain.pt do not fit small_cnn: wrong shape blocks.0.0.weight "
            "(32, 3, 3, 3) (expected (32, 5, 3, 3))"
        ),
    ):
        load_weights_bytes("small_cnn", torch_bytes(plain_cnn), "plain.pt")


def test_small_cnn_classifier_weights_serve_both_small_cnn_backbones():
    classifier = build_small_cnn(SmallCNNConfig(num_classes=5, first_stride=1), seed=3).eval()
    data = safetensors.torch.save(classifier.state_dict())
    x = frames(2, 64)
    with torch.inference_mode():
        _, expected_spatial = classifier.forward_features(x)
    for name in ("small_cnn", "small_cnn_grid"):
        weights = load_weights_bytes(name, data, "frames.safetensors")
        assert not any(key.startswith("head.") for key in weights.state_dict)
        extractor = build_backbone(name, weights=weights, spatial_map=True)
        assert extractor.preprocessing.crop_size == 64
        _, spatial = extract(extractor, x)
        torch.testing.assert_close(torch.from_numpy(spatial), expected_spatial)


def test_legacy_vit_key_names_load_under_current_names():
    # Older torchvision ViT checkpoints name MLP layers linear_1/linear_2; torchvision
    # renames them on load, and so must we, so that both spell the same digest.
    with torch.device("meta"):
        shapes = tvm.vit_b_16().state_dict()
    # Broadcast views of one number: torch.save keeps them tiny, the checks see full shapes.
    current = {key: torch.zeros(1).expand(value.shape) for key, value in shapes.items()}
    legacy = {
        key.replace(".mlp.0.", ".mlp.linear_1.").replace(".mlp.3.", ".mlp.linear_2."): value
        for key, value in current.items()
    }
    from_legacy = load_weights_bytes("vit_b_16", torch_bytes(legacy), "old-vit.pt")
    assert "encoder.layers.encoder_layer_0.mlp.0.weight" in from_legacy.state_dict
    assert (
        from_legacy.digest == load_weights_bytes("vit_b_16", torch_bytes(current), "vit.pt").digest
    )


def test_non_finite_weights_are_refused(resnet18_state):
    broken = dict(resnet18_state, **{"layer1.0.conv1.weight": torch.full((64, 64, 3, 3), np.nan)})
    with pytest.raises(
        ValueError, match="weights nan.pt hold non-finite values in layer1.0.conv1.weight$"
    ):
        load_weights_bytes("resnet18", torch_bytes(broken), "nan.pt")


@pytest.mark.parametrize(
    ("backbone", "weights", "message"),
    [
        (
            "resnet18",
            "IMAGENET1K_V9",
            r"weights 'IMAGENET1K_V9' are not torchvision weights of resnet18; known: DEFAULT, "
            r"IMAGENET1K_V1 \(alone or as ResNet18_Weights.<NAME>\)",
        ),
        ("resnet18", "ResNet50_Weights.IMAGENET1K_V2", "are not torchvision weights of resnet18"),
        ("small_cnn", "DEFAULT", "small_cnn has no torchvision weights; use 'none' or a file"),
        (
            "vit_b_16",
            "IMAGENET1K_SWAG_E2E_V1",
            "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1 take 384-px input but vit_b_16 here "
            "takes 224 px only",
        ),
        (
            "resnet18",
            "no/such/file.pt",
            "weights 'no/such/file.pt' are neither 'none', a torchvision weights name "
            "nor an existing file",
        ),
        ("resnet18", "s3://bucket/w.pt", "are a URL; pass read_bytes"),
        ("resnet9", "none", "backbone 'resnet9' is not one of"),
    ],
)
def test_load_weights_rejects(backbone, weights, message):
    with pytest.raises(ValueError, match=message):
        load_weights(backbone, weights)


def test_none_is_random_init_and_weights_stay_with_their_backbone(resnet18_state):
    assert load_weights("resnet18", "none") is None
    assert torchvision_weights("vgg16", "DEFAULT") is tvm.VGG16_Weights.IMAGENET1K_V1
    weights = load_weights_bytes("resnet18", torch_bytes(resnet18_state), "r18.pt")
    with pytest.raises(ValueError, match="weights r18.pt were loaded for resnet18, not resnet34"):
        build_backbone("resnet34", weights=weights)
