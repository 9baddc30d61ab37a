import multiprocessing
from dataclasses import replace

import numpy as np
import pytest
import torch

from hybrid_models.cnn_rnn import CNNRNNClassifier
from hybrid_models.weights import load_weights
from pipelines.artifacts import read_model, read_training_log
from pipelines.training import action, video3d_table
from pipelines.training import multistage as ms
from pipelines.training.data import load_training_data
from schemas import columns as c
from schemas import read_manifest, resolve_uri
from workers import store
from workers.extract import plan_extract
from workers.extract_config import ExtractConfig
from workers.stages import DecodeSettings, DecodeStage, EmbedSettings, EmbedStage

SAMPLING = "uniform:4"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """24 synthetic videos (32×32, 9 frames): real H.264 files and their manifest."""
    from pipelines.datasets.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth-24")
    config = SynthConfig(num_videos=24, seed=3, size=32, fps=12.0, duration_s=0.75)
    generate_dataset(config, out, num_workers=1)
    return out / "manifest.parquet"


def _config(manifest, out, **overrides):
    settings = dict(
        model="lstm",
        manifest=str(manifest),
        out=str(out),
        sampling=SAMPLING,
        input_size=32,
        multistage=True,
        epochs=2,
        batch_size=8,
        progress=False,
        pretrain=ms.PretrainConfig(epochs=2, pairs_per_video=2, videos_per_batch=8),
        finetune_epochs=1,
        finetune_learning_rate=1e-3,
    )
    return action.ActionTrainConfig(**{**settings, **overrides})


def _extract_without_ray(manifest, root, weights_path):
    """Stage 1's own decode and embed stages, called directly, with the pretrained weights."""
    plan = plan_extract(
        ExtractConfig(
            manifest=str(manifest),
            root=str(root),
            backbone="small_cnn",
            weights=weights_path,
            input_size=32,
            sampling=SAMPLING,
        )
    )
    record = store.create_or_open_feature_set(
        plan.feature_set_uri, plan.spec, feature_dim=plan.feature_dim, spatial_shape=None
    )
    rows = read_manifest(str(manifest)).to_pylist()
    batch = {
        c.VIDEO_ID: np.array([r[c.VIDEO_ID] for r in rows]),
        c.URI: np.array([resolve_uri(r[c.URI], str(manifest)) for r in rows]),
    }
    decode = DecodeStage(
        DecodeSettings(
            sampling=plan.spec.sampling, decoder="auto", rotation="apply", resize_size=32,
            input_size=32, with_flow=False, timeout_s=60.0,
        )
    )  # fmt: skip
    decoded = decode(batch)
    decode.decoder.close()
    embed_settings = EmbedSettings(
        feature_set_uri=plan.feature_set_uri, spec=plan.spec.to_json(), lineage=record, seed=0,
        device="cpu", num_threads=1,
    )  # fmt: skip
    EmbedStage(embed_settings, plan.weights_bytes)(decoded)
    return plan


