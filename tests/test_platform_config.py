"""--platform_config_file: TF Serving's PlatformConfigMap read into the session settings
albert-serve applies, and the errors for files it cannot apply."""

import pytest

from albert_tf.serving.platform_config import PlatformConfigError, applied_fields, read_platform_config

ADAPTER = "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"


def platform_config_text(legacy_config, platform="tensorflow", adapter=ADAPTER):
    """A PlatformConfigMap text proto with one platform and this legacy_config body."""
    return (f'platform_configs {{\n  key: "{platform}"\n  value {{\n    source_adapter_config {{\n'
            f'      {adapter} {{\n        legacy_config {{\n{legacy_config}\n        }}\n      }}\n    }}\n  }}\n}}\n')


FULL = """
          session_config { intra_op_parallelism_threads: 2 inter_op_parallelism_threads: 1 }
          batching_parameters {
            max_batch_size { value: 32 }
            batch_timeout_micros { value: 2000 }
            num_batch_threads { value: 1 }
            allowed_batch_sizes: 8
            allowed_batch_sizes: 32
            pad_variable_length_inputs: true
          }
          saved_model_tags: "serve"
          saved_model_tags: "cpu"
          enable_model_warmup: true
          model_warmup_options { num_request_iterations { value: 3 } }
          enable_per_model_batching_params: true"""


def test_every_applied_field_is_read(tmp_path):
    path = tmp_path / "platform.config"
    path.write_text(platform_config_text(FULL))
    settings = read_platform_config(str(path))
    assert (settings.intra_op_threads, settings.inter_op_threads) == (2, 1)
    assert settings.saved_model_tags == ("serve", "cpu")
    assert settings.enable_model_warmup and settings.num_request_iterations_for_warmup == 3
    assert settings.enable_per_model_batching_parameters
    batching = settings.batching
    assert (batching.max_batch_size, batching.batch_timeout_micros, batching.num_batch_threads) == (32, 2000, 1)
    assert batching.allowed_batch_sizes == [8, 32] and batching.pad_variable_length_inputs
    assert batching.max_enqueued_batches == 10  # TF Serving's default for a field left out


def test_an_empty_legacy_config_means_no_batching_and_no_warmup(tmp_path):
    """As in TF Serving: the file replaces the flags, and proto3's defaults are off."""
    path = tmp_path / "platform.config"
    path.write_text(platform_config_text(""))
    settings = read_platform_config(str(path))
    assert settings.batching is None and not settings.enable_model_warmup
    assert (settings.intra_op_threads, settings.inter_op_threads) == (0, 0)
    assert settings.saved_model_tags == ("serve",) and settings.num_request_iterations_for_warmup == 1


@pytest.mark.parametrize("text, expected", [
    (platform_config_text("session_config { graph_options { } }"),
     ':7:18 : Message type "tensorflow.serving.ConfigProto" has no field named "graph_options". '
     "(albert-serve applies these legacy_config fields: session_config.intra_op_parallelism_threads"),
    (platform_config_text("", platform="tflite"),
     "platform_configs must hold the one platform 'tensorflow', not ['tflite']"),
    (platform_config_text("", adapter="[type.googleapis.com/tensorflow.serving.SessionBundleSourceAdapterConfig]"),
     ": Type tensorflow.serving.SessionBundleSourceAdapterConfig not found in descriptor pool (source_adapter_config "
     "must be a tensorflow.serving.SavedModelBundleSourceAdapterConfig)"),
    (platform_config_text("", adapter="[type.googleapis.com/tensorflow.serving.SessionBundleConfig]").replace(
        "legacy_config {", "session_config {"),
     "source_adapter_config must be a tensorflow.serving.SavedModelBundleSourceAdapterConfig, not "
     "'type.googleapis.com/tensorflow.serving.SessionBundleConfig'"),
    (platform_config_text("batching_parameters { max_batch_size { value: 16 } allowed_batch_sizes: 8 }"),
     "batching_parameters: the last entry in allowed_batch_sizes must equal max_batch_size"),
    (platform_config_text("model_warmup_options { num_request_iterations { value: -1 } }"),
     "model_warmup_options.num_request_iterations must be at least 0"),
])
def test_files_albert_serve_cannot_apply_are_errors_naming_file_and_field(tmp_path, text, expected):
    path = tmp_path / "platform.config"
    path.write_text(text)
    with pytest.raises(PlatformConfigError) as caught:
        read_platform_config(str(path))
    assert str(caught.value).startswith(f"--platform_config_file {path}")
    assert expected in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PlatformConfigError, match=f"--platform_config_file {tmp_path / 'nope'}: No such file"):
        read_platform_config(str(tmp_path / "nope"))


def test_applied_fields_list_the_schema_paths():
    fields = applied_fields()
    assert "batching_parameters.max_batch_size" in fields and "model_warmup_options.num_request_iterations" in fields
    assert "session_config" not in fields and len(fields) == len(set(fields))


def test_the_shipped_platform_config_matches_the_shipped_batching_parameters():
    """serving/platform.config is the flags' session of serving/README as one file."""
    from pathlib import Path

    from albert_tf.serving.batching_config import BatchingParameters

    serving = Path(__file__).resolve().parent.parent / "serving"
    settings = read_platform_config(str(serving / "platform.config"))
    assert vars(settings.batching) == vars(BatchingParameters.from_file(str(serving / "batching_parameters.txt")))
    assert settings.enable_model_warmup and settings.saved_model_tags == ("serve",)
