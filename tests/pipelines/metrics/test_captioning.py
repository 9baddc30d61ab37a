import json
import math
import os

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from pipelines.metrics import (
    CaptionMetrics,
    CaptionSample,
    caption_scores,
    cider,
    java_problem,
    ptb_tokenize,
    simple_tokenize,
    spice_problem,
)
from pipelines.metrics.captioning import spice_jar_paths
from tests.pipelines.metrics.sharding import sharded_accumulator

REFERENCES = {
    "v01": ["A red circle moves left.", "The red ball goes to the left!"],
    "v02": ["a blue square grows", "The blue square gets bigger, slowly."],
    "v03": ["A green triangle shrinks.", "the triangle (green) is shrinking"],
    "v04": ["A small yellow circle moves right.", "It's a yellow dot that doesn't stop"],
    "v05": ["two red squares move left", "Red squares slide to the left."],
    "v06": ["a purple star grows", "A star, purple, gets larger."],
    "v07": ["a white circle moves right", "the white ball moves to the right"],
    "v08": ["a big blue circle shrinks", "A large blue circle gets smaller."],
}
HYPOTHESES = {
    "v01": "a red circle moves to the left",
    "v02": "A blue square shrinks.",
    "v03": "a green triangle shrinks",
    "v04": "a yellow circle moves left",
    "v05": "red red red squares move left left",
    "v06": "a purple star grows",
    "v07": "",  # an empty caption is a real model output; it must score, not crash
    "v08": "a blue circle gets smaller",
}
METRIC_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


@pytest.fixture(scope="module")
def ours_and_reference():
    """One run of ours and one of pycocoevalcap as its own example calls it.

    Both use one METEOR JVM (its ~10 s start is the slow part of this module).
    """
    assert java_problem() is None, "these tests guard the Java path and need java on PATH"
    meteor = Meteor()
    ours = caption_scores(REFERENCES, HYPOTHESES, meteor=meteor)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in HYPOTHESES.items()})
    reference = {}
    per_sample = {}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    reference.update(zip(METRIC_KEYS[:4], bleu, strict=True))
    per_sample["BLEU-4"] = bleu_each[3]
    reference["METEOR"], per_sample["METEOR"] = meteor.compute_score(gts, res)
    reference["ROUGE-L"], per_sample["ROUGE-L"] = Rouge().compute_score(gts, res)
    reference["CIDEr-D"], per_sample["CIDEr-D"] = Cider().compute_score(gts, res)
    ids = list(gts)
    per_sample = {key: dict(zip(ids, values, strict=True)) for key, values in per_sample.items()}
    return ours, reference, per_sample


@pytest.mark.slow  # one METEOR JVM start (~10 s); an acceptance criterion
def test_scores_equal_pycocoevalcap_called_directly(ours_and_reference):
    ours, reference, _ = ours_and_reference
    assert ours["tokenizer"] == "PTBTokenizer"
    assert ours["num_samples"] == len(REFERENCES)
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(reference[key], abs=1e-6), key
    assert 0 < ours["METEOR"] < 1 and ours["CIDEr-D"] > 0


@pytest.mark.slow  # one METEOR JVM start (~10 s); an acceptance criterion
def test_per_sample_scores_equal_pycocoevalcap(ours_and_reference):
    ours, _, reference = ours_and_reference
    assert sorted(ours["per_sample"]) == sorted(REFERENCES)
    for key, values in reference.items():
        for video_id, value in values.items():
            assert ours["per_sample"][video_id][key] == pytest.approx(value, abs=1e-6)
    assert ours["per_sample"]["v07"]["CIDEr-D"] == 0.0
    assert ours["per_sample"]["v06"]["METEOR"] > ours["per_sample"]["v07"]["METEOR"]


@pytest.mark.slow  # one METEOR JVM start (~10 s); an acceptance criterion
def test_spice_is_reported_unavailable_with_a_reason_never_zero(ours_and_reference):
    ours, _, _ = ours_and_reference
    problem = spice_problem()
    if problem is None:  # a machine that has the CoreNLP jars really runs SPICE
        assert 0 < ours["SPICE"] <= 1
    else:
        assert ours["SPICE"] == {"available": False, "reason": problem}
    json.dumps(ours, allow_nan=False)


