"""Caption error analysis: hallucinated objects, wrong attributes, repeated n-grams.

Word-list heuristics in the spirit of CHAIR (Rohrbach et al. 2018,
https://arxiv.org/abs/1809.02156), kept simple enough to read in one sitting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.metrics.captioning import simple_tokenize

# Word lists read best as text; SIM905 would spread them one word per line.
DEFAULT_COLOURS = frozenset(
    "red green blue yellow orange purple pink brown black white grey gray cyan magenta "  # noqa: SIM905
    "violet gold silver".split()
)
DEFAULT_SIZES = frozenset("small big large tiny huge little medium tall short long".split())  # noqa: SIM905
DEFAULT_STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from into onto over under up down "  # noqa: SIM905
    "is are was were be been being it its this that these those there here then than "
    "as so very while who which what 's n't".split()
)


@dataclass(frozen=True, kw_only=True)
class CaptionErrorConfig:
    """Word lists of the analysis.

    Objects are `objects` plus, when `derive_objects`, every word other than a
    stop word that follows a run of colour/size words in the references ("a
    small red circle" adds "circle"; so would "turns red quickly" add "quickly":
    give `objects` and derive_objects=False where that matters). Words are
    compared in a naive singular form ("circles" -> "circle", "boxes" -> "box").
    """

    objects: frozenset[str] = frozenset()
    derive_objects: bool = True
    colours: frozenset[str] = DEFAULT_COLOURS
    sizes: frozenset[str] = DEFAULT_SIZES
    stop_words: frozenset[str] = DEFAULT_STOP_WORDS
    max_ngram: int = 3
    num_examples: int = 3

    def __post_init__(self) -> None:
        for name in ("objects", "colours", "sizes", "stop_words"):
            words = getattr(self, name)
            if isinstance(words, str):
                raise ValueError(f"{name} must be a collection of words, not one string")
            object.__setattr__(self, name, frozenset(word.lower() for word in words))
        if self.max_ngram <= 0:
            raise ValueError(f"max_ngram ({self.max_ngram}) must be > 0")
        if self.num_examples < 0:
            raise ValueError(f"num_examples ({self.num_examples}) must be >= 0")

    @property
    def attributes(self) -> frozenset[str]:
        return self.colours | self.sizes


def singular(word: str) -> str:
    """A naive singular: "circles" -> "circle", "boxes" -> "box", "berries" -> "berry"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    # "-ses" only after a double s: "glasses" -> "glass" but "horses" -> "horse".
    if len(word) > 3 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(caption: str) -> list[str]:
    return simple_tokenize(caption).split()


def _words_after_attributes(words: Sequence[str], config: CaptionErrorConfig) -> set[str]:
    """Singular forms of the words right after a run of colour/size words, stop words aside."""
    found, after_attribute = set(), False
    for word in words:
        if word in config.attributes:
            after_attribute = True
            continue
        if after_attribute and word not in config.stop_words:
            found.add(singular(word))
        after_attribute = False
    return found


def object_lexicon(references: Iterable[str], config: CaptionErrorConfig) -> frozenset[str]:
    """config.objects, plus (when config.derive_objects) the words after colour/size words."""
    lexicon = {singular(word) for word in config.objects}
    if config.derive_objects:
        for caption in references:
            lexicon |= _words_after_attributes(_words(caption), config)
    return frozenset(lexicon)


def _objects_with_attributes(
    words: Sequence[str], lexicon: frozenset[str], attributes: frozenset[str]
) -> dict[str, set[str]]:
    """object -> the colour/size words placed right before it anywhere in `words`."""
    objects: dict[str, set[str]] = {}
    run: set[str] = set()
    for word in words:
        if word in attributes:
            run.add(word)
            continue
        noun = singular(word)
        if noun in lexicon:
            objects.setdefault(noun, set()).update(run)
        run = set()
    return objects


