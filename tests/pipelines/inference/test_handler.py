import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.ml.inference.base import RunInference
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from hybrid_models.zoo import build_model
from pipelines.artifacts import model_uri, write_model
from pipelines.inference import VideoExample, VideoModelHandler

CLASSES = ["a", "b", "c"]
# Hand-set head of an order-blind mean-pooling classifier: logits = W · mean(frames) + b.
WEIGHT = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]], np.float32)
BIAS = np.array([0.0, -0.5, 0.25], np.float32)


def mean_pool_model(root):
    model = build_model("mean_pool", feature_dim=2, num_classes=3, seed=0)
    with torch.no_grad():
        model.head[1].weight.copy_(torch.from_numpy(WEIGHT))
        model.head[1].bias.copy_(torch.from_numpy(BIAS))
    uri = model_uri(str(root), "mean-pool")
    write_model(uri, model, model.config, name="mean_pool", extra={"class_names": CLASSES})
    return uri


def example(video_id, frames):
    features = np.asarray(frames, np.float32)
    return VideoExample(
        video_id=video_id,
        frame_order="original",
        frame_indices=np.arange(len(features)),
        features={"rgb": features},
    )


def expected_scores(frames):
    logits = WEIGHT.astype(np.float64) @ np.mean(frames, axis=0) + BIAS
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def close_to(expected):
    def check(actual):
        got = dict(actual)
        if sorted(got) != sorted(expected):
            raise BeamAssertException(f"videos {sorted(got)} != {sorted(expected)}")
        for video_id, scores in expected.items():
            if not np.allclose(got[video_id], scores, atol=1e-6, rtol=0):
                raise BeamAssertException(f"{video_id}: {got[video_id]} != {scores}")

    return check


def equal_to(expected):
    def check(actual):
        if sorted(actual) != sorted(expected):
            raise BeamAssertException(f"{sorted(actual)} != {sorted(expected)}")

    return check


def scores_of(result):
    return result.example.video_id, result.inference["scores"].tolist()


def failed_ids(failure):
    batch, _ = failure
    return sorted(example.video_id for example in batch)


def test_run_inference_pads_masks_scores_exactly_and_dead_letters_bad_batches(tmp_path):
    """Videos of 1 to 4 frames share batches of 2: padding must not change a video's scores.
    A batch with a video whose scores are not finite goes to the dead-letter output whole."""
    frames = {
        "one": [[1.0, 2.0]],
        "two": [[0.5, -1.0], [1.5, 0.0]],
        "three": [[0.0, 0.0], [3.0, 1.0], [0.0, 2.0]],
        "four": [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [-6.0, -2.0]],
    }
    uri = mean_pool_model(tmp_path)
    handler = VideoModelHandler(uri, batch_size=2)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 2}
    prebatched = VideoModelHandler(uri, batch_size=8).with_no_batching()
    good = example("good", [[1.0, 0.0]])
    bad = example("bad", [[np.nan, 0.0], [1.0, 1.0]])
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        results = (
            pipeline
            | "Videos" >> beam.Create([example(v, f) for v, f in frames.items()])
            | "Batched by Beam" >> RunInference(handler)
        )
        assert_that(
            results | "Scores" >> beam.Map(scores_of),
            close_to({v: expected_scores(f) for v, f in frames.items()}),
        )
        results, dead = (
            pipeline
            | "Batches" >> beam.Create([[good], [good, bad]])
            | "Prebatched" >> RunInference(prebatched).with_exception_handling()
        )
        assert_that(
            results | "Good scores" >> beam.Map(scores_of),
            close_to({"good": expected_scores([[1.0, 0.0]])}),
            label="good",
        )
        assert_that(
            dead.failed_inferences | beam.Map(failed_ids),
            equal_to([["bad", "good"]]),
            label="dead letters",
        )


def test_handler_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^batch_size \(0\) must be > 0$"):
        VideoModelHandler("/nowhere", batch_size=0)
