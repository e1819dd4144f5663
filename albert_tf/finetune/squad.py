"""SQuAD v1.1 / v2.0: reading the JSON, windowed features, and answers from span logits.

No TensorFlow here. The steps, as the original run_squad scripts do them:

1. `read_squad_examples`: the JSON's questions, each with its context and answers. An
   answer whose `answer_start` does not point at its `text` in the context is an error
   naming the file and question id.
2. `convert_examples_to_features`: the context is tokenized once, with every token's
   character span in the original context (`tokenize_context`). Each question becomes one
   feature per context window: `[CLS] question [SEP] window [SEP]`, windows `doc_stride`
   tokens apart, the question cut to `max_query_length` tokens. Training labels are the
   answer's first and last token; an answer outside the window, or no answer (v2.0),
   points at [CLS] (position 0).
3. `predict_answers`: for each question, the n-best spans over its windows (each token
   scored in the window where it has the most context), the answer text cut from the
   original context by character offsets, and for v2.0 the "no answer" decision:
   `null_score - best_span_score > null_score_diff_threshold` answers "".
"""

import collections
import dataclasses
import json
import math
import re

import numpy as np


class SquadDataError(ValueError):
    """A SQuAD file is unreadable or malformed; the message names the file and question."""


@dataclasses.dataclass
class SquadExample:
    """One question. `answers` is a list of (text, answer_start) pairs (empty for a v2.0
    unanswerable question or unlabelled data)."""

    qas_id: str
    question: str
    context: str
    answers: list
    is_impossible: bool = False


@dataclasses.dataclass
class SquadFeature:
    """One (question, context window) model input.

    input_word_ids / input_type_ids: list of int (unpadded, length <= max_seq_length).
    token_spans: {position of a context token: its (char_start, char_end) in the context}.
    token_is_max_context: {position: True if this window gives the token the most context}.
    start_position / end_position: training labels (0 = [CLS] = no answer here).
    """

    example_index: int
    input_word_ids: list
    input_type_ids: list
    token_spans: dict
    token_is_max_context: dict
    start_position: int = 0
    end_position: int = 0


def _field(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        raise SquadDataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise SquadDataError(f"{where}: field {key!r} should be a {names}, got {type(value).__name__}")
    return value


def read_squad_examples(path, version_2_with_negative, is_training, flag="--predict_file"):
    """Reads a SQuAD JSON file (v1.1 or v2.0 layout) into a list of SquadExample.

    Every answer must be found at its answer_start in the context. With
    `is_training`, each answerable question needs an answer; without
    `version_2_with_negative`, a question marked is_impossible is an error.
    Raises SquadDataError naming `flag`, the file, and the question id.
    """
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as e:
        raise SquadDataError(f"{flag} {path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise SquadDataError(f"{flag} {path}: not UTF-8 ({e})") from None
    except json.JSONDecodeError as e:
        raise SquadDataError(f"{flag} {path}:{e.lineno}:{e.colno}: not JSON ({e.msg})") from None
    where = f"{flag} {path}"
    examples, seen = [], set()
    for a, article in enumerate(_field(document, "data", list, where)):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"{where}: data[{a}]")):
            here = f"{where}: data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, here)
            for q, qa in enumerate(_field(paragraph, "qas", list, here)):
                qa_where = f"{here}.qas[{q}]"
                qas_id = str(_field(qa, "id", (str, int), qa_where))
                qa_where = f"{where}: question {qas_id}"
                if qas_id in seen:
                    raise SquadDataError(f"{qa_where}: the id is used twice")
                seen.add(qas_id)
                question = _field(qa, "question", str, qa_where)
                is_impossible = bool(qa.get("is_impossible", False))
                if is_impossible and not version_2_with_negative:
                    raise SquadDataError(f"{qa_where}: is_impossible is set; this is SQuAD v2.0 data, pass "
                                         "--version_2_with_negative")
                answers = []
                for n, answer in enumerate(qa.get("answers", []) if not is_impossible else []):
                    text = _field(answer, "text", str, f"{qa_where}: answers[{n}]")
                    start = _field(answer, "answer_start", int, f"{qa_where}: answers[{n}]")
                    found = context[start:start + len(text)] if start >= 0 else ""
                    if found != text or not text.strip():
                        raise SquadDataError(
                            f"{qa_where}: answers[{n}] {text!r} does not match the context at answer_start={start} "
                            f"(the context has {found!r} there)")
                    answers.append((text, start))
                if is_training and not is_impossible and not answers:
                    raise SquadDataError(f"{qa_where}: a training question needs an answer"
                                         + ("" if version_2_with_negative else
                                            " (for unanswerable questions use --version_2_with_negative)"))
                examples.append(SquadExample(qas_id, question, context, answers, is_impossible))
    if not examples:
        raise SquadDataError(f"{where}: holds no questions")
    return examples


