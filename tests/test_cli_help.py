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
    "albert_tf.export_savedmodel": ["--checkpoint", "--export_base", "--xla_short_lengths"],
    "albert_tf.make_ssl_config": ["--server_key", "--server_cert", "--custom_ca", "--client_verify", "--output"],
    "albert_tf.model_summary": ["--preset", "--bert"],
    "albert_tf.run_classifier": ["--task_name", "--data_dir", "--do_train"],
    "albert_tf.run_pipeline": ["--output_dir", "--num_documents"],
    "albert_tf.run_pretraining": ["--input_file", "--output_dir", "--num_train_steps"],
    "albert_tf.run_squad": ["--train_file", "--version_2_with_negative"],
    "albert_tf.serve": ["--model_base_path", "--enable_batching", "--batching_parameters_file", "--enable_profiler",
                        "--num_load_threads", "--enforce_session_run_timeout"],
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
