"""The caption and VQA entries of the model dict: every preset builds, runs forward and backward,
and round-trips through a checkpoint exactly."""

import pytest
import torch

from hybrid_models.checkpoints import load_checkpoint, save_checkpoint
from hybrid_models.zoo import MODELS, build_model

LANGUAGE_MODELS = sorted(name for name, entry in MODELS.items() if entry.task in ("caption", "vqa"))
SIZES = {
    "caption": {"feature_dim": 8, "vocab_size": 12, "embed_dim": 6, "hidden_dim": 8, "attention_dim": 5},
    "vqa": {"feature_dim": 8, "question_vocab_size": 12, "num_answers": 5, "embed_dim": 6, "hidden_dim": 8,
            "attention_dim": 5, "fusion_dim": 8, "bilinear_dim": 4},
}  # fmt: skip


def inputs(task, generator):
    features = torch.randn(3, 5, 8, generator=generator)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    tokens = torch.randint(4, 12, (3, 4), generator=generator)
    return features, mask, tokens


def outputs(task, model, features, mask, tokens):
    result = model(features, mask, tokens)
    if task == "caption":
        caption = getattr(result, "caption", result)
        return caption.logits
    return result.logits


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_language_entries_train_and_round_trip(name):
    task = MODELS[name].task
    extra = {"num_actions": 4} if name == "caption_multitask" else {}
    model = build_model(name, seed=3, **SIZES[task], **extra)
    features, mask, tokens = inputs(task, torch.Generator().manual_seed(0))
    result = model(features, mask, tokens)
    logits = outputs(task, model, features, mask, tokens)
    assert torch.isfinite(logits).all()
    loss = logits.square().mean()
    if hasattr(result, "action_logits"):  # the multi-task captioner's second head
        loss = loss + result.action_logits.square().mean()
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert missing == []
    weights, meta = save_checkpoint(model, model.config, extra={"task": task}, name=name)
    loaded, config = load_checkpoint(weights, meta)
    model.eval()
    assert meta["task"] == task and config == model.config
    assert torch.equal(
        outputs(task, model, features, mask, tokens), outputs(task, loaded, features, mask, tokens)
    )
