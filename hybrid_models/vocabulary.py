"""Word vocabularies for captions and questions, and the answer vocabulary of VQA.

Tokens are what the templated captions are made of: lower-cased words split on
whitespace with punctuation stripped from their ends, so "Left." and "left" are one word.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_INDEX, BOS_INDEX, EOS_INDEX, UNK_INDEX = range(4)
ANSWER_UNK_INDEX = 0  # AnswerVocabulary: answers unseen in training


def tokenize(text: str) -> list[str]:
    """Lower-case words of `text`: split on whitespace, punctuation stripped from each end.

    Inner punctuation stays ("top-left", "circle's"); a token of punctuation only disappears.
    """
    words = (word.strip(string.punctuation) for word in text.lower().split())
    return [word for word in words if word]


def _count(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text))
    return counts


def _frequent(counts: Counter[str], min_count: int, reserved: Sequence[str]) -> list[str]:
    """Words seen at least `min_count` times, most frequent first, ties in alphabetical order."""
    if min_count <= 0:
        raise ValueError(f"min_count ({min_count}) must be > 0")
    kept = [(word, n) for word, n in counts.items() if n >= min_count and word not in reserved]
    return [word for word, _ in sorted(kept, key=lambda item: (-item[1], item[0]))]


def _check_tokens(tokens: Sequence[str], head: Sequence[str], kind: str) -> None:
    if tuple(tokens[: len(head)]) != tuple(head):
        raise ValueError(f"{kind} must start with {list(head)}, got {list(tokens[: len(head)])}")
    seen: set[str] = set()
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"{kind} token {token!r} must be a non-empty string")
        if token in seen:
            raise ValueError(f"{kind} token {token!r} appears twice")
        seen.add(token)


class Vocabulary:
    """Word <-> index, with <pad>=0, <bos>=1, <eos>=2, <unk>=3 first.

    Immutable after construction; build it with `Vocabulary.build` from training text.
    """

    def __init__(self, tokens: Sequence[str]):
        _check_tokens(tokens, SPECIALS, "vocabulary")
        self._tokens = tuple(tokens)
        self._index = {token: index for index, token in enumerate(self._tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1) -> Vocabulary:
        """The words of `texts` seen at least `min_count` times, after the special tokens."""
        return cls([*SPECIALS, *_frequent(_count(texts), min_count, SPECIALS)])

    @property
    def tokens(self) -> tuple[str, ...]:
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def index(self, word: str) -> int:
        """The index of `word`, or of <unk> when it is not in the vocabulary."""
        return self._index.get(word, UNK_INDEX)

    def encode(
        self, text: str, *, max_length: int | None = None, bos_eos: bool = True
    ) -> list[int]:
        """Token ids of `text`, wrapped in <bos> ... <eos> unless `bos_eos` is False.

        `max_length` bounds the whole list (specials included); a long text loses its last
        words but keeps its <eos>, so a truncated caption still ends.
        """
        words = [self.index(word) for word in tokenize(text)]
        extra = 2 if bos_eos else 0
        if max_length is not None:
            if max_length <= extra:
                raise ValueError(f"max_length ({max_length}) must be > {extra}")
            words = words[: max_length - extra]
        return [BOS_INDEX, *words, EOS_INDEX] if bos_eos else words

    def decode_words(self, ids: Iterable[int]) -> list[str]:
        """The words of `ids`, stopping at the first <eos> and dropping the special tokens."""
        words = []
        for raw in ids:
            index = int(raw)
            if index == EOS_INDEX:
                break
            if not 0 <= index < len(self._tokens):
                raise ValueError(f"token id {index} is outside the vocabulary (size {len(self)})")
            if index >= len(SPECIALS):
                words.append(self._tokens[index])
        return words

    def decode(self, ids: Iterable[int]) -> str:
        """`decode_words` joined by single spaces."""
        return " ".join(self.decode_words(ids))

    def to_json(self) -> str:
        return json.dumps({"kind": "vocabulary", "tokens": list(self._tokens)})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(_load_tokens(text, "vocabulary"))


class AnswerVocabulary:
    """Answer string <-> class index, with <unk>=0 for answers not seen in training.

    An answer is normalised like a caption (lower case, punctuation stripped), words kept.
    """

    def __init__(self, answers: Sequence[str]):
        _check_tokens(answers, (UNK,), "answer vocabulary")
        self._answers = tuple(answers)
        self._index = {answer: index for index, answer in enumerate(self._answers)}

    @classmethod
    def build(cls, answers: Iterable[str], *, min_count: int = 1) -> AnswerVocabulary:
        counts = Counter(normalize_answer(answer) for answer in answers)
        counts.pop("", None)
        return cls([UNK, *_frequent(counts, min_count, (UNK,))])

    @property
    def answers(self) -> tuple[str, ...]:
        return self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerVocabulary) and self._answers == other._answers

    def __hash__(self) -> int:
        return hash(self._answers)

    def __repr__(self) -> str:
        return f"AnswerVocabulary({len(self)} answers)"

    def encode(self, answer: str) -> int:
        """The class index of `answer`, 0 (<unk>) when unseen."""
        return self._index.get(normalize_answer(answer), ANSWER_UNK_INDEX)

    def decode(self, index: int) -> str:
        if not 0 <= index < len(self._answers):
            raise ValueError(f"answer index {index} is outside the vocabulary (size {len(self)})")
        return self._answers[index]

    def to_json(self) -> str:
        return json.dumps({"kind": "answer_vocabulary", "tokens": list(self._answers)})

    @classmethod
    def from_json(cls, text: str) -> AnswerVocabulary:
        return cls(_load_tokens(text, "answer_vocabulary"))


def normalize_answer(answer: str) -> str:
    """An answer as the model sees it: its tokens joined by single spaces."""
    return " ".join(tokenize(answer))


def _load_tokens(text: str, kind: str) -> list[str]:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"expected a {kind} JSON object, got kind {found!r}")
    tokens = data.get("tokens")
    if not isinstance(tokens, list):
        raise ValueError(f"{kind} JSON has no 'tokens' list")
    return tokens


def pad_token_ids(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Token id lists as one (B, L_max) int64 tensor padded with <pad> (0)."""
    if not sequences:
        raise ValueError("sequences is empty")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"token sequence {lengths.index(0)} is empty")
    batch = torch.full((len(sequences), max(lengths)), PAD_INDEX, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
    return batch