@pytest.fixture(scope="module")
def multistage_folder(videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("ms-root")
    return action.train(_config(videos, root / "models" / "ms")).model_uri


def test_multistage_writes_a_backbone_that_stage_one_reproduces(
    videos, multistage_folder, tmp_path
):
    loaded = read_model(multistage_folder)
    extra = loaded.extra
    assert loaded.meta["model"] == "lstm" and extra["inputs"] == "features"
    assert [r["stage"] for r in read_training_log(multistage_folder)] == [
        "pretrain", "pretrain", "frozen", "frozen", "finetune",
    ]  # fmt: skip
    weights_path = f"{multistage_folder}/{ms.BACKBONE_FILE}"
    assert load_weights("small_cnn", weights_path).digest.startswith("sha256:")
    assert extra["backbone"]["extract_command"].endswith(
        f"--backbone small_cnn --weights {weights_path} --input-size 32 --sampling {SAMPLING}"
    )
    # `vidpipe extract` with the written weights makes the feature set the model names, and the
    # model scores on those features what it logged.
    plan = _extract_without_ray(videos, tmp_path, weights_path)
    assert plan.spec.feature_set_id == extra["feature_set_id"]
    test_videos = load_training_data(plan.feature_set_uri, str(videos), splits=("test",)).videos
    names = extra["class_names"]
    hits = 0
    with torch.no_grad():
        for video in test_videos:
            features = torch.from_numpy(np.array(video.features))[None]  # (1, T, D)
            mask = torch.ones(features.shape[:2], dtype=torch.bool)
            hits += names[int(loaded.model(features, mask).logits.argmax())] == video.label
    assert hits / len(test_videos) == pytest.approx(extra["test_metrics"]["top_1"])


class Interrupt(Exception):
    pass


def test_multistage_resumes_inside_a_later_stage(videos, tmp_path):
    config = _config(videos, tmp_path / "whole", patience=None)
    action.train(config)

    def stop_in_frozen_stage(stage, state, record):
        if stage == "frozen":
            raise Interrupt

    stopped = _config(videos, tmp_path / "stopped", patience=None)
    with pytest.raises(Interrupt):
        action.train(stopped, on_epoch_end=stop_in_frozen_stage)
    assert sorted(p.name for p in (tmp_path / "stopped" / "state").iterdir()) == [
        "frozen.safetensors",
        "pretrain.safetensors",
    ]
    action.train(replace(stopped, resume=True))
    for name in ("model.safetensors", ms.BACKBONE_FILE):
        assert (tmp_path / "stopped" / name).read_bytes() == (
            tmp_path / "whole" / name
        ).read_bytes()


@pytest.mark.parametrize(("model", "inputs"), [("r3d", "clips"), ("cnn_rnn", "frames")])
def test_pixel_models_train_on_decoded_frames(videos, tmp_path, model, inputs):
    # mc3_18 (11.7M parameters) takes the same clips as r3d_18 (33M) at a third of the cost.
    model_config = {"arch": "mc3_18"} if model == "r3d" else {}
    config = _config(
        videos, tmp_path / model, model=model, multistage=False, epochs=1, input_size=16,
        batch_size=32, model_config=model_config,
    )  # fmt: skip
    summary = action.train(config)
    loaded = read_model(summary.model_uri)
    assert loaded.extra["inputs"] == inputs and loaded.extra["feature_set_id"] is None
    assert loaded.extra["frames"]["sampling"] == SAMPLING
    assert loaded.extra["frames"]["input_size"] == 16
    clips = torch.zeros(2, 3, 4, 16, 16) if model == "r3d" else torch.zeros(2, 4, 3, 16, 16)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert loaded.model(clips, mask).logits.shape == (2, len(loaded.extra["class_names"]))


def test_pair_batches_are_ordered_apart_and_seeded():
    videos = [torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 2, 2)] * 3
    labels = torch.tensor([0, 1, 2])
    spec = ms.FrameSpec(sampling="all", input_size=16, resize_size=16, mean=(0,) * 3, std=(1,) * 3)

    def draw(seed):
        return list(
            ms.pair_batches(
                videos, labels, spec, pairs_per_video=50, videos_per_batch=2,
                generator=torch.Generator().manual_seed(seed), min_gap_fraction=0.25,
            )
        )  # fmt: skip

    batches = draw(0)
    assert [len(b["labels"]) for b in batches] == [100, 50]
    earlier = torch.cat([b["earlier"][:, 0, 0, 0] for b in batches]) * 255  # the frame numbers
    later = torch.cat([b["later"][:, 0, 0, 0] for b in batches]) * 255
    assert bool(((later - earlier).round() >= 2).all())  # ⌈0.25 · 8⌉ frames apart at least
    assert all(torch.equal(a["later"], b["later"]) for a, b in zip(batches, draw(0), strict=True))
    assert not torch.equal(batches[0]["later"], draw(1)[0]["later"])


def test_frame_spec_and_pretrain_config_errors():
    with pytest.raises(ValueError, match=r"input_size \(8\) must be >= 16"):
        ms.FrameSpec(sampling="all", input_size=8, resize_size=8)
    with pytest.raises(ValueError, match=r"min_gap_fraction \(1.0\) must be in \[0, 1\)"):
        ms.PretrainConfig(min_gap_fraction=1.0)
    with pytest.raises(ValueError, match="encoder must be a SmallCNN shaped like the small_cnn"):
        ms.backbone_weights_bytes(torch.nn.Linear(2, 2))


