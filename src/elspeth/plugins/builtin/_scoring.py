"""Deterministic answer scorers: pure functions from an answer (and a reference) to a ``Score``.

No scorer raises on the answer's text: what cannot be scored is an ``error`` outcome with the
reason. Explanations are built from the configuration and from what was computed (a choice's
letter, a difference, an F1), never by quoting the answer or the reference.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

Outcome = Literal["pass", "fail", "error"]
Reference = str | int | float | bool
RougeType = Literal["rouge1", "rouge2", "rougeL"]

MAX_PATTERN_LENGTH: Final = 1000
"""Longer regexes are refused: a configuration, not a program."""

_ARTICLES: Final = re.compile(r"\b(?:a|an|the)\b", re.IGNORECASE)
_NUMBER: Final = r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_FIRST_NUMBER: Final = re.compile(_NUMBER)
_WHOLE_NUMBER: Final = re.compile(rf"\s*({_NUMBER})\s*")
_LETTER: Final = re.compile(r"\(?([A-Za-z])\)?[.):]?")


@dataclass(frozen=True)
class Score:
    """``value`` is 1.0/0.0 for the pass/fail scorers, the F1 for ``token_f1`` and the similarity
    in [0, 1] for ``bleu``, ``chrf`` and ``rouge``; None on error."""

    value: float | None
    outcome: Outcome
    explanation: str


@dataclass(frozen=True)
class Normalisation:
    """Which :func:`normalise` steps apply; all on is SQuAD's answer normalisation."""

    case: bool = True
    whitespace: bool = True
    punctuation: bool = True
    articles: bool = True

    def apply(self, text: str) -> str:
        return normalise(
            text,
            case=self.case,
            whitespace=self.whitespace,
            punctuation=self.punctuation,
            articles=self.articles,
        )


def normalise(text: str, *, case: bool, whitespace: bool, punctuation: bool, articles: bool) -> str:
    """``text`` with, in this order: ``case`` lowercased; ``punctuation`` removed (ASCII
    ``string.punctuation`` and every Unicode punctuation character, category ``P*``); ``articles``
    (a, an, the as whole words, whatever their case) replaced by a space; ``whitespace`` runs
    collapsed to one space and the ends stripped."""
    if case:
        text = text.lower()
    if punctuation:
        # ASCII text (most answers) in one C call; every ASCII P* character is in
        # string.punctuation, so both paths remove the same characters.
        if text.isascii():
            text = text.translate(_ASCII_PUNCTUATION)
        else:
            text = "".join(char for char in text if not _is_punctuation(char))
    if articles:
        text = _ARTICLES.sub(" ", text)
    if whitespace:
        text = " ".join(text.split())
    return text


_ASCII_PUNCTUATION: Final = str.maketrans("", "", string.punctuation)


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _verdict(passed: bool, explanation: str) -> Score:
    return Score(1.0 if passed else 0.0, "pass" if passed else "fail", explanation)


def _error(reason: str) -> Score:
    return Score(None, "error", reason)


def exact(answer: str, reference: str, normalisation: Normalisation) -> Score:
    """Pass when the normalised answer equals the normalised reference."""
    same = normalisation.apply(answer) == normalisation.apply(reference)
    return _verdict(same, "matches the reference" if same else "differs from the reference")


def includes(answer: str, reference: str, normalisation: Normalisation) -> Score:
    """Pass when the normalised reference occurs in the normalised answer."""
    wanted = normalisation.apply(reference)
    if not wanted:
        return _error("reference is empty after normalisation")
    found = wanted in normalisation.apply(answer)
    return _verdict(found, "contains the reference" if found else "does not contain the reference")


def compile_pattern(regex: str) -> re.Pattern[str]:
    """``regex`` compiled; a ValueError when it is too long or not a valid regex."""
    if len(regex) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"regex has {len(regex)} characters; at most {MAX_PATTERN_LENGTH} are allowed"
        )
    try:
        return re.compile(regex)
    except re.error as error:
        raise ValueError(f"regex is not a valid regular expression: {error}") from None


def pattern(answer: str, regex: re.Pattern[str]) -> Score:
    """Pass when ``regex`` is found anywhere in the answer (``re.search``)."""
    found = regex.search(answer) is not None
    return _verdict(found, "pattern found" if found else "pattern not found")


