import pytest
import torch

from hybrid_models.attention import AdditiveAttention, AttentionPooling, masked_softmax
from hybrid_models.encoders import RecurrentConfig, RecurrentEncoder
from hybrid_models.sequences import (
    check_mask,
    masked_last,
    masked_mean,
    pad_sequences,
    reverse_padded,
)


def test_pad_sequences_and_reductions():
    a = torch.tensor([[1.0], [2.0], [3.0]])
    b = torch.tensor([[10.0]])
    batch, mask = pad_sequences([a, b])
    assert batch.shape == (2, 3, 1)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert masked_mean(batch, mask).squeeze(1).tolist() == [2.0, 10.0]
    assert masked_last(batch, mask).squeeze(1).tolist() == [3.0, 10.0]
    assert reverse_padded(batch, mask).squeeze(2).tolist() == [[3.0, 2.0, 1.0], [10.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("sequences", "message"),
    [
        ([], "sequences is empty"),
        ([torch.zeros(2, 3), torch.zeros(0, 3)], "sequence 1 has no frames"),
        (
            [torch.zeros(2, 3), torch.zeros(2, 4)],
            r"sequence 1 has shape \(2, 4\), expected \(T, 3\)",
        ),
    ],
)
def test_pad_sequences_rejects(sequences, message):
    with pytest.raises(ValueError, match=message):
        pad_sequences(sequences)


def test_check_mask_rejects_gaps_and_empty_rows():
    features = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="video 1 in the batch has no frames"):
        check_mask(features, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="left-aligned"):
        check_mask(features, torch.tensor([[True, False, True], [True, True, True]]))


def test_masked_softmax_ignores_padding():
    scores = torch.tensor([[1.0, 2.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    weights = masked_softmax(scores, mask)
    expected = torch.softmax(torch.tensor([1.0, 2.0]), dim=0)
    assert torch.allclose(weights[0, :2], expected) and weights[0, 2] == 0


def test_attention_modules_weigh_real_steps_only():
    generator = torch.Generator().manual_seed(0)
    steps = torch.randn(2, 4, 5, generator=generator)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    pooling = AttentionPooling(5, 7)
    context, weights = pooling(steps, mask)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and bool((weights[1, 2:] == 0).all())
    assert torch.allclose(context, torch.einsum("bt,btd->bd", weights, steps))
    additive = AdditiveAttention(5, 3, 7)
    query = torch.randn(2, 3, generator=generator)
    context, weights = additive(steps, mask, query)
    again, _ = additive(steps, mask, query, projected_keys=additive.project_keys(steps))
    assert torch.allclose(context, again)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_encoder_ignores_padding(cell, bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(
        RecurrentConfig(input_dim=3, hidden_dim=4, cell=cell, bidirectional=bidirectional)
    )
    video = torch.randn(1, 3, 3)
    alone_states, alone_final = encoder(video, torch.ones(1, 3, dtype=torch.bool))
    padded = torch.cat([video, torch.randn(1, 2, 3)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    states, final = encoder(padded, mask)
    width = 8 if bidirectional else 4
    assert final.shape == (1, width) and states.shape == (1, 5, width)
    assert torch.allclose(final, alone_final, atol=1e-6)
    assert torch.allclose(states[:, :3], alone_states, atol=1e-6)
    assert bool((states[:, 3:] == 0).all())


def test_recurrent_config_validates():
    with pytest.raises(ValueError, match=r"hidden_dim \(0\) must be > 0"):
        RecurrentConfig(input_dim=3, hidden_dim=0)
    with pytest.raises(ValueError, match="cell 'rnn' must be 'lstm' or 'gru'"):
        RecurrentConfig(input_dim=3, cell="rnn")