def test_the_3d_table_measures_a_multistage_folder_from_pixels(multistage_folder):
    model, kind = video3d_table.end_to_end_model(multistage_folder)
    assert kind == "frames" and isinstance(model, CNNRNNClassifier)
    contender = video3d_table.Contender(
        name="small_cnn + lstm", model_uri=multistage_folder, num_frames=4, input_size=32
    )
    config = video3d_table.MeasureConfig(batch_size=2, timed_runs=2)
    measured = {}
    for mode in ("train", "infer"):  # the child's body, run here: a spawned process costs seconds
        receiver, sender = multiprocessing.Pipe(duplex=False)
        video3d_table._measure_child(contender, config, mode, sender)
        measured.update(receiver.recv())
    assert measured["parameters"] == sum(p.numel() for p in model.parameters())
    assert measured["clips_per_second"] > 0 and measured["train_added_mib"] >= 0
    row = video3d_table.table_row(contender, measured)
    assert row["input"] == "4×32×32 RGB" and row["zoo_model"] == "lstm"
    assert row["test_top_1"] == read_model(multistage_folder).extra["test_metrics"]["top_1"]
    markdown = video3d_table.table_markdown(video3d_table.build_table_from_rows([row]))
    assert markdown.startswith("| model | zoo_model | input | parameters |")


def _manifest_row(label, labels, count=None, captions=(), questions=()):
    asked = [] if count is None else [("how many objects are there?", count, "count")]
    return {
        c.LABEL: label,
        c.LABELS: labels,
        c.QUESTIONS: [
            {c.QUESTION: q, c.ANSWER: a, c.QUESTION_TYPE: t} for q, a, t in [*asked, *questions]
        ],
        c.CAPTIONS: list(captions),
    }


def test_attribute_targets_are_the_tags_but_the_action_and_the_count_answer():
    rows = [
        _manifest_row("grow", ["grow", "red", "square"], "one"),
        _manifest_row("shrink", ["blue", "circle", "red", "shrink", "square"], "two"),
        _manifest_row("appear", ["appear", "red", "circle"]),  # no count question
    ]
    targets = ms.attribute_targets(rows)
    assert targets.tag_names == ("blue", "circle", "red", "square")
    assert targets.count_names == ("one", "two")
    assert targets.tags.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]]
    assert targets.counts.tolist() == [0, 1, -1]
    # Validation targets in the training names; a name the training split lacks is dropped.
    val = ms.attribute_targets(
        [_manifest_row("grow", ["green", "square", "grow"], "three")], names_of=targets
    )
    assert val.tags.tolist() == [[0, 0, 0, 1]] and val.counts.tolist() == [-1]
    assert targets.select([2, 0]).counts.tolist() == [-1, 0]


def test_bindings_come_from_captions_and_questions_and_unnamed_colours_stay_unknown():
    shape_q = ("what shape is the green object?", "square", "shape")
    colour_q = ("what colour is the triangle that grows?", "red", "colour")
    rows = [
        _manifest_row(
            "grow",
            ["blue", "circle", "green", "grow", "red", "square", "triangle"],
            captions=["A red triangle grows while a blue circle stays", "the triangle grows"],
            questions=[shape_q, colour_q],
        ),
        # Yellow is in the scene but no text says its shape; blue's comes from the question.
        _manifest_row(
            "shrink",
            ["blue", "circle", "shrink", "yellow", "circle"],
            questions=[
                ("what is the shape of the blue object?", "circle", "shape"),
                ("what colour is the object that shrinks?", "yellow", "colour"),
            ],
        ),
    ]
    targets = ms.attribute_targets(rows)
    # Colours and shapes are the answers of colour and shape questions.
    assert targets.colour_names == ("red", "yellow")
    assert targets.shape_names == ("circle", "square")
    # Red's shape (triangle) is no shape answer, so it is not a target; yellow is not named.
    assert targets.bindings.tolist() == [[-1, -1], [-1, -1]]
    rows.append(
        _manifest_row(
            "grow",
            ["blue", "green", "grow", "red", "square", "triangle"],
            captions=["the blue square grows"],
            questions=[("what shape is the red object?", "triangle", "shape")],
        )
    )
    targets = ms.attribute_targets(rows)
    assert targets.colour_names == ("red", "yellow")
    assert targets.shape_names == ("circle", "square", "triangle")
    # Row 0: red triangle from the caption and the colour question; yellow absent -> unknown.
    # Row 1: yellow is in the scene, but nothing binds it -> unknown, not "no circle".
    # Row 2: red triangle from the shape question; blue is no colour answer, so not a target.
    assert targets.bindings.tolist() == [[2, -1], [-1, -1], [2, -1]]
    val = ms.attribute_targets(
        [_manifest_row("grow", ["yellow", "circle", "grow"], captions=["a yellow circle grows"])],
        names_of=targets,
    )
    assert val.bindings.tolist() == [[-1, 0]]