def _piece_spans(tokenizer, word, word_start, pieces):
    """Character spans (in the context) of the pieces of one whitespace-free word.

    The word is normalized character by character, remembering which original
    character each normalized character came from; the pieces' surfaces are then
    matched in order. A piece with no known surface ([UNK]) spans up to the next
    piece's match. If the pieces do not line up (normalization that is not
    per-character), the remaining pieces span the rest of the word.
    """
    normalized, origin = [], []
    for index, char in enumerate(word):
        for produced in tokenizer.normalize_char(char):
            normalized.append(produced)
            origin.append(index)
    normalized = "".join(normalized)
    surfaces = [tokenizer.piece_surface(piece) for piece in pieces]
    spans, cursor = [], 0

    def char_span(first, stop):  # normalized [first, stop) → original characters
        if stop <= first:
            at = word_start + (origin[first] if first < len(origin) else len(word))
            return at, at
        return word_start + origin[first], word_start + origin[stop - 1] + 1

    for index, surface in enumerate(surfaces):
        if surface is None:
            following = next((s for s in surfaces[index + 1:] if s), None)
            stop = normalized.find(following, cursor + 1) if following else len(normalized)
            stop = len(normalized) if stop < 0 else stop
        elif normalized.startswith(surface, cursor):
            stop = cursor + len(surface)
        else:
            rest = (word_start + (origin[cursor] if cursor < len(origin) else len(word)), word_start + len(word))
            return spans + [rest] * (len(pieces) - index)
        spans.append(char_span(cursor, stop))
        cursor = stop
    return spans


def tokenize_context(tokenizer, context):
    """Tokenizes `context` word by word (words split on whitespace, which is how both
    tokenizers split anyway).

    Returns (ids: list of int, spans: list of (char_start, char_end) in `context`), one
    span per token: the original characters the token came from (see _piece_spans).
    """
    ids, spans = [], []
    for match in re.finditer(r"\S+", context):
        pieces = tokenizer.tokenize(match.group())
        spans.extend(_piece_spans(tokenizer, match.group(), match.start(), pieces))
        ids.extend(tokenizer.convert_tokens_to_ids(pieces))
    return ids, spans