def test_spice_problem_names_the_missing_jars():
    jar, models = spice_jar_paths()
    assert jar.endswith(os.path.join("pycocoevalcap", "spice", "lib", "stanford-corenlp-3.6.0.jar"))
    assert models == jar.replace(".jar", "-models.jar")
    missing = [path for path in (jar, models) if not os.path.isfile(path)]
    expected = (
        f"SPICE needs Stanford CoreNLP jars that are missing: {', '.join(missing)} "
        "(pycocoevalcap.spice.get_stanford_models() downloads them)"
    )
    assert spice_problem() == (expected if missing else None)


ORDINARY_CAPTIONS = [
    "A red circle moves left.",
    "The man's dog doesn't run!",
    "Two people, one in a T-shirt; walking...",
    "It's 3.5 meters long?",
    '"Quoted" text: a/b',
    "They're gonna cannot, won't -- can't stop.",
    "The players' ball is on the grass, isn't it?",
    "A 1,000-piece puzzle at 10:30",
    "we'll see; I'm sure you've been there",
]


@pytest.fixture(scope="module")
def ptb_tokenized():
    captions = {("plain", i): [text] for i, text in enumerate(ORDINARY_CAPTIONS)}
    # A Unicode line separator inside a caption must not shift the captions after it.
    captions[("breaks", 0)] = ["one\u2028two\x0bthree\rfour", "five"]
    captions[("breaks", 1)] = ["six"]
    return ptb_tokenize(captions)


def test_simple_tokenizer_equals_ptb_on_ordinary_captions(ptb_tokenized):
    for i, text in enumerate(ORDINARY_CAPTIONS):
        assert simple_tokenize(text) == ptb_tokenized[("plain", i)][0], text


def test_line_breaks_inside_a_caption_do_not_shift_the_others(ptb_tokenized):
    assert ptb_tokenized[("breaks", 0)] == ["one two three four", "five"]
    assert ptb_tokenized[("breaks", 1)] == ["six"]


def test_simple_tokenizer_pinned():
    assert simple_tokenize("The man's dog doesn't run!") == "the man 's dog does n't run"
    assert simple_tokenize("A T-shirt, 3.5 kg & 100,000 $") == "a t-shirt 3.5 kg 100,000"
    assert simple_tokenize("one\ntwo") == "one two"


