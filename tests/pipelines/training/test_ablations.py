import json
from pathlib import Path

import pytest

from pipelines.training import ablations

CONFIG = """
[defaults]
epochs = 3
batch_size = 8
learning_rate = 0.01

[feature_sets]
tiny = ""

[[variants]]
name = "LSTM, last state"
model = "lstm"
feature_set = "tiny"

[[variants]]
name = "mean pooling"
model = "mean_pool"
feature_set = "tiny"
epochs = 2
"""


def test_ablate_writes_the_comparison_table(tiny_features, tmp_path, vidpipe, capsys):
    features, manifest = tiny_features
    config = tmp_path / "ablation.toml"
    config.write_text(CONFIG)
    out = tmp_path / "ablation"
    args = ["ablate", str(config), "--manifest", manifest, "--out", str(out)]
    assert vidpipe(*args, "--feature-set", f"tiny={features}") == 0
    table = json.loads((out / "ablations.json").read_text())
    assert [row["variant"] for row in table["rows"]] == ["LSTM, last state", "mean pooling"]
    assert table["columns"][:7] == [
        "variant", "model", "feature_set", "inputs", "parameters", "train_seconds", "test_top_1",
    ]  # fmt: skip
    assert all(0 <= row["test_top_1"] <= 1 for row in table["rows"])
    assert json.loads((out / "models" / "mean-pooling" / "model.json").read_text())["model"] == (
        "mean_pool"
    )
    markdown = (out / "ablations.md").read_text()
    assert markdown.splitlines()[0].startswith("| variant | model | feature_set |")
    assert "| mean pooling | mean_pool | tiny | features |" in markdown
    assert "wrote " in capsys.readouterr().out
    # A second run reads the trained variants back instead of training them again.
    weights = out / "models" / "mean-pooling" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert vidpipe(*args, "--feature-set", f"tiny={features}") == 0
    assert weights.stat().st_mtime_ns == before
    assert json.loads((out / "ablations.json").read_text()) == table


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        (CONFIG, [], "variant 'LSTM, last state' uses feature set 'tiny', which has no folder"),
        (CONFIG.replace('model = "lstm"', 'model = "lsm"'), ["tiny=x"], "model 'lsm' is not one"),
        (CONFIG + "\n[extra]\n", ["tiny=x"], "unknown top-level key(s) extra"),
        (CONFIG.replace("epochs = 2", "epoch = 2"), ["tiny=x"], "unknown key(s) epoch"),
        ("[defaults\n", [], "is not valid TOML"),
    ],
)
def test_bad_ablation_configs_are_usage_errors(
    tiny_features, tmp_path, vidpipe, capsys, text, flags, message
):
    _, manifest = tiny_features
    config = tmp_path / "bad.toml"
    config.write_text(text)
    feature_flags = [f for flag in flags for f in ("--feature-set", flag)]
    args = ["ablate", str(config), "--manifest", manifest, "--out", str(tmp_path / "o")]
    code = vidpipe(*args, *feature_flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_table_markdown_formats_cells():
    table = ablations.comparison_table(
        [{"variant": "a|b", "parameters": 1234, "test_top_1": 0.5}, {"variant": "c", "x": None}]
    )
    assert table["columns"] == ["variant", "parameters", "test_top_1", "x"]
    assert ablations.table_markdown(table).splitlines()[2:] == [
        "| a\\|b | 1,234 | 0.500 |  |",
        "| c |  |  |  |",
    ]


def test_the_shipped_benchmark_config_is_valid(tiny_features):
    _, manifest = tiny_features
    path = Path(ablations.__file__).parents[1] / "jobs" / "action_ablations.toml"
    config = ablations.load_config(
        str(path), manifest=manifest, out="o", feature_sets={"pretrained": "p", "random": "r"}
    )
    models = {v.model for v in config.variants}
    assert {"lstm", "gru", "lstm_attention", "mean_pool", "two_stream", "convlstm"} <= models
    assert {"two_stream_attention_fusion", "segments", "bilstm"} <= models
    assert any(v.spatial for v in config.variants) and any(
        v.stream == "flow" for v in config.variants
    )
    assert len(ablations.plan_ablation(config)) == len(config.variants)
