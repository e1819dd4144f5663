"""albert-create-pretraining-data: format, statistics, determinism and errors."""

import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.data.instances import create_instances
from albert_tf.data.masking import MaskingRule
from albert_tf.data.schema import PRETRAINING_FEATURES, encode_example, parsing_spec
from albert_tf.text import SentencePieceTokenizer
from tests.conftest import SHARED_CORPUS

SEQ, PRED = 128, 20


def run_create(args):
    return subprocess.run(
        [sys.executable, "-m", "albert_tf.create_pretraining_data", *args], capture_output=True, timeout=600
    )


def read_examples(paths, seq=SEQ, pred=PRED):
    spec = parsing_spec(seq, pred)
    return [
        {k: v.numpy() for k, v in tf.io.parse_single_example(record, spec).items()}
        for record in tf.data.TFRecordDataset(paths)
    ]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """The first half of WikiText-2 valid, in the original one-sentence-per-line layout
    (paragraphs split into sentences, a blank line between articles)."""
    from albert_tf.data.corpus import split_sentences

    lines = SHARED_CORPUS.read_text(encoding="utf-8").split("\n")[:1900]
    out = []
    for line in lines:
        if line.startswith(" = ") and not line.startswith(" = = "):
            out.append("")  # a new article: a new document
        if line.strip() and not line.strip().startswith("="):
            out.extend(split_sentences(line))
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, corpus_file, spm_model_file):
    """Shards from 1 and 2 workers, same flags and seed."""
    out = tmp_path_factory.mktemp("tfrecords")
    common = [f"--input_file={corpus_file}", f"--spm_model_file={spm_model_file}", f"--max_seq_length={SEQ}",
              f"--max_predictions_per_seq={PRED}", "--dupe_factor=3", "--random_seed=7"]
    results = {}
    for workers in (1, 2):
        shards = [str(out / f"w{workers}-{i}.tfrecord") for i in range(2)]
        result = run_create(common + [f"--output_file={','.join(shards)}", f"--num_workers={workers}"])
        assert result.returncode == 0, result.stderr.decode()[-3000:]
        results[workers] = (shards, result.stderr.decode())
    return results


def test_example_bytes_equal_tf_train_example_parsing():
    features = {
        "input_ids": [2, 70000, 3, 0], "input_mask": [1, 1, 1, 0], "segment_ids": [0, 0, 1, 0],
        "token_boundary": [1, 1, 1, 0], "masked_lm_positions": [1, 0], "masked_lm_ids": [9, 0],
        "masked_lm_weights": [1.0, 0.0], "next_sentence_labels": [1],
    }
    ours = tf.train.Example.FromString(encode_example(features))
    reference = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(float_list=tf.train.FloatList(value=v)) if k == "masked_lm_weights"
        else tf.train.Feature(int64_list=tf.train.Int64List(value=v))
        for k, v in features.items()
    }))
    assert ours == reference


def test_features_names_dtypes_and_lengths(generated):
    examples = read_examples(generated[1][0])
    assert [name for name, _, _ in PRETRAINING_FEATURES] == [
        "input_ids", "input_mask", "segment_ids", "token_boundary",
        "masked_lm_positions", "masked_lm_ids", "masked_lm_weights", "next_sentence_labels",
    ]
    raw = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(generated[1][0][0]))).numpy())
    kinds = {k: v.WhichOneof("kind") for k, v in raw.features.feature.items()}
    assert kinds == {name: ("float_list" if kind == "float" else "int64_list") for name, kind, _ in PRETRAINING_FEATURES}
    for ex in examples[:50]:
        assert {k: len(v) for k, v in ex.items()} == {
            "input_ids": SEQ, "input_mask": SEQ, "segment_ids": SEQ, "token_boundary": SEQ,
            "masked_lm_positions": PRED, "masked_lm_ids": PRED, "masked_lm_weights": PRED, "next_sentence_labels": 1,
        }


