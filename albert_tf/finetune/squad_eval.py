"""EM and F1 as the official SQuAD evaluation scripts (v1.1 and v2.0) define them.

Answers are compared after normalization: lower-case, drop ASCII punctuation, drop the
articles a/an/the as whole words, collapse whitespace. EM is 1 when the normalized
strings are equal; F1 is the harmonic mean of token precision and recall over the
bag of whitespace tokens. Each question takes its best score over its gold answers.
Scores are reported in percent, as the official scripts print them.

v1.1 reports `exact_match` and `f1`. v2.0 reports `exact`, `f1`, `total`, the same for
the HasAns / NoAns subsets, and, given the null odds, the best thresholds
(`best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`). In v2.0 an
unanswerable question's gold answer is "", and an empty prediction against an empty
gold scores 1 (F1 included).
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
    """The official normalization (see the module docstring); returns a str."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold):
    """1 if the normalized strings are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold, version_2=False):
    """Token-overlap F1 of the normalized answers (a float in [0, 1]).

    With version_2, an empty side scores 1 if both are empty and 0 otherwise (the v2.0
    script); the v1.1 script gives 0 whenever nothing overlaps.
    """
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not predicted or not expected):
        return float(predicted == expected)
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(example, version_2):
    golds = [text for text, _ in example.answers]
    if version_2:
        golds = [g for g in golds if normalize_answer(g)] or [""]
    return golds


def _best_threshold(raw_scores, null_odds, has_answer, answers):
    """The official find_best_thresh: sweeps the null-odds threshold upwards; a question
    answered "" scores 1 if it has no answer, 0 otherwise. Returns (score %, threshold)."""
    score = best = sum(1 for q in raw_scores if not has_answer[q])
    threshold = 0.0
    for qas_id in sorted(raw_scores, key=lambda q: null_odds[q]):
        if has_answer[qas_id]:
            score += raw_scores[qas_id]
        elif answers[qas_id]:
            score -= 1
        if score > best:
            best, threshold = score, null_odds[qas_id]
    return 100.0 * best / len(raw_scores), threshold


def evaluate(examples, answers, version_2=False, null_odds=None):
    """Scores `answers` {qas_id: text} against the examples' gold answers.

    Questions without gold answers are skipped in v1.1 (unlabelled data); a question
    with no prediction scores 0. Returns the dict the official script prints (see the
    module docstring); raises ValueError when no question has gold answers.
    """
    exact, f1, has_answer = {}, {}, {}
    for example in examples:
        if not version_2 and not example.answers:
            continue
        golds = _gold_answers(example, version_2)
        prediction = answers.get(example.qas_id, "")
        exact[example.qas_id] = max(exact_match(prediction, g) for g in golds)
        f1[example.qas_id] = max(f1_score(prediction, g, version_2) for g in golds)
        has_answer[example.qas_id] = bool(example.answers)
    if not exact:
        raise ValueError("no question has gold answers to evaluate against")
    if not version_2:
        return {"exact_match": 100.0 * sum(exact.values()) / len(exact), "f1": 100.0 * sum(f1.values()) / len(f1),
                "total": len(exact)}
    results = {"exact": 100.0 * sum(exact.values()) / len(exact), "f1": 100.0 * sum(f1.values()) / len(f1),
               "total": len(exact)}
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [q for q in exact if has_answer[q] == wanted]
        if subset:
            results[f"{name}_exact"] = 100.0 * sum(exact[q] for q in subset) / len(subset)
            results[f"{name}_f1"] = 100.0 * sum(f1[q] for q in subset) / len(subset)
            results[f"{name}_total"] = len(subset)
    if null_odds:
        results["best_exact"], results["best_exact_thresh"] = _best_threshold(exact, null_odds, has_answer, answers)
        results["best_f1"], results["best_f1_thresh"] = _best_threshold(f1, null_odds, has_answer, answers)
    return results
