import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under xdist each worker (and each CLI it starts, which inherits this) would run
# TensorFlow with one intra-op thread per core: 2 workers x 2 threads on 2 cores, whose
# spinning threads then slow each other. One thread each: two fine-tuning tests side by
# side took 95 s against 138 s (pytest -n 2 --dist load tests/test_finetune.py -k learns).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from albert_tf.config import AlbertConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts from the float32 policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def grouped_config():
    """Tiny config with 2 groups, 2 inner blocks and 6 layers (4 distinct blocks)."""
    return AlbertConfig(
        vocab_size=97,
        embedding_size=16,
        hidden_size=24,
        num_hidden_layers=6,
        num_hidden_groups=2,
        num_attention_heads=3,
        intermediate_size=40,
        inner_group_num=2,
        max_position_embeddings=32,
        type_vocab_size=2,
    )


def random_inputs(rng, config, batch, seq, pad_to=None):
    """Random backbone inputs; rows have random real lengths in [1, seq], padded to `pad_to`."""
    pad_to = pad_to or seq
    lengths = rng.integers(1, seq + 1, size=batch)
    lengths[0] = seq
    ids = rng.integers(5, config.vocab_size, size=(batch, pad_to)).astype("int32")
    types = rng.integers(0, config.type_vocab_size, size=(batch, pad_to)).astype("int32")
    mask = (np.arange(pad_to)[None, :] < lengths[:, None]).astype("int32")
    ids = np.where(mask == 1, ids, 0).astype("int32")
    types = np.where(mask == 1, types, 0).astype("int32")
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


# ----------------------------------------------------------------- text fixtures
import collections  # noqa: E402
import pathlib  # noqa: E402
import unicodedata  # noqa: E402

SHARED_CORPUS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "wikitext2-valid.txt"

# Texts that stress normalisation and tokenization in both paths.
HARD_CASES = [
    "Café Müller, naïve résumé — Ångström Œuvre",
    "1,000,000 people in 1999, 2000, and ²3, 4,5",
    "東京と北京 中文字的分词 テスト 한국어",
    "emoji 😀👍🏽 ok 🇫🇷 ‍",
    "",
    "   \t\n ",
    "a\x00b\x07c\u200bd\ufeff e\x1ff\u2028g",
    "ΟΔΟΣ ΣΟΦΟΣ Σ. ΑΣ' Σ ΣΣ",
    "İstanbul ǅemal ß ﬁ ① ㎏ ＡＢＣ",
    "long " + "x" * 600 + " words " + "ab" * 150,
    "tab\tnew\nline\r\nend",
    "``quoted'' \"straight\" ‘curly’ «guillemets»",
    "\u00a8\u00a0 \u0301accent-first e\u0301\u0302",
    "<unk> @-@ 20 @,@ 000 [MASK] [CLS]",
    "Ⱟ ꟁ 𐕰 newer letters",
]


def corpus_lines():
    """Lines of the shared WikiText-2 validation text."""
    return SHARED_CORPUS.read_text(encoding="utf-8").split("\n")


def pytest_sessionstart(session):
    if not SHARED_CORPUS.is_file():
        raise pytest.UsageError(f"the tests read {SHARED_CORPUS}; check out the repository beside ../shared")


@pytest.fixture(scope="session")
def spm_model_file(tmp_path_factory):
    """A 2000-piece ALBERT-convention SentencePiece model trained on WikiText-2 valid."""
    from albert_tf.text.spm_training import train_sentencepiece

    prefix = tmp_path_factory.mktemp("spm") / "wiki"
    return train_sentencepiece([str(SHARED_CORPUS)], str(prefix), vocab_size=2000, num_threads=2)


@pytest.fixture(scope="session")
def wordpiece_vocab_file(tmp_path_factory):
    """A BERT-layout vocab.txt ([PAD]0 [UNK]100 [CLS]101 [SEP]102 [MASK]103) built from
    the corpus: frequent words, every character alone and as a ## continuation."""
    text = SHARED_CORPUS.read_text(encoding="utf-8") + "".join(HARD_CASES)
    words = collections.Counter(text.lower().split())
    chars = sorted({c for c in unicodedata.normalize("NFD", text.lower()) if not c.isspace()} | set(text))
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += chars + ["##" + c for c in chars]
    tokens += [w for w, _ in words.most_common(1500) if w.isalpha()]
    tokens += ["##ing", "##ed", "##s", "un", "##aff", "##able", "[PAD]"]  # a duplicate, as real files have
    path = tmp_path_factory.mktemp("wordpiece") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def pki():
    """PEM texts (str) for the TLS tests: ca, server_key/server_cert (localhost, 127.0.0.1),
    client_key/client_cert, other_ca and other_client_key/other_client_cert."""
    from tests.certificates import make_pki

    return make_pki()


@pytest.fixture(scope="module")
def models(tmp_path_factory, spm_model_file):
    """The serving tests' exports under one base, built once per test module: albert
    (pretrainer, version 1), cls (classifier, 3 labels), reg (regression). A dict: root,
    base, config, tokenizer, and the Keras model of each name."""
    from albert_tf.checkpoints import build_model
    from albert_tf.export.exporter import ExportOptions, export_saved_model
    from albert_tf.text import SentencePieceTokenizer
    from tests.serving_helpers import MAX_SEQ
    from tests.test_export import randomize, save_checkpoint, small_config

    root = tmp_path_factory.mktemp("serving")
    tokenizer = SentencePieceTokenizer(spm_model_file)
    config = small_config(tokenizer.vocab_size)
    made = {"root": root, "base": root / "models", "config": config, "tokenizer": tokenizer}
    for seed, (name, kind, labels) in enumerate((("albert", "pretrainer", None), ("cls", "classifier", 3),
                                                 ("reg", "classifier", 1))):
        model = build_model(config, kind, num_labels=labels)
        randomize(model, seed)
        save_checkpoint(model, root / "ckpt" / name)
        export_saved_model(ExportOptions(checkpoint=str(root / "ckpt" / name), albert_config=config,
                                         export_base=str(made["base"]), model_name=name, model=kind,
                                         spm_model_file=spm_model_file, max_seq_length=MAX_SEQ), log=lambda _: None)
        made[name] = model
    return made
