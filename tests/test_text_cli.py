"""albert-train-tokenizer and albert-tokenize, run as users run them."""

import json
import subprocess
import sys

import pytest
import sentencepiece as spm

from tests.conftest import HARD_CASES, SHARED_CORPUS, corpus_lines


def run_cli(module, args, stdin=b""):
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True, timeout=300)


def test_train_tokenizer_writes_albert_ids(tmp_path):
    prefix = tmp_path / "out" / "tok"
    result = run_cli("albert_tf.train_tokenizer", [f"--input={SHARED_CORPUS}", f"--model_prefix={prefix}", "--vocab_size=500"])
    assert result.returncode == 0, result.stderr.decode()
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    assert [sp.IdToPiece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert sp.GetPieceSize() == 500
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["tok.model", "tok.vocab"]
    # do_lower_case: no upper-case letters are learnt.
    assert not any(any(c.isupper() for c in sp.IdToPiece(i)) for i in range(5, 500))


def test_train_tokenizer_errors(tmp_path):
    result = run_cli("albert_tf.train_tokenizer", [f"--input={tmp_path}/nothing*.txt", f"--model_prefix={tmp_path}/m"])
    assert result.returncode == 1 and b"--input: no file matches" in result.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    result = run_cli("albert_tf.train_tokenizer", [f"--input={bad}", f"--model_prefix={tmp_path}/m"])
    assert result.returncode == 1 and b"bad.txt:2: invalid UTF-8" in result.stderr
    small = tmp_path / "small.txt"
    small.write_text("just a few words here\n")
    result = run_cli("albert_tf.train_tokenizer", [f"--input={small}", f"--model_prefix={tmp_path}/m", "--vocab_size=5000"])
    assert result.returncode == 1 and b"--vocab_size=5000 is too large" in result.stderr
    assert not list(tmp_path.glob("m.*"))


def test_tokenize_cli_python_and_in_graph_agree(spm_model_file, wordpiece_vocab_file):
    lines = corpus_lines()[:400] + [h.replace("\n", " ").replace("\r", " ") for h in HARD_CASES]
    stdin = ("\n".join(lines) + "\n").encode("utf-8")
    for flag in (f"--spm_model_file={spm_model_file}", f"--vocab_file={wordpiece_vocab_file}"):
        python = run_cli("albert_tf.tokenize", [flag, "--pieces"], stdin)
        graph = run_cli("albert_tf.tokenize", [flag, "--pieces", "--in_graph"], stdin)
        assert python.returncode == 0 and graph.returncode == 0, graph.stderr.decode()[-2000:]
        records = [json.loads(line) for line in python.stdout.decode("utf-8").splitlines()]
        assert len(records) == len(lines)
        assert python.stdout == graph.stdout
        assert records[1]["ids"] and len(records[1]["ids"]) == len(records[1]["pieces"])


def test_tokenize_cli_reports_bad_input(tmp_path, spm_model_file):
    result = run_cli("albert_tf.tokenize", [f"--spm_model_file={spm_model_file}"], b"ok\n\xc3\x28\n")
    assert result.returncode == 1 and b"stdin:2: invalid UTF-8" in result.stderr
    result = run_cli("albert_tf.tokenize", [])
    assert result.returncode == 1 and b"give --spm_model_file" in result.stderr


def test_train_tokenizer_reports_unreadable_input(tmp_path):
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    from albert_tf.text.spm_training import CorpusError, train_sentencepiece

    with pytest.raises(CorpusError, match="folder.txt: cannot read"):
        train_sentencepiece([str(folder)], str(tmp_path / "m"), vocab_size=100)