def test_statistics_over_a_real_corpus(generated, spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    examples = read_examples(generated[1][0])
    assert len(examples) > 1000
    masked = tokens = swapped = 0
    expected_masked = 0
    for ex in examples:
        n = int(ex["input_mask"].sum())
        ids = ex["input_ids"]
        assert ex["input_mask"][:n].all() and not ex["input_mask"][n:].any() and not ids[n:].any()
        weights = ex["masked_lm_weights"]
        k = int(weights.sum())
        positions = ex["masked_lm_positions"][:k]
        assert list(positions) == sorted(set(positions.tolist())), "positions sorted and unique"
        assert not ex["masked_lm_positions"][k:].any() and not weights[k:].any()
        assert all(0 < p < n for p in positions)
        assert not set(ids[positions]) & {tok.cls_id, tok.sep_id, tok.pad_id} - {tok.mask_id}
        assert not set(ex["masked_lm_ids"][:k]) & {tok.cls_id, tok.sep_id, tok.pad_id}
        seps = np.flatnonzero(ids[:n] == tok.sep_id)
        assert ids[0] == tok.cls_id and len(seps) >= 2 and seps[-1] == n - 1
        assert (ex["segment_ids"][: seps[0] + 1] == 0).all() and (ex["segment_ids"][seps[0] + 1 : n] == 1).all()
        assert ex["token_boundary"][0] == 1 and ex["token_boundary"][n - 1] == 1
        masked += k
        tokens += n
        expected_masked += min(PRED, max(1, round(n * 0.15)))
        swapped += int(ex["next_sentence_labels"][0])
    assert abs(masked / tokens - expected_masked / tokens) < 0.01
    assert abs(masked / tokens - 0.15) < 0.01
    assert abs(swapped / len(examples) - 0.5) < 0.03
    # 80% [MASK], 10% kept, 10% random (within sampling error).
    mask_share = np.mean([ex["input_ids"][p] == tok.mask_id for ex in examples for p in ex["masked_lm_positions"][: int(ex["masked_lm_weights"].sum())]])
    assert abs(mask_share - 0.8) < 0.02


def test_output_is_identical_whatever_the_worker_count(generated):
    (one, log_one), (two, _) = generated[1], generated[2]
    for a, b in zip(one, two):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()
    assert "masked fraction" in log_one and "SOP swapped" in log_one and "documents" in log_one


def test_seed_changes_the_output(tmp_path, corpus_file, spm_model_file):
    outputs = []
    for seed in (1, 2):
        path = tmp_path / f"s{seed}.tfrecord"
        result = run_create([f"--input_file={corpus_file}", f"--output_file={path}", f"--spm_model_file={spm_model_file}",
                             "--max_seq_length=64", "--dupe_factor=1", f"--random_seed={seed}", "--num_workers=1"])
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        outputs.append(path.read_bytes())
    assert outputs[0] != outputs[1]


def test_sop_pairs_come_from_one_document_and_swaps_reverse_order():
    rng = random.Random(0)
    documents = []
    for d in range(30):  # document d uses ids d*1000 .. d*1000+999, increasing in order
        n_sentences = rng.randint(1, 6)
        counter = iter(range(d * 1000, d * 1000 + 999))
        documents.append([[next(counter) for _ in range(rng.randint(1, 40))] for _ in range(n_sentences)])
    is_word_start = [True] * 40000
    labels = []
    for d, document in enumerate(documents):
        for inst in create_instances(document, documents[:d] + documents[d + 1:], 64, 0.1, False, 1, 2,
                                     is_word_start, random.Random(d)):
            body = [t for t in inst.ids if t not in (1, 2)]
            assert all(d * 1000 <= t < d * 1000 + 999 for t in body), "both segments from the document"
            sep = inst.ids.index(2)
            a, b = inst.ids[1:sep], inst.ids[sep + 1:-1]
            assert a and b
            assert (max(a) < min(b)) == (inst.swapped == 0), "label 1 exactly when B precedes A"
            labels.append(inst.swapped)
    assert 0.35 < np.mean(labels) < 0.65


def test_whole_word_masking_masks_every_piece_of_a_word():
    # Pieces 100-199 continue a word; 200+ start one.
    is_word_start = [True] * 100 + [False] * 100 + [True] * 300
    rule = MaskingRule(500, is_word_start, cls_id=2, sep_id=3, mask_id=4, excluded_replacement_ids=range(5),
                       masked_lm_prob=0.3, max_predictions_per_seq=40)
    rng = random.Random(3)
    for _ in range(200):
        ids = [2] + [rng.choice([rng.randrange(200, 500), rng.randrange(100, 200)]) for _ in range(60)] + [3]
        ids[1] = 250
        _, positions, labels, boundary = rule.apply(ids, rng)
        masked = set(positions)
        for i in range(1, len(ids) - 1):
            word_start = i
            while not is_word_start[ids[word_start]]:
                word_start -= 1
            assert (i in masked) == (word_start in masked)
        assert labels == [ids[p] for p in positions]
        assert boundary == [1 if (t in (2, 3) or is_word_start[t]) else 0 for t in ids]


def test_ngram_lengths_favor_short_spans():
    rule = MaskingRule(10, [True] * 10, 2, 3, 4, masked_lm_prob=0.15, ngram=3)
    rng = random.Random(0)
    draws = [rule._draw_ngram(rng) for _ in range(30000)]
    shares = [draws.count(n) / len(draws) for n in (1, 2, 3)]
    np.testing.assert_allclose(shares, [6 / 11, 3 / 11, 2 / 11], atol=0.01)
    reversed_rule = MaskingRule(10, [True] * 10, 2, 3, 4, favor_shorter_ngram=False)
    assert reversed_rule.ngram_cdf[0] == pytest.approx(2 / 11)


def test_error_cases_leave_nothing_behind(tmp_path, corpus_file, spm_model_file, wordpiece_vocab_file):
    existing = tmp_path / "keep.tfrecord"
    existing.write_bytes(b"previous run")
    base = [f"--output_file={existing}", f"--spm_model_file={spm_model_file}", "--num_workers=1"]

    result = run_create(base[:1] + base[1:] + [f"--input_file={tmp_path}/missing*.txt"])
    assert result.returncode == 1 and b"--input_file: no file matches" in result.stderr

    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n")
    result = run_create(base + [f"--input_file={empty}"])
    assert result.returncode == 1 and b"empty corpus" in result.stderr

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A fine sentence here.\nAnother one follows.\n\xff\xfe\nLast line.\n")
    result = run_create(base + [f"--input_file={bad}"])
    assert result.returncode == 1 and b"bad.txt:3: invalid UTF-8" in result.stderr
    assert existing.read_bytes() == b"previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "empty.txt", "keep.tfrecord"]

    result = run_create(base + [f"--input_file={bad}", "--skip_bad_lines", "--max_seq_length=32"])
    assert result.returncode == 0 and b"skipped lines   1" in result.stderr
    assert existing.read_bytes() != b"previous run"

    no_specials = tmp_path / "vocab.txt"
    no_specials.write_text("[PAD]\n[UNK]\nhello\n")
    result = run_create([f"--output_file={tmp_path}/x.tfrecord", f"--vocab_file={no_specials}", f"--input_file={corpus_file}"])
    assert result.returncode == 1 and b"missing special token" in result.stderr

    result = run_create([f"--output_file={tmp_path}/y.tfrecord", f"--spm_model_file={spm_model_file}",
                         f"--input_file={corpus_file}", "--max_seq_length=512", "--dupe_factor=1", "--num_workers=1"])
    assert result.returncode == 0 and b"warning: --masked_lm_prob=0.15" in result.stderr

    result = run_create([f"--output_file={tmp_path}/z.tfrecord", f"--input_file={corpus_file}"])
    assert result.returncode == 1 and b"--spm_model_file" in result.stderr


def test_wordpiece_corpus_with_chinese_text(tmp_path, wordpiece_vocab_file):
    corpus = tmp_path / "zh.txt"
    corpus.write_text("东京是日本的首都。\n北京是中国的首都。\n中文字的分词很有意思。\n\n第二个文档。\n它有两句话。\n", encoding="utf-8")
    out = tmp_path / "zh.tfrecord"
    result = run_create([f"--input_file={corpus}", f"--output_file={out}", f"--vocab_file={wordpiece_vocab_file}",
                         "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=4", "--num_workers=1"])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    examples = read_examples([str(out)], seq=32, pred=5)
    assert examples and all(ex["input_ids"][0] == 101 for ex in examples)