def _whole_number(value: Reference) -> float | None:
    """A number given as a number or as a text that is one number (thousands commas allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _WHOLE_NUMBER.fullmatch(value)
    return float(match.group(1).replace(",", "")) if match else None


def first_number(text: str) -> float | None:
    """The first number in ``text``: ``"about 3.5 kg"`` -> 3.5, ``"1,234 items"`` -> 1234.0."""
    match = _FIRST_NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


def numeric(answer: str, reference: Reference, *, abs_tol: float, rel_tol: float) -> Score:
    """Pass when the answer's first number is within ``max(abs_tol, rel_tol * |reference|)`` of
    the reference (inclusive)."""
    expected = _whole_number(reference)
    if expected is None or not math.isfinite(expected):
        return _error("reference is not a finite number")
    found = first_number(answer)
    if found is None:
        return _error("no number in the answer")
    if not math.isfinite(found):
        return _error("the answer's number is not finite")
    difference = abs(found - expected)
    allowed = max(abs_tol, rel_tol * abs(expected))
    within = difference <= allowed
    where = "within" if within else "outside"
    return _verdict(within, f"{where} tolerance: difference {difference:g}, allowed {allowed:g}")


def _choice_index(text: str, choices: list[str], normalisation: Normalisation) -> int | str:
    """The index of the choice ``text`` names (a letter, or a choice's text), or why there is
    none."""
    letter = _LETTER.fullmatch(text.strip())
    if letter:
        index = ord(letter.group(1).upper()) - ord("A")
        if index < len(choices):
            return index
        return f"letter {letter.group(1).upper()} is beyond the {len(choices)} choices"
    wanted = normalisation.apply(text)
    for index, choice_text in enumerate(choices):
        if normalisation.apply(choice_text) == wanted:
            return index
    return "not one of the choices"


def choice(answer: str, reference: str, choices: list[str], normalisation: Normalisation) -> Score:
    """Pass when the answer picks the reference's choice. Either may be a letter (``B``, ``(B)``,
    ``B.``, ``B)``; A is the first choice) or a choice's text (compared normalised)."""
    expected = _choice_index(reference, choices, normalisation)
    if isinstance(expected, str):
        return _error(f"reference {expected}")
    picked = _choice_index(answer, choices, normalisation)
    if isinstance(picked, str):
        return _error(f"answer {picked}")
    letters = f"chose {chr(ord('A') + picked)}, reference {chr(ord('A') + expected)}"
    return _verdict(picked == expected, letters)


def json_field(
    answer: str, field_path: str, reference: Reference, normalisation: Normalisation
) -> Score:
    """Pass when the field at ``field_path`` (dotted; a number indexes an array, ``a.b.0``) of the
    answer parsed as JSON equals the reference: as numbers when both are numbers (or texts that
    are one number), else as normalised text (``true``, ``false`` for booleans)."""
    try:
        document: Any = json.loads(answer)
    except ValueError:
        return _error("invalid JSON")
    value, problem = _walk(document, field_path)
    if problem is not None:
        return _error(f"field {field_path}: {problem}")
    found, expected = _whole_number(value), _whole_number(reference)
    if found is not None and expected is not None:
        same = found == expected
    else:
        same = normalisation.apply(_as_text(value)) == normalisation.apply(_as_text(reference))
    verb = "matches" if same else "differs from"
    return _verdict(same, f"field {field_path} {verb} the reference")


def _walk(document: Any, field_path: str) -> tuple[Any, str | None]:
    """The scalar at ``field_path`` in ``document``, or why there is none."""
    value = document
    walked: list[str] = []
    for key in field_path.split("."):
        where = ".".join(walked) or "the top level"
        if isinstance(value, dict):
            if key not in value:
                return None, f"no {key!r} at {where}"
            value = value[key]
        elif isinstance(value, list):
            if not key.isdigit() or int(key) >= len(value):
                return None, f"no item {key!r} at {where}"
            value = value[int(key)]
        else:
            return None, f"{where} is not an object or an array"
        walked.append(key)
    if value is None:
        return None, "is null"
    if isinstance(value, (dict, list)):
        return None, f"is {'an object' if isinstance(value, dict) else 'an array'}, not a value"
    return value, None