def test_multitask_pair_loss_adds_tags_bindings_and_counts():
    spec = ms.FrameSpec(sampling="all", input_size=16, resize_size=16)
    videos = [torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8) for _ in range(3)]
    colour_q = ("what colour is the object that grows?", "red", "colour")
    targets = ms.attribute_targets(
        [
            _manifest_row("grow", ["circle", "grow", "red"], "one", questions=[colour_q]),
            _manifest_row(
                "shrink",
                ["blue", "shrink", "square"],
                "two",
                questions=[
                    ("what shape is the blue object?", "square", "shape"),
                    ("what colour is the object that shrinks?", "blue", "colour"),
                ],
            ),
            _manifest_row(
                "grow",
                ["blue", "circle", "grow", "red"],
                questions=[("what shape is the red object?", "circle", "shape")],
            ),
        ]
    )
    assert targets.bindings.tolist() == [[-1, -1], [1, -1], [-1, 0]]
    (batch,) = ms.pair_batches(
        videos, torch.tensor([0, 1, 0]), spec, pairs_per_video=2, videos_per_batch=3,
        generator=torch.Generator().manual_seed(0), permute_colours=True, attributes=targets,
    )  # fmt: skip
    order = batch["counts"].tolist()  # videos are shuffled: recover which video each pair is
    assert sorted(order) == [-1, -1, 0, 0, 1, 1] and batch["tags"].shape == (6, 4)
    assert batch["bindings"].shape == (6, 2)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    torch.manual_seed(0)
    model = ms.pretraining_model(encoder, 4, 2, attributes=targets)
    assert model["bindings"].out_features == 2 * 2  # (blue, red) x (circle, square)
    loss, stats = ms.pair_loss(model, batch, attribute_weight=0.5)
    # Independent computation of the same four terms.
    with torch.no_grad():
        f = encoder(torch.cat([batch["earlier"], batch["later"]]))
        pair = torch.nn.functional.cross_entropy(model["head"](f[6:] - f[:6]), batch["labels"])
        true = torch.cat([batch["true_colours"], batch["true_colours"]])
        tags = torch.nn.functional.binary_cross_entropy_with_logits(
            model["tags"](f[true]),
            torch.cat([batch["tags"], batch["tags"]])[true],
            reduction="sum",
        ) / int(true.sum())  # summed over tags, averaged over the frames with true colours
        bound = torch.cat([batch["bindings"], batch["bindings"]])[true]  # (M, 2)
        logits = model["bindings"](f[true]).view(-1, 2, 2)
        bindings = sum(
            torch.nn.functional.cross_entropy(logits[m, k : k + 1], bound[m, k : k + 1])
            for m in range(len(bound))
            for k in range(2)
            if bound[m, k] >= 0
        ) / int(true.sum())
        known = torch.cat([batch["counts"], batch["counts"]]) >= 0
        counts = torch.nn.functional.cross_entropy(
            model["counts"](f[known]), torch.cat([batch["counts"], batch["counts"]])[known]
        )
    total = pair + 0.5 * (tags + bindings + counts)
    assert float(loss.detach()) == pytest.approx(float(total), rel=1e-5)
    assert stats["tag_loss"] == pytest.approx(float(tags), rel=1e-5)
    # Colour tags need true colours: the pairs marked true_colours keep their channel order.
    frames = {tuple(v[k].flatten().tolist()) for v in videos for k in range(6)}
    earliest = (batch["earlier"] * torch.tensor(spec.std).view(1, 3, 1, 1)
                + torch.tensor(spec.mean).view(1, 3, 1, 1)) * 255  # fmt: skip
    unchanged = [tuple(e.flatten().round().int().tolist()) in frames for e in earliest]
    assert unchanged == batch["true_colours"].tolist() and 0 < sum(unchanged) < 6
    with pytest.raises(ValueError, match="attributes has 3 rows for 2 videos"):
        next(ms.pair_batches(
            videos[:2], torch.tensor([0, 1]), spec, pairs_per_video=1, videos_per_batch=2,
            generator=torch.Generator().manual_seed(0), attributes=targets,
        ))  # fmt: skip
    with pytest.raises(ValueError, match=r"attribute_weight \(-1.0\) must be >= 0"):
        ms.PretrainConfig(attribute_weight=-1.0)


def test_multistage_pretraining_is_multi_task(multistage_folder):
    log = [r for r in read_training_log(multistage_folder) if r["stage"] == "pretrain"]
    # The attribute heads trained beside the pair objective: their losses are in every record.
    assert log and all(
        {"train_tag_loss", "val_tag_loss", "val_count_accuracy"} <= set(r) for r in log
    )
