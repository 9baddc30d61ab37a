"""Captioning metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, CIDEr, SPICE.

pycocoevalcap's `Cider` is CIDEr-D (clipped n-gram weights, Gaussian length penalty
sigma=6, x10); plain CIDEr (Vedantam et al., https://arxiv.org/abs/1411.5726) is
computed here beside it. Java-only parts are reported unavailable, never as 0.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice import get_stanford_models as spice_models
from pycocoevalcap.spice.spice import Spice
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from pipelines.metrics.base import check_sample_id, merge_disjoint

logger = logging.getLogger(__name__)

BLEU_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
SCORE_KEYS = (*BLEU_KEYS, "METEOR", "ROUGE-L", "CIDEr-D", "CIDEr", "SPICE")

# ---------------------------------------------------------------------------
# Tokenisation

# Everything Java's line reader (and str.splitlines) ends a line at. PTBTokenizer
# reads one caption per line, so one of these inside a caption would shift every
# later caption onto the wrong video.
_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_NEGATION = re.compile(r"(?<=\w)n't\b")
_SLANG = re.compile(r"\b(gon|wan)(na)\b|\b(got)(ta)\b")
_CLITIC = re.compile(r"(?<=\w)'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?:(?:[-./']|(?<=\d)[,:](?=\d))\w+)*")


def one_line(text: str) -> str:
    """`text` with every line break turned into a space."""
    return _LINE_BREAKS.sub(" ", text)


def simple_tokenize(text: str) -> str:
    """A pure-Python stand-in for PTBTokenizer + pycocoevalcap's punctuation filter.

    Lower-cases; splits words as PTB does ("doesn't" -> "does n't", "man's" ->
    "man 's", "cannot" -> "can not", "gonna" -> "gon na"); keeps words joined by
    an inner - . / ' or a comma or colon between digits ("t-shirt", "3.5",
    "o'clock", "100,000", "10:30"); drops every other punctuation mark and symbol. It equals
    PTBTokenizer on ordinary captions; it differs where PTB keeps symbols as
    tokens ("$", "%", "&", "!!", "-lrb-") or an abbreviation's last period ("p.m.").
    """
    text = one_line(text).lower()
    text = re.sub(r"\bcannot\b", "can not", text)
    text = _SLANG.sub(lambda m: " ".join(g for g in m.groups() if g), text)
    text = _NEGATION.sub(" n't", text)
    text = _CLITIC.sub(r" '\1", text)
    return " ".join(_TOKEN.findall(text))


def ptb_tokenize(captions: Mapping[Any, Sequence[str]]) -> dict[Any, list[str]]:
    """pycocoevalcap's PTBTokenizer (Java) on {key: [caption, ...]}, in one JVM start."""
    keyed = {
        key: [{"caption": one_line(text)} for text in texts] for key, texts in captions.items()
    }
    tokenized = PTBTokenizer().tokenize(keyed)
    for key, texts in captions.items():
        if len(tokenized.get(key, ())) != len(texts):
            raise RuntimeError(
                f"PTBTokenizer returned {len(tokenized.get(key, ()))} captions for key {key!r}, "
                f"expected {len(texts)}"
            )
    return tokenized


# ---------------------------------------------------------------------------
# What can run here


def java_problem() -> str | None:
    """Why Java-based parts cannot run here, or None when `java` is on PATH."""
    return None if shutil.which("java") else "java was not found on PATH"


def spice_jar_paths() -> tuple[str, str]:
    """The Stanford CoreNLP jars SPICE needs, where pycocoevalcap would download them."""
    stem = os.path.join(spice_models.SPICEDIR, spice_models.SPICELIB, spice_models.JAR)
    return f"{stem}.jar", f"{stem}-models.jar"


def spice_problem() -> str | None:
    """Why SPICE cannot run here, or None. We never let pycocoevalcap download its jars."""
    problem = java_problem()
    if problem is not None:
        return problem
    missing = [path for path in spice_jar_paths() if not os.path.isfile(path)]
    if missing:
        return (
            f"SPICE needs Stanford CoreNLP jars that are missing: {', '.join(missing)} "
            f"(pycocoevalcap.spice.get_stanford_models() downloads them)"
        )
    return None


def unavailable(reason: str) -> dict[str, Any]:
    """How a metric that could not be computed appears in a result."""
    return {"available": False, "reason": reason}


# ---------------------------------------------------------------------------
# Plain CIDEr


def _ngram_counts(tokens: Sequence[str], max_n: int) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(tokens[start : start + n])
        for n in range(1, max_n + 1)
        for start in range(len(tokens) - n + 1)
    )


