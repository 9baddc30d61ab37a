import pytest
import torch

from hybrid_models.training.loop import TrainConfig, fit
from pipelines.training.common import (
    EpochRecorder,
    ModelFolder,
    Standardization,
    check_out,
    fold_into_linear,
    generator,
    stage_finished,
    start_run,
)


def test_generators_are_pure_functions_of_seed_and_stream():
    before = torch.get_rng_state()
    draw = lambda *key: torch.randint(0, 10**9, (4,), generator=generator(*key)).tolist()  # noqa: E731
    assert draw(0, 1, 5) == draw(0, 1, 5)
    assert (
        len({tuple(draw(*key)) for key in [(0, 1, 5), (0, 1, 6), (0, 2, 5), (1, 1, 5), (1, 0, 5)]})
        == 5
    )
    assert torch.equal(before, torch.get_rng_state())


def test_standardization_floors_dead_dimensions_and_folds_exactly():
    frames = torch.tensor([[0.0, 1.0, 5.0], [2.0, 1.0, 7.0], [4.0, 1.0, 9.0]])
    norm = Standardization.of(frames)
    assert norm.mean.tolist() == [2.0, 1.0, 7.0]
    # std (2, 0, 2): the constant dimension gets a floor of 0.1 · median (2) instead of 0.
    assert norm.std.tolist() == pytest.approx([2.0, 0.2, 2.0])
    weight, bias = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    folded_weight, folded_bias = fold_into_linear(weight, bias, norm)
    x = torch.randn(5, 3, dtype=torch.float64)
    expected = norm.apply(x.float()).double() @ weight.T + bias
    assert torch.allclose(x @ folded_weight.T + folded_bias, expected, atol=1e-5)


def test_check_out_and_recorder(tmp_path):
    folder = ModelFolder(str(tmp_path / "m"))
    settings = {"model": "lstm", "epochs": 2, "learning_rate": 0.1}
    with pytest.raises(ValueError, match="has no training state to resume from"):
        check_out(folder, settings, resume=True)
    start_run(folder, settings, resume=False)
    model = torch.nn.Linear(2, 1)
    batches = lambda epoch: [{"x": torch.ones(3, 2), "y": torch.zeros(3, 1)}]  # noqa: E731
    loss = lambda m, b: (torch.nn.functional.mse_loss(m(b["x"]), b["y"]), {})  # noqa: E731
    recorder = EpochRecorder(folder)
    result = fit(
        model, train_batches=batches, loss_fn=loss, val_fn=None,
        config=TrainConfig(epochs=2, monitor="train_loss", progress=False),
        on_epoch_end=recorder.callback("train"),
    )  # fmt: skip
    assert [r["stage"] for r in recorder.records] == ["train", "train"]
    assert (tmp_path / "m" / "training_log.jsonl").read_text().count("\n") == 2
    assert folder.load_state("train").epoch == 2
    assert stage_finished(folder.load_state("train"), epochs=2, patience=None)
    assert not stage_finished(result.state, epochs=3, patience=None)
    with pytest.raises(ValueError, match="holds the state of an unfinished run; pass --resume"):
        check_out(folder, settings, resume=False)
    with pytest.raises(ValueError, match="with other settings: learning_rate changed"):
        check_out(folder, {**settings, "learning_rate": 0.2, "epochs": 9}, resume=True)
    check_out(folder, {**settings, "epochs": 9}, resume=True)  # more epochs is a resume
