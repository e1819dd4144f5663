"""albert-run-squad: SQuAD reading, windows, answer decoding, official EM/F1, and a
span-extraction rule that a tiny model learns end to end."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.checkpoints import build_model
from albert_tf.finetune import squad
from albert_tf.finetune.squad_eval import evaluate, exact_match, f1_score, normalize_answer
from albert_tf.text import SentencePieceTokenizer
from tests.conftest import HARD_CASES
from tests.test_export import save_checkpoint, small_config

# ----------------------------------------------------------------- official metrics


def test_official_normalization_and_scores_against_hand_computed_values():
    assert normalize_answer("The  Cat's, a HAT!") == "cats hat"
    assert normalize_answer("an apple theatre") == "apple theatre"  # articles only as whole words
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1
    assert f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)  # P 2/2, R 2/3
    assert f1_score("cat cat", "cat") == pytest.approx(2 / 3)  # P 1/2 (bag counts), R 1
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("", "") == 0.0 and f1_score("", "", version_2=True) == 1.0
    assert f1_score("the", "", version_2=True) == 1.0  # both normalize to nothing
    assert f1_score("cat", "", version_2=True) == 0.0


def example(qas_id, answers, is_impossible=False, context="ctx"):
    return squad.SquadExample(qas_id, "q?", context, [(a, 0) for a in answers], is_impossible)


def test_evaluate_v1_takes_the_best_gold_answer_and_reports_percent():
    examples = [example("a", ["Denver Broncos", "Broncos"]), example("b", ["1990"]), example("c", ["red car"])]
    results = evaluate(examples, {"a": "the Broncos", "b": "in 1990 then", "c": "blue car"})
    # a: EM 1 (vs "Broncos"); b: F1 2·(1/3·1)/(4/3) = 0.5; c: F1 0.5
    assert results == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 * 2 / 3), "total": 3}


def test_evaluate_v2_has_no_answer_subsets_and_best_threshold():
    examples = [example("a", ["Paris"]), example("b", [], is_impossible=True), example("c", [], is_impossible=True),
                example("d", ["Rome"])]
    answers = {"a": "Paris", "b": "", "c": "London", "d": ""}
    null_odds = {"a": -3.0, "b": 2.0, "c": -1.0, "d": 1.0}
    results = evaluate(examples, answers, version_2=True, null_odds=null_odds)
    assert results["exact"] == pytest.approx(50.0) and results["f1"] == pytest.approx(50.0)
    assert (results["HasAns_exact"], results["HasAns_total"]) == (pytest.approx(50.0), 2)
    assert (results["NoAns_exact"], results["NoAns_total"]) == (pytest.approx(50.0), 2)
    # Sweep by null odds: start 2 (no-answer questions); a(+1)=3 → best, thresh -3;
    # c(-1: answered "London")=2; d(+0)=2; b(0)=2. Best 3/4 at threshold -3.
    assert results["best_exact"] == pytest.approx(75.0) and results["best_exact_thresh"] == -3.0


# ----------------------------------------------------------------- reading SQuAD files


def squad_json(entries):
    """entries: [(context, [(qas_id, question, [(text, start)], is_impossible)])]."""
    return {"version": "test", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": qid, "question": q, "is_impossible": imp,
                                      "answers": [{"text": t, "answer_start": s} for t, s in answers]}
                                     for qid, q, answers, imp in questions]}
        for context, questions in entries]}]}


def write_json(path, content):
    path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


def test_bad_squad_files_name_file_and_question(tmp_path):
    context = "The river Thames flows through London."
    good = squad_json([(context, [("q1", "Which river?", [("Thames", 10)], False)])])
    (example,) = squad.read_squad_examples(write_json(tmp_path / "good.json", good), False, True)
    assert (example.qas_id, example.answers) == ("q1", [("Thames", 10)])
    shifted = squad_json([(context, [("q1", "Which river?", [("Thames", 11)], False)])])
    with pytest.raises(squad.SquadDataError, match=r"--train_file .*shifted.json: question q1: answers\[0\] 'Thames' "
                                                   r"does not match the context at answer_start=11 \(the context has "
                                                   r"'hames ' there\)"):
        squad.read_squad_examples(write_json(tmp_path / "shifted.json", shifted), False, True, "--train_file")
    v2 = squad_json([(context, [("q2", "Which sea?", [], True)])])
    with pytest.raises(squad.SquadDataError, match=r"question q2: is_impossible is set.*--version_2_with_negative"):
        squad.read_squad_examples(write_json(tmp_path / "v2.json", v2), False, True)
    assert squad.read_squad_examples(str(tmp_path / "v2.json"), True, True)[0].is_impossible
    unanswered = squad_json([(context, [("q3", "Which?", [], False)])])
    with pytest.raises(squad.SquadDataError, match=r"question q3: a training question needs an answer"):
        squad.read_squad_examples(write_json(tmp_path / "none.json", unanswered), False, True)
    (tmp_path / "broken.json").write_text('{"data": [\n  {"paragraphs": ]}', encoding="utf-8")
    with pytest.raises(squad.SquadDataError, match=r"broken.json:2:\d+: not JSON"):
        squad.read_squad_examples(str(tmp_path / "broken.json"), False, False)
    no_context = {"data": [{"paragraphs": [{"qas": []}]}]}
    with pytest.raises(squad.SquadDataError, match=r"data\[0\].paragraphs\[0\]: missing field 'context'"):
        squad.read_squad_examples(write_json(tmp_path / "noctx.json", no_context), False, False)
    twice = squad_json([(context, [("q1", "A?", [("Thames", 10)], False), ("q1", "B?", [("river", 4)], False)])])
    with pytest.raises(squad.SquadDataError, match=r"question q1: the id is used twice"):
        squad.read_squad_examples(write_json(tmp_path / "twice.json", twice), False, False)


# ----------------------------------------------------------------- tokens ↔ characters


def test_context_token_spans_cover_the_original_characters(spm_model_file):
    tokenizer = SentencePieceTokenizer(spm_model_file)
    context = "Zebra Paris, in 1,000 (years) — CAFÉ résumé ``quoted''"
    ids, spans = squad.tokenize_context(tokenizer, context)
    assert ids == tokenizer.encode(context)  # word by word tokenizes as the whole text does
    pieces = tokenizer.tokenize(context)  # surfaces, also of unknown characters
    for piece, (start, end) in zip(pieces, spans):
        assert tokenizer.normalize(context[start:end]) == tokenizer.piece_surface(piece), (piece, start, end)
    assert "".join(context[s:e] for s, e in spans) == "".join(context.split())
    for text in HARD_CASES:  # never out of range, always ordered
        _, spans = squad.tokenize_context(tokenizer, text)
        assert all(0 <= s <= e <= len(text) for s, e in spans)
        assert all(a[0] <= b[0] for a, b in zip(spans, spans[1:]))


def test_wordpiece_context_spans(wordpiece_vocab_file):
    from albert_tf.text import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(wordpiece_vocab_file)
    context = "北京是中国的首都。 The river's end"
    ids, spans = squad.tokenize_context(tokenizer, context)
    texts = [context[s:e] for s, e in spans]
    assert texts[:4] == ["北", "京", "是", "中"] and "'" in texts and texts[-1] == "end"


def test_windows_cover_every_token_once_as_max_context_and_labels_point_at_the_answer(spm_model_file):
    tokenizer = SentencePieceTokenizer(spm_model_file)
    words = ("the river city music history team station album song film church road " * 6).split()
    answer_index = 50
    words[answer_index] = "zebra"
    context = " ".join(words)
    start = context.index("zebra")
    examples = [squad.SquadExample("q", "where is the zebra ?", context, [("zebra", start)])]
    features = squad.convert_examples_to_features(examples, tokenizer, max_seq_length=40, doc_stride=12,
                                                  max_query_length=8, is_training=True)
    context_ids, spans = squad.tokenize_context(tokenizer, context)
    assert len(features) > 3
    max_context_owner = {}
    for index, feature in enumerate(features):
        assert len(feature.input_word_ids) <= 40
        assert feature.input_word_ids[0] == tokenizer.cls_id and feature.input_word_ids[-1] == tokenizer.sep_id
        for position, span in feature.token_spans.items():
            assert feature.input_word_ids[position] == context_ids[spans.index(span)]
            if feature.token_is_max_context[position]:
                assert span not in max_context_owner
                max_context_owner[span] = index
        if feature.start_position:
            labelled = feature.input_word_ids[feature.start_position:feature.end_position + 1]
            assert labelled == tokenizer.encode("zebra")[-len(labelled):]  # less a bare "▁" (no characters)
            assert context[feature.token_spans[feature.start_position][0]:
                           feature.token_spans[feature.end_position][1]] == "zebra"
    assert len(max_context_owner) == len(context_ids)
    assert sum(1 for f in features if f.start_position) >= 1
    assert any(f.start_position == 0 for f in features)  # windows without the answer point at [CLS]


def test_predict_answers_from_logits_v1_and_v2(spm_model_file):
    tokenizer = SentencePieceTokenizer(spm_model_file)
    context = "The zebra lives in Kenya, near Nairobi."
    examples = [squad.SquadExample("q", "where?", context, [])]
    (feature,) = squad.convert_examples_to_features(examples, tokenizer, 64, 32, 16, is_training=False)
    length = len(feature.input_word_ids)

    def token_span(word):  # (first, last) positions of the tokens of `word`
        first_char = context.index(word)
        starts = [p for p, (s, e) in feature.token_spans.items() if s == first_char and e > s]
        ends = [p for p, (s, e) in feature.token_spans.items() if e == first_char + len(word)]
        return starts[0], ends[-1]

    starts, ends = np.full((1, length), -5.0), np.full((1, length), -5.0)
    kenya, nairobi = token_span("Kenya"), token_span("Nairobi")
    starts[0, kenya[0]], ends[0, kenya[1]] = 4.0, 3.0
    starts[0, nairobi[0]], ends[0, nairobi[1]] = 3.5, 1.0  # "Nairobi" alone, and "Kenya, near Nairobi"
    whole = nairobi[1] - kenya[0] + 1  # tokens of "Kenya, near Nairobi"
    prediction = squad.predict_answers(examples, [feature], starts, ends, n_best_size=5, max_answer_length=whole)
    assert prediction.answers == {"q": "Kenya"}  # original characters, comma excluded
    texts = [c["text"] for c in prediction.nbest["q"]]
    assert texts[0] == "Kenya" and "Kenya, near Nairobi" in texts
    assert sum(c["probability"] for c in prediction.nbest["q"]) == pytest.approx(1.0)
    assert "Kenya, near Nairobi" not in [c["text"] for c in squad.predict_answers(
        examples, [feature], starts, ends, n_best_size=5, max_answer_length=whole - 1).nbest["q"]]
    starts[0, 0], ends[0, 0] = 5.0, 4.0  # null score 9 vs best span 7
    v2 = squad.predict_answers(examples, [feature], starts, ends, 5, whole, version_2_with_negative=True)
    assert v2.answers == {"q": ""} and v2.null_odds["q"] == pytest.approx(2.0)
    v2 = squad.predict_answers(examples, [feature], starts, ends, 5, whole, True, null_score_diff_threshold=2.5)
    assert v2.answers == {"q": "Kenya"}


# ----------------------------------------------------------------- learning a span rule

FILLER = "the river city music history team station album song film church road north south".split()
CITIES = ["paris", "london", "new york", "rome", "berlin", "old town", "madrid", "vienna"]


def synthetic_squad(rng, n, version_2):
    """The rule: the answer is the one- or two-word name right after "zebra" (v2.0: a
    third of the contexts have no zebra and no answer). Contexts run up to ~45 words,
    so some take more than one window."""
    paragraphs = []
    for i in range(n):
        words = list(rng.choice(FILLER, size=int(rng.integers(6, 40))))
        impossible = version_2 and rng.random() < 0.33
        answers = []
        if not impossible:
            at = int(rng.integers(0, len(words) + 1))
            city = str(rng.choice(CITIES)).title()
            prefix = " ".join(words[:at] + ["zebra"]) + " "
            context = prefix + city + rng.choice([",", "", "."]) + " " + " ".join(words[at:])
            answers = [(city, len(prefix))]
        else:
            context = " ".join(words)
        paragraphs.append((context.strip(), [(f"q{i}", "which place follows the zebra ?", answers, impossible)]))
    return squad_json(paragraphs)


def run_squad(args):
    return subprocess.run([sys.executable, "-m", "albert_tf.run_squad", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("version_2", [False, True], ids=["v1.1", "v2.0"])
def test_fine_tuning_learns_a_span_rule_and_exports(tmp_path, spm_model_file, version_2):
    rng = np.random.default_rng(3)
    train = write_json(tmp_path / "train.json", synthetic_squad(rng, 500, version_2))
    dev = write_json(tmp_path / "dev.json", synthetic_squad(rng, 80, version_2))
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    config_file = tmp_path / "albert_config.json"
    config.to_json_file(str(config_file))
    save_checkpoint(build_model(config, "pretrainer"), tmp_path / "pretrained")
    out = tmp_path / "out"
    done = run_squad([
        f"--albert_config_file={config_file}", f"--init_checkpoint={tmp_path / 'pretrained'}",
        f"--spm_model_file={spm_model_file}", f"--train_file={train}", f"--predict_file={dev}", "--do_train",
        "--do_predict", "--max_seq_length=48", "--doc_stride=16", "--max_query_length=12", "--train_batch_size=32",
        "--learning_rate=1e-3", "--train_step=200", "--save_checkpoints_steps=100", "--predict_batch_size=64",
        f"--output_dir={out}", f"--export_dir={tmp_path / 'export'}", "--train_feature_file=ignored.tf",
        *(["--version_2_with_negative"] if version_2 else [])])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING: --train_feature_file is ignored" in done.stderr
    assert "windows" in done.stderr and "step 200/200" in done.stderr
    best = json.loads((out / "best" / "best_results.json").read_text())
    results = json.loads((out / "eval_results.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert len(predictions) == 80 and set(nbest) == set(predictions)
    if version_2:
        assert best["f1"] > 85 and best["NoAns_total"] > 0, best
        assert set(json.loads((out / "null_odds.json").read_text())) == set(predictions)
    else:
        assert best["exact_match"] > 85, best
    assert results["f1"] == best["f1"] and results["checkpoint"].startswith(str(out / "best"))
    # The export gives the same logits as the model, so the same answers.
    loaded = tf.saved_model.load(str(tmp_path / "export" / "squad" / "1"))
    examples = squad.read_squad_examples(dev, version_2, False)
    tokenizer = SentencePieceTokenizer(spm_model_file)
    features = squad.convert_examples_to_features(examples, tokenizer, 48, 16, 12, False)
    inputs, _ = squad.features_to_arrays(features, 48)
    outputs = loaded.signatures["encode"](**{k: tf.constant(v) for k, v in inputs.items()})
    exported = squad.predict_answers(examples, features, outputs["start_logits"].numpy(),
                                     outputs["end_logits"].numpy(), version_2_with_negative=version_2)
    assert exported.answers == predictions
    raw = loaded.signatures["serving_default"](text=tf.constant(["which place follows the zebra ?"]),
                                               text_b=tf.constant(["the river zebra Vienna and the road"]))
    ids = raw["input_word_ids"].numpy()[0]
    best_start = int(np.argmax(raw["start_logits"].numpy()[0]))
    assert tokenizer.convert_ids_to_tokens([ids[best_start]])[0].lstrip("\u2581").startswith("v")
    if not version_2:
        served_with_batching_equals_alone(loaded, tmp_path / "export" / "squad")


def served_with_batching_equals_alone(loaded, model_dir):
    """albert-serve with batching merges raw-text requests of different lengths; each
    response's per-token outputs are cut back to the request's own length and equal the
    SavedModel called on that request alone."""
    import concurrent.futures

    from albert_tf.serving.client import AlbertClient
    from tests.model_server import ServerProcess

    parameters = model_dir.parent / "batching.txt"
    parameters.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 200000 }\n"
                          "num_batch_threads { value: 1 }\n")
    process = ServerProcess("embedded", [f"--model_base_path={model_dir}", "--model_name=squad", "--enable_batching",
                                         f"--batching_parameters_file={parameters}"])
    contexts = ["zebra Rome", "the river zebra Vienna and the road north of the city station",
                "song film zebra Paris", "church road zebra Old Town music history team station album"]
    try:
        client = AlbertClient(process.address, "squad")
        with concurrent.futures.ThreadPoolExecutor(len(contexts)) as pool:
            served = list(pool.map(lambda c: client.predict(["which place follows the zebra ?"], [c]), contexts))
    finally:
        _, stderr = process.stop()
    counts = re.search(r"batching: (\d+) batches for (\d+) requests", stderr)
    assert counts and int(counts.group(1)) < int(counts.group(2)), stderr[-2000:]  # requests were merged
    for context, response in zip(contexts, served):
        alone = loaded.signatures["serving_default"](text=tf.constant(["which place follows the zebra ?"]),
                                                     text_b=tf.constant([context]))
        for key in ("start_logits", "end_logits", "input_word_ids", "input_mask"):
            assert response[key].shape == alone[key].shape, key
            np.testing.assert_allclose(response[key], alone[key].numpy(), atol=2e-5, rtol=0, err_msg=key)


def test_bad_flags_and_data_fail_clearly(tmp_path, spm_model_file):
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    config.to_json_file(str(tmp_path / "albert_config.json"))
    context = "The river Thames flows through London."
    bad = write_json(tmp_path / "bad.json", squad_json([(context, [("q9", "Which river?", [("Thames", 3)], False)])]))
    common = [f"--albert_config_file={tmp_path / 'albert_config.json'}", f"--spm_model_file={spm_model_file}",
              f"--output_dir={tmp_path / 'out'}", "--max_seq_length=48", "--max_query_length=12"]
    done = run_squad(common + [f"--train_file={bad}", "--do_train"])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"--train_file {bad}: question q9: answers[0] 'Thames' does not match the context" in done.stderr
    done = run_squad(common + ["--do_predict"])
    assert done.returncode == 1 and "--do_predict needs --predict_file" in done.stderr
    done = run_squad(common[:-2] + ["--max_seq_length=40", "--max_query_length=40", f"--predict_file={bad}",
                                    "--do_predict"])
    assert done.returncode == 1 and "--max_seq_length=40 must be greater than --max_query_length=40 + 3" in done.stderr
