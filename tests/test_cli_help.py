"""`--help` of the console scripts lists each tool's own flags and its docstring.

pip's console-script wrapper is a `__main__` module with no docstring and no flags, which
is what absl's --help reads. `python -c "from albert_tf.<tool> import run; run()"`
starts a tool the same way, so these tests see what `albert-<tool> --help` prints.
"""

import ast
import importlib.util
import pathlib
import subprocess
import sys

import pytest

# Every console script's module (setup.py) and some flags its --help must list.
TOOLS = {
    "albert_tf.client": ["--server", "--model_name", "--output_filter"],
    "albert_tf.convert_checkpoint": ["--tf1_checkpoint", "--checkpoint"],
    "albert_tf.create_pretraining_data": ["--input_file", "--output_file", "--dupe_factor"],
    "albert_tf.export_savedmodel": ["--checkpoint", "--export_base", "--xla_short_lengths", "--format"],
    "albert_tf.make_ssl_config": ["--server_key", "--server_cert", "--custom_ca", "--client_verify", "--output"],
    "albert_tf.model_summary": ["--preset", "--bert"],
    "albert_tf.run_classifier": ["--task_name", "--data_dir", "--do_train"],
    "albert_tf.run_pipeline": ["--output_dir", "--num_documents"],
    "albert_tf.run_pretraining": ["--input_file", "--output_dir", "--num_train_steps"],
    "albert_tf.run_squad": ["--train_file", "--version_2_with_negative"],
    "albert_tf.serve": ["--model_base_path", "--enable_batching", "--batching_parameters_file", "--enable_profiler",
                        "--num_load_threads", "--enforce_session_run_timeout", "--prefer_tflite_model",
                        "--num_tflite_pools"],
    "albert_tf.tokenize": ["--spm_model_file", "--vocab_file"],
    "albert_tf.train_tokenizer": ["--input", "--vocab_size"],
}


@pytest.mark.parametrize("module", sorted(TOOLS))
def test_console_script_help_lists_the_tools_flags(module):
    done = subprocess.run([sys.executable, "-c", f"from {module} import run; run()", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]  # (absl exits 1 after --help)
    source = open(importlib.util.find_spec(module).origin, encoding="utf-8").read()  # importing would define
    first_doc_line = ast.get_docstring(ast.parse(source)).splitlines()[0]  # its flags a second time here
    assert done.stdout.startswith(first_doc_line), done.stdout[:300]
    for flag in TOOLS[module]:
        assert f"\n  {flag}:" in done.stdout or f"\n  --[no]{flag[2:]}:" in done.stdout, (flag, done.stdout[-3000:])


def test_every_console_script_is_covered():
    """A tool added to setup.py's CONSOLE_SCRIPTS must be added to TOOLS too."""
    setup = ast.parse(open(pathlib.Path(__file__).resolve().parents[1] / "setup.py", encoding="utf-8").read())
    scripts = next(ast.literal_eval(node.value) for node in setup.body
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CONSOLE_SCRIPTS")
    assert {entry.split("=")[1].split(":")[0] for entry in scripts} == set(TOOLS)


# Flag mistakes each tool catches before it imports TensorFlow (seconds): (module, flags,
# message). {tmp} is the test's directory: it holds albert_config.json and an empty
# one.tfrecord that the pretraining input glob matches.
def pretraining(input_file="{tmp}/*.tfrecord", output_dir="{tmp}/out", config="albert_config.json"):
    return [f"--input_file={input_file}", f"--output_dir={output_dir}", "--do_train", "--max_seq_length=32",
            f"--albert_config_file={{tmp}}/{config}"]


EARLY_FAILURES = [
    ("albert_tf.export_savedmodel", ["--checkpoint={tmp}", "--export_base={tmp}", "--xla_short_lengths=8,x"],
     "--xla_short_lengths: expected integers"),
    ("albert_tf.run_classifier", ["--task_name=tsv", "--data_dir={tmp}", "--albert_config_file={tmp}/albert_config.json",
                                  "--output_dir={tmp}/out", "--do_eval", "--labels=0,1", "--max_seq_length=65"],
     "--max_seq_length=65 exceeds max_position_embeddings=64"),
    ("albert_tf.run_pretraining", pretraining(config="missing.json"), "--albert_config_file: albert config"),
    ("albert_tf.run_pretraining", pretraining(input_file="{tmp}/none-*.tfrecord"),
     "--input_file: no file matches '{tmp}/none-*.tfrecord'"),
    ("albert_tf.run_pretraining", pretraining() + ["--do_eval", "--eval_input_file={tmp}/held-out-*.tfrecord"],
     "--eval_input_file: no file matches"),
    ("albert_tf.run_pretraining", pretraining(output_dir="{tmp}/one.tfrecord/out"),
     "--output_dir {tmp}/one.tfrecord/out: not writable"),
    ("albert_tf.run_pretraining", pretraining() + ["--init_checkpoint={tmp}/nowhere"],
     "--init_checkpoint {tmp}/nowhere: not a readable checkpoint"),
    ("albert_tf.run_pretraining", pretraining() + ["--max_seq_length=65"],
     "--max_seq_length=65 exceeds max_position_embeddings=64"),
    ("albert_tf.run_squad", ["--albert_config_file={tmp}/albert_config.json", "--output_dir={tmp}/out",
                             "--do_predict"], "--do_predict needs --predict_file"),
]


@pytest.mark.parametrize("module,args,message", EARLY_FAILURES,
                         ids=[f"{m.split('.')[-1]}-{i}" for i, (m, _, _) in enumerate(EARLY_FAILURES)])
def test_flag_mistakes_fail_before_tensorflow_is_imported(module, args, message, tmp_path):
    from albert_tf.config import AlbertConfig

    AlbertConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64).to_json_file(str(tmp_path / "albert_config.json"))
    (tmp_path / "one.tfrecord").write_bytes(b"")  # never read: the mistakes stop the tools first
    message = message.format(tmp=tmp_path)
    script = ("import runpy, sys\n"
              f"sys.argv = [{module!r}] + sys.argv[1:]\n"
              "try:\n"
              f"    runpy.run_module({module!r}, run_name='__main__')\n"
              "except SystemExit as e:\n"
              "    print('exit', e.code, 'tensorflow imported', 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, *(a.format(tmp=tmp_path) for a in args)],
                          capture_output=True, text=True, timeout=120)
    assert message in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip() == "exit 1 tensorflow imported False", done.stdout