def cider(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str], *, max_n: int = 4
) -> tuple[float, list[float]]:
    """Plain CIDEr (corpus mean, per-sample) on tokenized, space-separated captions.

    As in the authors' reference code (vrama91/cider, `cider/`): n-gram TF-IDF
    vectors, document frequency over each sample's references in this corpus,
    cosine similarity averaged over references, mean over n = 1..max_n, times 10.
    Unlike CIDEr-D: no clipping of hypothesis weights and no length penalty. Like
    that code (and unlike the paper), no stemming.
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} reference lists for {len(hypotheses)} hypotheses: must match"
        )
    if not hypotheses:
        raise ValueError("CIDEr needs at least one sample")
    ref_counts = [[_ngram_counts(ref.split(), max_n) for ref in refs] for refs in references]
    document_frequency: Counter[tuple[str, ...]] = Counter()
    for counts in ref_counts:
        document_frequency.update(set().union(*counts))
    log_num_samples = math.log(len(references))

    def tfidf(counts: Counter) -> tuple[list[dict], list[float]]:
        vectors: list[dict] = [{} for _ in range(max_n)]
        for ngram, term_frequency in counts.items():
            idf = log_num_samples - math.log(max(1.0, document_frequency[ngram]))
            vectors[len(ngram) - 1][ngram] = term_frequency * idf
        norms = [math.sqrt(sum(w * w for w in vector.values())) for vector in vectors]
        return vectors, norms

    scores = []
    for hypothesis, refs in zip(hypotheses, ref_counts, strict=True):
        hyp_vectors, hyp_norms = tfidf(_ngram_counts(hypothesis.split(), max_n))
        per_n = np.zeros(max_n)
        for ref in refs:
            ref_vectors, ref_norms = tfidf(ref)
            for n in range(max_n):
                dot = sum(w * ref_vectors[n].get(g, 0.0) for g, w in hyp_vectors[n].items())
                if hyp_norms[n] != 0 and ref_norms[n] != 0:
                    dot /= hyp_norms[n] * ref_norms[n]
                per_n[n] += dot
        scores.append(float(np.mean(per_n) / len(refs) * 10.0))
    return float(np.mean(scores)), scores


# ---------------------------------------------------------------------------
# All scores


def _meteor(gts: dict, res: dict, scorer: Meteor | None) -> tuple[float, list[float]]:
    # METEOR's line protocol splits on "|||"; pycocoevalcap cleans hypotheses only.
    clean_gts = {key: [ref.replace("|||", " ") for ref in refs] for key, refs in gts.items()}
    if scorer is not None:
        score, scores = scorer.compute_score(clean_gts, res)
    else:
        own = Meteor()  # starts a JVM that loads the paraphrase table (~10 s)
        try:
            score, scores = own.compute_score(clean_gts, res)
        finally:
            _stop(own.meteor_p)
    return float(score), [float(s) for s in scores]


def _stop(process: subprocess.Popen) -> None:
    """Ends METEOR's JVM now rather than whenever its wrapper is garbage-collected."""
    process.stdin.close()  # METEOR exits at the end of its input
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    process.stderr.close()


def _spice(gts: dict, res: dict) -> tuple[dict[str, Any] | float, list[float | None] | None]:
    # SPICE is optional and heavy (an 8 GB Java heap): a failure is recorded in
    # the result and the log, and the other metrics still stand.
    try:
        score, per_sample = Spice().compute_score(gts, res)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        logger.warning("SPICE failed: %s", error)
        return unavailable(f"SPICE failed: {error}"), None
    if not math.isfinite(score):
        return unavailable("SPICE gave no score (NaN)"), None
    values = [float(sample["All"]["f"]) for sample in per_sample]
    return float(score), [value if math.isfinite(value) else None for value in values]