def test_without_java_meteor_and_ptb_are_unavailable_and_the_rest_is_computed(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no java on it
    assert java_problem() == "java was not found on PATH"
    ours = caption_scores(REFERENCES, HYPOTHESES)
    reason = {"available": False, "reason": "java was not found on PATH"}
    assert ours["tokenizer"] == "simple"
    assert ours["PTBTokenizer"] == reason
    assert ours["METEOR"] == reason
    assert ours["SPICE"] == reason
    assert "METEOR" not in ours["per_sample"]["v01"]

    gts = {k: [simple_tokenize(c) for c in v] for k, v in REFERENCES.items()}
    res = {k: [simple_tokenize(v)] for k, v in HYPOTHESES.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [ours[f"BLEU-{n}"] for n in range(1, 5)] == pytest.approx(bleu, abs=1e-6)
    assert ours["ROUGE-L"] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-6)
    assert ours["CIDEr-D"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-6)
    json.dumps(ours, allow_nan=False)


# Two videos, every n-gram in one video's references only, so every idf is log 2.
# v1: hypothesis = reference "a b": cosine 1 for n = 1, 2; no 3- or 4-grams.
#     score = 10 * mean(1, 1, 0, 0) = 5 for CIDEr and CIDEr-D.
# v2: "c c c" against "c e": unigram vectors (3L) and (L, L).
#     CIDEr:   cosine 3L^2 / (3L * sqrt(2) L) = 1/sqrt(2)           -> 10/4 * 1/sqrt(2)
#     CIDEr-D: clipped min(3L, L) * L / (3L * sqrt(2) L) = 1/(3 sqrt 2), times the length
#              penalty exp(-delta^2 / (2 * 6^2)) with delta = 1    -> 10/4 * that
TINY_REFERENCES = {"v1": ["a b"], "v2": ["c e"]}
TINY_HYPOTHESES = {"v1": "a b", "v2": "c c c"}
TINY_CIDER_D = (5 + 10 / 4 * math.exp(-1 / 72) / (3 * math.sqrt(2))) / 2
TINY_CIDER = (5 + 10 / 4 / math.sqrt(2)) / 2


def test_cider_and_cider_d_on_a_hand_computed_case(monkeypatch, tmp_path):
    gts = {k: list(v) for k, v in TINY_REFERENCES.items()}
    res = {k: [v] for k, v in TINY_HYPOTHESES.items()}
    # pycocoevalcap's Cider is CIDEr-D: clipping and the length penalty are in it.
    assert Cider().compute_score(gts, res)[0] == pytest.approx(TINY_CIDER_D, abs=1e-12)
    score, per_sample = cider(list(gts.values()), [v[0] for v in res.values()])
    assert score == pytest.approx(TINY_CIDER, abs=1e-12)
    assert per_sample == pytest.approx([5.0, 10 / 4 / math.sqrt(2)], abs=1e-12)

    monkeypatch.setenv("PATH", str(tmp_path))  # pure Python, so no JVM for this case
    ours = caption_scores(TINY_REFERENCES, TINY_HYPOTHESES)
    assert ours["CIDEr-D"] == pytest.approx(TINY_CIDER_D, abs=1e-12)
    assert ours["CIDEr"] == pytest.approx(TINY_CIDER, abs=1e-12)


def test_cider_equals_cider_d_where_clipping_and_penalty_do_nothing():
    # Hypotheses without repeated n-grams, all captions five words long: the two agree.
    words = ["red", "blue", "green", "circle", "square", "moves", "grows", "left", "right", "now"]
    references, hypotheses = [], []
    for i in range(6):
        rotated = words[i:] + words[:i]
        references.append([" ".join(rotated[:5]), " ".join(rotated[2:7])])
        hypotheses.append(" ".join(rotated[1:6]))
    gts = {i: refs for i, refs in enumerate(references)}
    res = {i: [hyp] for i, hyp in enumerate(hypotheses)}
    expected, expected_each = Cider().compute_score(gts, res)
    score, each = cider(references, hypotheses)
    assert score == pytest.approx(expected, abs=1e-9)
    assert each == pytest.approx(list(expected_each), abs=1e-9)


def test_sharded_accumulators_equal_one_pass(monkeypatch, tmp_path):
    metric = CaptionMetrics()
    samples = [
        CaptionSample(video_id=k, hypothesis=HYPOTHESES[k], references=REFERENCES[k])
        for k in REFERENCES
    ]
    one_pass = metric.add_all(metric.create(), samples)
    monkeypatch.setenv("PATH", str(tmp_path))  # the pure-Python path keeps this fast
    expected = metric.compute(one_pass)
    for seed in range(3):
        sharded = sharded_accumulator(metric, samples, seed)
        assert sharded.samples == one_pass.samples
        assert metric.compute(sharded) == expected


def test_empty_accumulator_scores_as_nulls():
    result = CaptionMetrics().compute(CaptionMetrics().create())
    assert result["num_samples"] == 0 and result["per_sample"] == {}
    assert result["CIDEr-D"] is None and result["SPICE"] is None


def test_input_errors():
    with pytest.raises(ValueError, match=r"^ids differ: no hypothesis for \['b'\], no refer"):
        caption_scores({"a": ["x"], "b": ["y"]}, {"a": "x"})
    with pytest.raises(ValueError, match=r"^video 'a' needs a non-empty list of references$"):
        caption_scores({"a": []}, {"a": "x"})
    with pytest.raises(ValueError, match=r"^video 'a' has no reference captions$"):
        CaptionSample(video_id="a", hypothesis="x", references=[])
    with pytest.raises(ValueError, match=r"^references must be a list of strings, not one"):
        CaptionSample(video_id="a", hypothesis="x", references="a red circle")
    metric = CaptionMetrics()
    sample = CaptionSample(video_id="a", hypothesis="x", references=["y"])
    with pytest.raises(ValueError, match=r"^duplicate video_id 'a'$"):
        metric.add(metric.add(metric.create(), sample), sample)
