"""Backbone weights: torchvision names from the torch hub cache, or state-dict bytes, checked
against the architecture and digested so that equal numbers give an equal feature-set id.

Only safetensors and `torch.load(weights_only=True)` ever read weights: a file is untrusted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import safetensors
import safetensors.torch
import torch
from torchvision.models import WeightsEnum, get_model_weights

from hybrid_models.backbones import BackboneSpec, backbone_spec, headless_model

logger = logging.getLogger(__name__)

# Wrappers that prefix every key: DataParallel/DistributedDataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# A weights NAME (DEFAULT, IMAGENET1K_V1, ResNet18_Weights.IMAGENET1K_V1), never a file.
_WEIGHTS_NAME = re.compile(r"(\w+_Weights\.)?[A-Z][A-Z0-9_]*")
# BatchNorm's step counter: it never changes eval-mode outputs, so it is neither
# required in a file nor part of the digest.
_STEP_COUNTER = "num_batches_tracked"
_NUM_KEYS_SHOWN = 3


@dataclass(frozen=True, kw_only=True, eq=False)
class LoadedWeights:
    """A checked state dict for one backbone, without its classifier head."""

    backbone: str
    state_dict: dict[str, torch.Tensor]  # torchvision's key names; do not modify
    digest: str  # "sha256:<hex>" of the tensors, whatever file format held them
    source: str  # where they came from, for people (a name, a path or a URL)
    torchvision_weights: WeightsEnum | None = None  # set for torchvision names: transforms


def load_weights(
    backbone_name: str,
    weights: str,
    *,
    download: bool = True,
    read_bytes: Callable[[str], bytes] | None = None,
) -> LoadedWeights | None:
    """Weights for `backbone_name`: "none" (None: random init), a torchvision name, or a file.

    Torchvision names ("DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1") load from
    torch hub's cache, downloading like torchvision when `download` is true. Anything else is
    a file: a local path, or any URL when `read_bytes` reads it (the caller's fsspec). A file
    whose name looks like a weights name (capitals only) needs a "./" in front.
    """
    spec = backbone_spec(backbone_name)
    if weights == "none":
        return None
    if _WEIGHTS_NAME.fullmatch(weights):
        member = torchvision_weights(backbone_name, weights)
        return _load_torchvision(backbone_name, spec, member, download=download)
    if read_bytes is None:
        if "://" in weights:
            raise ValueError(
                f"weights {weights!r} are a URL; pass read_bytes (the caller's fsspec reader)"
            )
        path = Path(weights)
        if not path.is_file():
            raise ValueError(
                f"weights {weights!r} are neither 'none', a torchvision weights name "
                f"nor an existing file"
            )
        data = path.read_bytes()
    else:
        data = read_bytes(weights)
    return load_weights_bytes(backbone_name, data, weights)


def torchvision_weights(backbone_name: str, name: str) -> WeightsEnum:
    """The torchvision weights enum member `name` of `backbone_name`; ValueError otherwise."""
    spec = backbone_spec(backbone_name)
    if spec.torchvision_name is None:
        raise ValueError(f"{backbone_name} has no torchvision weights; use 'none' or a file")
    enum = get_model_weights(spec.torchvision_name)
    try:
        member = enum.verify(name)
    except KeyError:
        known = ", ".join(["DEFAULT", *(m for m in enum.__members__ if m != "DEFAULT")])
        raise ValueError(
            f"weights {name!r} are not torchvision weights of {backbone_name}; known: {known} "
            f"(alone or as {enum.__name__}.<NAME>)"
        ) from None
    crop_size = member.transforms().crop_size[0]
    if spec.fixed_input_size is not None and crop_size != spec.fixed_input_size:
        raise ValueError(
            f"{_full_name(member)} take {crop_size}-px input but {backbone_name} here takes "
            f"{spec.fixed_input_size} px only"
        )
    return member


def hub_checkpoint_path(member: WeightsEnum) -> Path:
    """The file torchvision itself reads `member` from: <torch hub dir>/checkpoints/<url name>."""
    file_name = os.path.basename(urlparse(member.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def load_weights_bytes(backbone_name: str, data: bytes, source: str) -> LoadedWeights:
    """Weights of `backbone_name` from the bytes of a .safetensors or a torch.save file.

    `source` names where they came from; a path ending in .safetensors selects safetensors.
    A full classification state dict is fine: its head is dropped, `module.` prefixes too.
    """
    spec = backbone_spec(backbone_name)
    if urlparse(source).path.endswith(".safetensors"):
        try:
            raw = safetensors.torch.load(data)
        except safetensors.SafetensorError as error:
            raise ValueError(
                f"weights {source} are not a valid safetensors file: {error}"
            ) from None
    else:
        raw = _torch_load(io.BytesIO(data), source)
    return _checked(backbone_name, spec, raw, source, None)


def state_dict_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in sorted key order."""
    hasher = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().to("cpu").contiguous()
        header = f"{key}\0{str(tensor.dtype).removeprefix('torch.')}\0{tuple(tensor.shape)}\0"
        hasher.update(header.encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"sha256:{hasher.hexdigest()}"


def _full_name(member: WeightsEnum) -> str:
    return f"{type(member).__name__}.{member.name}"


def _load_torchvision(
    backbone_name: str, spec: BackboneSpec, member: WeightsEnum, *, download: bool
) -> LoadedWeights:
    path = hub_checkpoint_path(member)
    source = _full_name(member)
    if path.is_file():
        logger.info("loading %s from %s", source, path)
        with path.open("rb") as file:
            raw = _torch_load(file, str(path))
    else:
        reason = "downloads are off"
        raw = None
        if download:
            try:
                # Exactly torchvision's own call (hash checked), so the cache stays shared.
                raw = torch.hub.load_state_dict_from_url(
                    member.url,
                    map_location="cpu",
                    progress=False,
                    check_hash=True,
                    weights_only=True,
                )
            except (OSError, RuntimeError) as error:  # no network, or a hash mismatch
                reason = f"download failed: {type(error).__name__}: {_first_line(str(error))}"
        if raw is None:
            raise ValueError(
                f"weights {source} for {backbone_name} are not at {path} ({reason}); "
                f"download {member.url} where there is internet and copy it to that path "
                f"(TORCH_HOME decides the folder: $TORCH_HOME/hub/checkpoints)"
            )
    return _checked(backbone_name, spec, raw, source, member)


def _torch_load(file: io.BufferedIOBase | io.BytesIO, source: str) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _unpickler_detail(str(error))
        if detail.startswith("Unsupported global"):
            raise ValueError(
                f"weights {source} were refused: they hold more than tensors and plain "
                f"containers ({detail}); save a plain state dict or .safetensors"
            ) from None
        raise ValueError(f"weights {source} are not a torch.save file: {detail}") from None
    except Exception as error:  # corrupt bytes surface as RuntimeError, EOFError, struct.error…
        detail = _first_line(str(error)) or "empty file"
        raise ValueError(f"weights {source} are not a torch.save file: {detail}") from error


def _unpickler_detail(message: str) -> str:
    """The reason inside torch's long weights_only message (which global or opcode)."""
    _, found, rest = message.partition("WeightsUnpickler error:")
    if not found:
        return _first_line(message)
    return _first_line(rest).split(". Please use")[0].rstrip(".")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _checked(
    backbone_name: str,
    spec: BackboneSpec,
    raw: object,
    source: str,
    member: WeightsEnum | None,
) -> LoadedWeights:
    """`raw` as the canonical head-less state dict of `backbone_name`, or a ValueError."""
    state = _plain_state_dict(raw, source)
    head_prefix = spec.head + "."
    kept = {
        key: tensor
        for key, tensor in state.items()
        if not key.startswith(head_prefix) and not key.endswith(_STEP_COUNTER)
    }
    # The architecture on the meta device costs no memory; loading through it applies the
    # models' own key upgrades (ViT's legacy MLP names) and yields torchvision's names.
    with torch.device("meta"):
        model = headless_model(spec)
    expected = model.state_dict()
    problems = []
    wrong_shape = [
        f"{key} {tuple(kept[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in sorted(kept.keys() & expected.keys())
        if kept[key].shape != expected[key].shape
    ]
    if wrong_shape:
        problems.append(_some("wrong shape", wrong_shape))
    else:
        try:
            result = model.load_state_dict(kept, strict=False, assign=True)
        except RuntimeError as error:  # a shape mismatch under a legacy name
            detail = " ".join(str(error).split())
            raise ValueError(f"weights {source} do not fit {backbone_name}: {detail}") from None
        missing = [key for key in result.missing_keys if not key.endswith(_STEP_COUNTER)]
        if missing:
            problems.append(_some("missing", missing))
        if result.unexpected_keys:
            problems.append(_some("unexpected", result.unexpected_keys))
    if problems:
        raise ValueError(f"weights {source} do not fit {backbone_name}: {'; '.join(problems)}")
    canonical = {
        key: tensor for key, tensor in model.state_dict().items() if not key.endswith(_STEP_COUNTER)
    }
    not_finite = [
        key
        for key, tensor in sorted(canonical.items())
        # A float64 sum is non-finite exactly when some element is (it cannot overflow for
        # float32/16 values), and it is faster than an element-wise mask.
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum(dtype=torch.float64))
    ]
    if not_finite:
        raise ValueError(f"weights {source} hold {_some('non-finite values in', not_finite)}")
    return LoadedWeights(
        backbone=backbone_name,
        state_dict=canonical,
        digest=state_dict_digest(canonical),
        source=source,
        torchvision_weights=member,
    )


def _plain_state_dict(raw: object, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"weights {source} must be a state dict (names to tensors), got {type(raw).__name__}"
        )
    not_tensors = sorted(str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"weights {source} must be a state dict (names to tensors); "
            f"{_some('not tensors:', not_tensors)}"
        )
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = str(key)
        while name.startswith(_WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        if name in state:
            raise ValueError(f"weights {source} hold {name} twice once prefixes are removed")
        state[name] = tensor
    return state


def _some(label: str, keys: list[str]) -> str:
    """`label` and the first few `keys`, with the total when some are left out."""
    shown = ", ".join(keys[:_NUM_KEYS_SHOWN])
    more = f" and {len(keys) - _NUM_KEYS_SHOWN} more" if len(keys) > _NUM_KEYS_SHOWN else ""
    return f"{label} {shown}{more}"