def answer_token_span(spans, answer_start, answer_end):
    """(first, last) context token of the characters [answer_start, answer_end), or
    None when no token overlaps them."""
    first = next((i for i, (_, end) in enumerate(spans) if end > answer_start), None)
    last = next((i for i in range(len(spans) - 1, -1, -1) if spans[i][0] < answer_end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def _windows(num_tokens, max_window, doc_stride):
    """(start, length) of the context windows, as the original: stride `doc_stride`
    until a window reaches the end."""
    windows, start = [], 0
    while True:
        length = min(num_tokens - start, max_window)
        windows.append((start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, doc_stride)


def _max_context_windows(windows, num_tokens):
    """For each context token, the index of the window where it has the most context:
    the highest min(left, right context) + 0.01 × window length, as the original (the
    first such window on a tie)."""
    best = [(-1.0, 0)] * num_tokens
    for index, (start, length) in enumerate(windows):
        for position in range(start, start + length):
            score = min(position - start, start + length - 1 - position) + 0.01 * length
            if score > best[position][0]:
                best[position] = (score, index)
    return [index for _, index in best]


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training,
                                 context_cache=None):
    """SquadExamples → list of SquadFeature (see the module docstring).

    context_cache: optional dict reused across calls, {context: (ids, spans)}, since
    SQuAD asks several questions about each paragraph.
    """
    if max_seq_length <= max_query_length + 3:
        raise ValueError(f"--max_seq_length={max_seq_length} must be greater than --max_query_length="
                         f"{max_query_length} + 3")
    if doc_stride < 1:
        raise ValueError(f"--doc_stride must be >= 1, got {doc_stride}")
    cache = context_cache if context_cache is not None else {}
    features = []
    for example_index, example in enumerate(examples):
        if example.context not in cache:
            cache[example.context] = tokenize_context(tokenizer, example.context)
        context_ids, spans = cache[example.context]
        query_ids = tokenizer.encode(example.question)[:max_query_length]
        answer = None
        if is_training and example.answers:
            text, start = example.answers[0]
            answer = answer_token_span(spans, start, start + len(text))
        max_window = max_seq_length - len(query_ids) - 3
        windows = _windows(len(context_ids), max_window, doc_stride)
        owners = _max_context_windows(windows, len(context_ids))
        for window_index, (start, length) in enumerate(windows):
            ids = [tokenizer.cls_id] + query_ids + [tokenizer.sep_id]
            types = [0] * len(ids)
            token_spans, is_max_context = {}, {}
            for offset in range(length):
                position = start + offset
                token_spans[len(ids)] = spans[position]
                is_max_context[len(ids)] = owners[position] == window_index
                ids.append(context_ids[position])
                types.append(1)
            ids.append(tokenizer.sep_id)
            types.append(1)
            feature = SquadFeature(example_index, ids, types, token_spans, is_max_context)
            if answer is not None and start <= answer[0] and answer[1] < start + length:
                first_context_position = len(query_ids) + 2
                feature.start_position = answer[0] - start + first_context_position
                feature.end_position = answer[1] - start + first_context_position
            features.append(feature)
    return features


def features_to_arrays(features, max_seq_length, pad_id=0):
    """Model inputs {input_word_ids, input_mask, input_type_ids: int32 [N, max_seq_length]}
    and labels {start_positions, end_positions: int32 [N]}."""
    n = len(features)
    ids = np.full((n, max_seq_length), pad_id, np.int32)
    mask = np.zeros((n, max_seq_length), np.int32)
    types = np.zeros((n, max_seq_length), np.int32)
    for row, feature in enumerate(features):
        length = len(feature.input_word_ids)
        ids[row, :length] = feature.input_word_ids
        mask[row, :length] = 1
        types[row, :length] = feature.input_type_ids
    labels = {
        "start_positions": np.asarray([f.start_position for f in features], np.int32),
        "end_positions": np.asarray([f.end_position for f in features], np.int32),
    }
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}, labels


@dataclasses.dataclass
class Prediction:
    """The answers for all questions: `answers` {qas_id: text ("" = no answer)},
    `nbest` {qas_id: list of dicts text/probability/start_logit/end_logit}, and for
    v2.0 `null_odds` {qas_id: null score − best span score}."""

    answers: dict
    nbest: dict
    null_odds: dict


def _top_indices(logits, n):
    return np.argsort(-logits, kind="stable")[:n]


def predict_answers(examples, features, start_logits, end_logits, n_best_size=20, max_answer_length=30,
                    version_2_with_negative=False, null_score_diff_threshold=0.0):
    """Answers from the model's logits (float arrays [num_features, T], rows in
    `features` order). Returns a Prediction."""
    by_example = collections.defaultdict(list)
    for index, feature in enumerate(features):
        by_example[feature.example_index].append(index)
    answers, nbest_all, null_odds = {}, {}, {}
    for example_index, example in enumerate(examples):
        candidates, null_score = [], math.inf
        for index in by_example[example_index]:
            feature, starts, ends = features[index], start_logits[index], end_logits[index]
            null_score = min(null_score, float(starts[0] + ends[0]))
            length = len(feature.input_word_ids)
            for s in _top_indices(starts[:length], n_best_size):
                for e in _top_indices(ends[:length], n_best_size):
                    if s not in feature.token_spans or e not in feature.token_spans:
                        continue
                    if not feature.token_is_max_context[s] or e < s or e - s + 1 > max_answer_length:
                        continue
                    candidates.append((float(starts[s] + ends[e]), index, int(s), int(e),
                                       float(starts[s]), float(ends[e])))
        candidates.sort(key=lambda c: -c[0])
        nbest, seen = [], set()
        for score, index, s, e, start_logit, end_logit in candidates:
            feature = features[index]
            char_start, char_end = feature.token_spans[s][0], feature.token_spans[e][1]
            text = example.context[char_start:char_end]
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": start_logit, "end_logit": end_logit})
            if len(nbest) == n_best_size:
                break
        best_span = nbest[0] if nbest else None
        if version_2_with_negative and math.isfinite(null_score):
            nbest.append({"text": "", "start_logit": null_score, "end_logit": 0.0})
            nbest.sort(key=lambda c: -(c["start_logit"] + c["end_logit"]))
            nbest = nbest[:n_best_size]
        if not nbest:
            nbest = [{"text": "", "start_logit": 0.0, "end_logit": 0.0}]
        scores = np.asarray([c["start_logit"] + c["end_logit"] for c in nbest])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        for candidate, probability in zip(nbest, probabilities):
            candidate["probability"] = float(probability)
        nbest_all[example.qas_id] = nbest
        if version_2_with_negative:
            best_score = best_span["start_logit"] + best_span["end_logit"] if best_span else -math.inf
            odds = null_score - best_score
            null_odds[example.qas_id] = odds if math.isfinite(odds) else 1e9
            answers[example.qas_id] = "" if odds > null_score_diff_threshold or best_span is None else best_span["text"]
        else:
            answers[example.qas_id] = best_span["text"] if best_span else ""
    return Prediction(answers, nbest_all, null_odds)