def repeated_ngrams(words: Sequence[str], max_ngram: int, stop_words: frozenset[str]) -> dict:
    """n -> [{"ngram", "count"}] for n-grams seen more than once; stop words skipped for n=1."""
    repeated = {}
    for n in range(1, max_ngram + 1):
        grams = (" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        counts = Counter(g for g in grams if n > 1 or g not in stop_words)
        repeated[str(n)] = [
            {"ngram": gram, "count": count} for gram, count in sorted(counts.items()) if count > 1
        ]
    return repeated


def caption_errors(
    hypothesis: str,
    references: Sequence[str],
    lexicon: frozenset[str],
    config: CaptionErrorConfig,
) -> dict[str, Any]:
    """The errors of one hypothesis against its own references.

    Hallucinated objects: lexicon words of the hypothesis that none of the
    references contains.
    Wrong attributes: for an object the references do name, a colour/size word
    placed before it in the hypothesis but before it in none of the references
    ("a blue circle" against "a red circle and a blue square" is wrong).
    Repetition: n-grams (n = 1..max_ngram) that occur more than once.
    """
    hyp_words = _words(hypothesis)
    hyp_objects = _objects_with_attributes(hyp_words, lexicon, config.attributes)
    ref_objects: dict[str, set[str]] = {}
    for reference in references:
        for noun, attrs in _objects_with_attributes(
            _words(reference), lexicon, config.attributes
        ).items():
            ref_objects.setdefault(noun, set()).update(attrs)
    # A word the references use at all is not a hallucinated object, whatever its role.
    ref_words = {singular(word) for reference in references for word in _words(reference)}
    hallucinated = sorted(noun for noun in hyp_objects if noun not in ref_words)
    wrong_attributes = [
        {"object": noun, "attribute": attribute}
        for noun in sorted(hyp_objects)
        if noun in ref_objects
        for attribute in sorted(hyp_objects[noun] - ref_objects[noun])
    ]
    return {
        "hallucinated_objects": hallucinated,
        "wrong_attributes": wrong_attributes,
        "repeated_ngrams": repeated_ngrams(hyp_words, config.max_ngram, config.stop_words),
    }


def caption_error_report(
    references: Mapping[str, Sequence[str]],
    hypotheses: Mapping[str, str],
    config: CaptionErrorConfig | None = None,
) -> dict[str, Any]:
    """Errors per video and in total, with counts and the first few examples of each kind.

    The object lexicon is built from all references given; videos are visited
    in sorted id order, which also picks the examples.
    """
    config = config or CaptionErrorConfig()
    if references.keys() != hypotheses.keys():
        missing = sorted(references.keys() ^ hypotheses.keys())[:5]
        raise ValueError(f"references and hypotheses must have the same ids; differ on {missing}")
    lexicon = object_lexicon((r for refs in references.values() for r in refs), config)
    per_video = {
        video_id: caption_errors(hypotheses[video_id], references[video_id], lexicon, config)
        for video_id in sorted(references)
    }

    def summary(kind: str, count: Any) -> dict[str, Any]:
        with_error = [v for v, errors in per_video.items() if count(errors[kind])]
        return {
            "num_captions": len(with_error),
            "num_errors": sum(count(per_video[v][kind]) for v in with_error),
            "examples": [
                {
                    "video_id": v,
                    "hypothesis": hypotheses[v],
                    "references": list(references[v]),
                    kind: per_video[v][kind],
                }
                for v in with_error[: config.num_examples]
            ],
        }

    hallucination_counts = Counter(
        noun for errors in per_video.values() for noun in errors["hallucinated_objects"]
    )
    return {
        "num_captions": len(per_video),
        "object_lexicon": sorted(lexicon),
        "hallucinated_objects": {
            **summary("hallucinated_objects", len),
            "by_object": dict(sorted(hallucination_counts.items())),
        },
        "wrong_attributes": summary("wrong_attributes", len),
        "repetition": summary("repeated_ngrams", lambda r: sum(map(len, r.values()))),
        "per_video": per_video,
    }