def _as_text(value: Reference) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def token_f1(
    answer: str, reference: str, *, threshold: float, normalisation: Normalisation
) -> Score:
    """SQuAD's token F1 of the normalised texts (whitespace tokens, multiset overlap); both
    empty is 1.0, one empty 0.0. Pass when the F1 is at least ``threshold``."""
    answer_tokens = normalisation.apply(answer).split()
    reference_tokens = normalisation.apply(reference).split()
    if not answer_tokens or not reference_tokens:
        f1 = 1.0 if answer_tokens == reference_tokens else 0.0
    else:
        common = sum((Counter(answer_tokens) & Counter(reference_tokens)).values())
        precision = common / len(answer_tokens)
        recall = common / len(reference_tokens)
        f1 = 0.0 if common == 0 else 2 * precision * recall / (precision + recall)
    passed = f1 >= threshold
    return Score(f1, "pass" if passed else "fail", f"token F1 {f1:.3f} (threshold {threshold:g})")


def similarity(name: str, value: float, threshold: float) -> Score:
    """A similarity in [0, 1] against ``threshold``, as :func:`token_f1` reports its F1."""
    outcome: Outcome = "pass" if value >= threshold else "fail"
    return Score(value, outcome, f"{name} {value:.3f} (threshold {threshold:g})")


def _percent(score: float) -> float:
    """sacrebleu's 0-100 score on a 0-1 scale, clamped: identical texts score 100.00000000000004."""
    return min(1.0, max(0.0, score / 100))


def bleu(answer: str, reference: str, *, threshold: float) -> Score:
    """sacrebleu's sentence BLEU with its defaults (``13a`` tokenisation, case-sensitive, ``exp``
    smoothing, effective order) divided by 100. Pass when it is at least ``threshold``; a
    reference that is only whitespace is an error."""
    if not reference.strip():
        return _error("reference is empty")
    import sacrebleu  # lazily: only a worker that scores a row pays for the import

    value = _percent(sacrebleu.sentence_bleu(answer, [reference]).score)
    return similarity("BLEU", value, threshold)


def chrf(answer: str, reference: str, *, threshold: float) -> Score:
    """sacrebleu's sentence chrF with its defaults (character 6-grams, no word n-grams, beta 2,
    whitespace removed) divided by 100. Pass when it is at least ``threshold``; a reference that
    is only whitespace is an error."""
    if not reference.strip():
        return _error("reference is empty")
    import sacrebleu  # lazily: only a worker that scores a row pays for the import

    value = _percent(sacrebleu.sentence_chrf(answer, [reference]).score)
    return similarity("chrF", value, threshold)


@lru_cache(maxsize=6)
def _rouge(
    rouge_type: RougeType, use_stemmer: bool
) -> tuple[Callable[[str], list[str]], Callable[[str, str], dict[str, Any]]]:
    """rouge-score's tokeniser and its scorer for ``rouge_type``, built once per worker."""
    # lazily: rouge_score imports all of nltk (for the Porter stemmer), which is heavy
    from rouge_score import rouge_scorer, tokenizers  # type: ignore[import-untyped]

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=use_stemmer)
    scorer = rouge_scorer.RougeScorer([rouge_type], tokenizer=tokenizer)
    return tokenizer.tokenize, scorer.score


def rouge(
    answer: str, reference: str, *, rouge_type: RougeType, use_stemmer: bool, threshold: float
) -> Score:
    """rouge-score's F-measure of ``rouge_type`` (``rouge1``/``rouge2``: unigram/bigram overlap,
    ``rougeL``: longest common subsequence) with its tokeniser (lowercased; runs of ASCII letters
    and digits, everything else a separator; ``use_stemmer``: NLTK's Porter stemmer on words of
    more than three characters). Pass when it is at least ``threshold``; a reference with no
    such token is an error."""
    tokenize, score = _rouge(rouge_type, use_stemmer)
    if not tokenize(reference):
        return _error("reference has no ROUGE tokens (ASCII letters or digits)")
    value = float(score(reference, answer)[rouge_type].fmeasure)
    return similarity(f"{rouge_type} F", value, threshold)