def caption_scores(
    references: Mapping[str, Sequence[str]],
    hypotheses: Mapping[str, str],
    *,
    spice: bool = True,
    meteor: Meteor | None = None,
) -> dict[str, Any]:
    """Every captioning metric for {video_id: [reference, ...]} and {video_id: hypothesis}.

    Captions are PTB-tokenized when Java is here, else `simple_tokenize`d. Each
    score is a float, or {"available": false, "reason": ...}. `per_sample` holds
    each video's BLEU-4, METEOR, ROUGE-L, CIDEr-D and CIDEr (and SPICE), for
    sample tables and the bootstrap. Samples are scored in sorted id order, so
    the result does not depend on the order of the mappings.

    `meteor` is a running pycocoevalcap `Meteor` to reuse across calls (its JVM
    takes ~10 s to start); by default one is started and stopped here.
    """
    if references.keys() != hypotheses.keys():
        missing = sorted(references.keys() - hypotheses.keys())[:5]
        extra = sorted(hypotheses.keys() - references.keys())[:5]
        raise ValueError(f"ids differ: no hypothesis for {missing}, no references for {extra}")
    for video_id, refs in references.items():
        if isinstance(refs, str) or not refs:
            raise ValueError(f"video {video_id!r} needs a non-empty list of references")
    video_ids = sorted(references)
    result: dict[str, Any] = {"num_samples": len(video_ids)}
    if not video_ids:
        return {**result, **{key: None for key in SCORE_KEYS}, "per_sample": {}}

    java = java_problem()
    if java is None:
        tokenized = ptb_tokenize(
            {
                **{("ref", v): list(references[v]) for v in video_ids},
                **{("hyp", v): [hypotheses[v]] for v in video_ids},
            }
        )
        gts = {v: tokenized[("ref", v)] for v in video_ids}
        res = {v: tokenized[("hyp", v)] for v in video_ids}
        result["tokenizer"] = "PTBTokenizer"
    else:
        gts = {v: [simple_tokenize(ref) for ref in references[v]] for v in video_ids}
        res = {v: [simple_tokenize(hypotheses[v])] for v in video_ids}
        logger.warning("%s: no PTB tokenizer, METEOR or SPICE; using simple_tokenize", java)
        result["tokenizer"] = "simple"
        result["PTBTokenizer"] = unavailable(java)

    per_sample: dict[str, dict[str, float | None]] = {v: {} for v in video_ids}

    def record(key: str, values: Sequence[float | None]) -> None:
        for video_id, value in zip(video_ids, values, strict=True):
            per_sample[video_id][key] = None if value is None else float(value)

    bleu, bleu_per_sample = Bleu(4).compute_score(gts, res, verbose=0)
    result.update({key: float(value) for key, value in zip(BLEU_KEYS, bleu, strict=True)})
    record("BLEU-4", bleu_per_sample[3])

    if java is None:
        result["METEOR"], meteor_per_sample = _meteor(gts, res, meteor)
        record("METEOR", meteor_per_sample)
    else:
        result["METEOR"] = unavailable(java)

    rouge, rouge_per_sample = Rouge().compute_score(gts, res)
    result["ROUGE-L"] = float(rouge)
    record("ROUGE-L", rouge_per_sample)

    cider_d, cider_d_per_sample = Cider().compute_score(gts, res)
    result["CIDEr-D"] = float(cider_d)
    record("CIDEr-D", cider_d_per_sample)

    plain, plain_per_sample = cider([gts[v] for v in video_ids], [res[v][0] for v in video_ids])
    result["CIDEr"] = plain
    record("CIDEr", plain_per_sample)

    problem = spice_problem() if spice else "SPICE was turned off (spice=False)"
    if problem is None:
        result["SPICE"], spice_per_sample = _spice(gts, res)
        if spice_per_sample is not None:
            record("SPICE", spice_per_sample)
    else:
        result["SPICE"] = unavailable(problem)

    result["per_sample"] = per_sample
    return result


# ---------------------------------------------------------------------------
# The mergeable metric


@dataclass(frozen=True, kw_only=True)
class CaptionSample:
    """One video's generated caption and its reference captions."""

    video_id: str
    hypothesis: str
    references: Sequence[str]

    def __post_init__(self) -> None:
        check_sample_id(self.video_id)
        if not isinstance(self.hypothesis, str):
            raise ValueError(f"hypothesis must be a string, got {self.hypothesis!r}")
        if isinstance(self.references, str):
            raise ValueError("references must be a list of strings, not one string")
        references = tuple(self.references)
        if not references:
            raise ValueError(f"video {self.video_id!r} has no reference captions")
        if not all(isinstance(ref, str) for ref in references):
            raise ValueError(f"references of video {self.video_id!r} must be strings")
        object.__setattr__(self, "references", references)


@dataclass(frozen=True, eq=False)
class CaptionAccumulator:
    """video id -> (hypothesis, references). CIDEr's document frequencies need them all."""

    samples: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True, kw_only=True)
class CaptionMetrics:
    """`caption_scores` as a mergeable metric. `spice=False` skips SPICE (minutes, 8 GB heap)."""

    spice: bool = True

    def create(self) -> CaptionAccumulator:
        return CaptionAccumulator()

    def add(self, accumulator: CaptionAccumulator, sample: CaptionSample) -> CaptionAccumulator:
        return self.add_all(accumulator, (sample,))

    def add_all(
        self, accumulator: CaptionAccumulator, samples: Iterable[CaptionSample]
    ) -> CaptionAccumulator:
        new = merge_disjoint(
            {sample.video_id: (sample.hypothesis, sample.references)} for sample in samples
        )
        return CaptionAccumulator(merge_disjoint([accumulator.samples, new]))

    def merge(self, accumulators: Iterable[CaptionAccumulator]) -> CaptionAccumulator:
        return CaptionAccumulator(merge_disjoint(acc.samples for acc in accumulators))

    def compute(self, accumulator: CaptionAccumulator) -> dict[str, Any]:
        """Runs the scorers (Java subprocesses when available): the one impure step."""
        samples = accumulator.samples
        return caption_scores(
            {video_id: refs for video_id, (_, refs) in samples.items()},
            {video_id: hyp for video_id, (hyp, _) in samples.items()},
            spice=self.spice,
        )
