"""Export an ALBERT checkpoint as a TF Serving SavedModel version (or a TFLite one).

`export_saved_model` restores the checkpoint, attaches the in-graph tokenizer, saves
the signatures of `albert_tf.export.signatures`, checks that the graph uses only ops the
official `tensorflow_model_server` contains, writes `assets.extra/` (warmup records,
albert_config.json, albert_export.json) and renames the finished directory into
`<export_base>/<model_name>/<version>/`. With `format="tflite"` the version holds
`model.tflite` instead (`albert_tf.export.tflite`), for `--prefer_tflite_model`.
"""

import dataclasses
import json
import os
import shutil

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf.checkpoints import CheckpointError, restore_model
from albert_tf.cpu_features import bfloat16_warning
from albert_tf.export import layout, tflite, warmup
from albert_tf.export.signatures import SIGNATURES_BY_KIND, AlbertServingModule
from albert_tf.layers.dense import set_matmul_dtype
from albert_tf.text.layers import AlbertPacker, SentencePieceTokenizerLayer, WordPieceTokenizerLayer
from albert_tf.text.tokenizer import TokenizerError

# --precision of a SavedModel: the dtype of the Dense layers' matmuls
# (albert_tf.layers.set_matmul_dtype). "bfloat16" rounds the kernels to bfloat16 once at
# export and keeps LayerNorm, softmax, GELU and the residual sums in float32.
SAVED_MODEL_PRECISIONS = ("float32", "bfloat16")
# Every --precision: those and the TFLite ones (tflite.PRECISIONS: "dynamic_int8" stores
# the weight matrices as int8 and quantizes the matmul inputs on the fly).
PRECISIONS = tuple(dict.fromkeys(SAVED_MODEL_PRECISIONS + tflite.PRECISIONS))
# --format: what a version directory holds.
FORMATS = ("saved_model", "tflite")
# tensorflow-text ops the export may contain. All are in the ops_lib that
# tensorflow_model_server links since TF Serving 2.2 (FastWordpiece since 2.12, whose
# bundled tensorflow-text is 2.12.1); anything else outside core TensorFlow is refused.
SERVING_TEXT_OPS = frozenset({
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceStringToIdOp",
    "NormalizeUTF8",
    "RegexSplitWithOffsets",
    "FastWordpieceTokenizeWithOffsets",
})


class ExportError(ValueError):
    """Export input is unusable; the message names the flag or file."""


@dataclasses.dataclass
class ExportOptions:
    """What albert-export takes; see its flags for the meaning of each field."""

    checkpoint: str
    albert_config: object  # AlbertConfig
    export_base: str
    model_name: str = "albert"
    model: str = "backbone"
    spm_model_file: str = None
    vocab_file: str = None
    do_lower_case: bool = True
    version: int = None
    max_seq_length: int = None
    bucket_lengths: tuple = ()
    xla: bool = False
    xla_short_lengths: tuple = ()
    precision: str = "float32"
    warmup: bool = True
    format: str = "saved_model"


def build_tokenizer_layer(spm_model_file, vocab_file, do_lower_case):
    """The in-graph tokenizer for the flags: (layer, asset path). SentencePiece wins."""
    path = spm_model_file or vocab_file
    if not path:
        raise ExportError("give --spm_model_file (SentencePiece) or --vocab_file (WordPiece vocab.txt): "
                          "the export tokenizes raw text in the graph")
    flag = "--spm_model_file" if spm_model_file else "--vocab_file"
    if not os.path.isfile(path):
        raise ExportError(f"{flag} {path}: no such file")
    try:
        if spm_model_file:
            return SentencePieceTokenizerLayer.from_file(path, do_lower_case=do_lower_case), path
        return WordPieceTokenizerLayer.from_file(path, do_lower_case=do_lower_case), path
    except (TokenizerError, RuntimeError, OSError) as e:
        raise ExportError(f"{flag} {path}: {e}") from None


def graph_op_types(saved_model_dir):
    """Every op type in a SavedModel's graph and function library (a set of str)."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        functions = {f.signature.name for f in meta_graph.graph_def.library.function}
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        ops -= functions  # calls of library functions are not ops
    return ops


def set_method_names(saved_model_dir, method_names):
    """Rewrites SignatureDef method_names ({signature: method}) in saved_model.pb.

    tf.saved_model.save marks every signature tensorflow/serving/predict, but TF
    Serving's Classify and Regress RPCs only accept classify/regress methods. Only
    this field changes; both loaders read it from the SignatureDef.
    """
    if not method_names:
        return
    path = os.path.join(saved_model_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for name, method in method_names.items():
            meta_graph.signature_def[name].method_name = method
    with open(path + ".tmp", "wb") as f:
        f.write(proto.SerializeToString())
    os.replace(path + ".tmp", path)


def check_serving_ops(saved_model_dir):
    """Raises ExportError if the graph has an op outside core TF and SERVING_TEXT_OPS."""
    core = set(dir(tf.raw_ops))
    foreign = sorted(op for op in graph_op_types(saved_model_dir) if op not in core and op not in SERVING_TEXT_OPS)
    if foreign:
        raise ExportError(f"the export uses ops that tensorflow_model_server does not contain: {foreign}")


def _check_tflite_options(options):
    """ExportError for a flag that means nothing for a TFLite version (it has neither
    XLA nor bfloat16 kernels, nor raw-text inputs to pack)."""
    given = [flag for flag, used in (("--xla", options.xla), ("--xla_short_lengths", options.xla_short_lengths),
                                     (f"--precision={options.precision}", options.precision not in tflite.PRECISIONS),
                                     ("--bucket_lengths", options.bucket_lengths),
                                     ("--max_seq_length", options.max_seq_length)) if used]
    if given:
        raise ExportError(f"--format=tflite takes token ids and runs float32 or int8 TFLite kernels; "
                          f"{', '.join(given)} only apply to --format=saved_model")


def _export_tflite(options, model, checkpoint_prefix, model_dir, tokenizer_file, log):
    """Writes a TFLite version (albert_tf.export.tflite) in a staging directory and renames it into place."""
    staging = layout.make_staging_dir(model_dir)
    try:
        manifest = tflite.write_tflite_version(staging, model, options.model, options.albert_config, tokenizer_file,
                                               options.model_name, options.warmup, log, options.precision,
                                               extra_manifest={"checkpoint": checkpoint_prefix})
        path = layout.publish_version(staging, model_dir, options.version)
    except tflite.TfLiteConversionError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(str(e)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"exported {options.model} as {options.precision} TensorFlow Lite (signature serving_default on token ids, "
        f"{manifest['warmup_records']} warmup records) → {path}; serve it with --prefer_tflite_model=true")
    return path


def export_saved_model(options, log=print):
    """Exports one version; returns its final directory `<export_base>/<model_name>/<version>`."""
    config = options.albert_config
    if options.model not in SIGNATURES_BY_KIND:
        raise ExportError(f"--model={options.model}: expected one of {sorted(SIGNATURES_BY_KIND)}")
    if options.precision not in PRECISIONS:
        raise ExportError(f"--precision={options.precision}: expected one of {sorted(PRECISIONS)}")
    if options.format not in FORMATS:
        raise ExportError(f"--format={options.format}: expected one of {sorted(FORMATS)}")
    if options.format == "tflite":
        _check_tflite_options(options)
    elif options.precision not in SAVED_MODEL_PRECISIONS:
        raise ExportError(f"--precision={options.precision} is a TensorFlow Lite quantization: it needs --format=tflite")
    if options.version is not None and options.version < 1:
        raise ExportError(f"--version={options.version}: versions are positive integers")
    max_seq_length = options.max_seq_length or config.max_position_embeddings
    if not 3 <= max_seq_length <= config.max_position_embeddings:
        raise ExportError(f"--max_seq_length={max_seq_length}: must be in [3, max_position_embeddings="
                          f"{config.max_position_embeddings}]")
    short_lengths = tuple(options.xla_short_lengths)
    if short_lengths != tuple(sorted(set(short_lengths))) or not all(1 <= n <= max_seq_length for n in short_lengths):
        raise ExportError(f"--xla_short_lengths={','.join(map(str, short_lengths))}: expected increasing lengths "
                          f"in [1, --max_seq_length={max_seq_length}]")
    if options.xla and short_lengths:
        raise ExportError("--xla compiles every input shape with XLA already; leave --xla_short_lengths empty with it")
    if options.format == "tflite" and not (options.spm_model_file or options.vocab_file):
        tokenizer, asset = None, None  # a TFLite version takes token ids; the tokenizer file is optional
    else:
        tokenizer, asset = build_tokenizer_layer(options.spm_model_file, options.vocab_file, options.do_lower_case)
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ExportError(f"the tokenizer has {tokenizer.vocab_size} tokens but --albert_config_file has vocab_size="
                          f"{config.vocab_size}: they belong to different models")
    model_dir = os.path.join(options.export_base, options.model_name)
    if options.version is not None and os.path.exists(os.path.join(model_dir, str(options.version))):
        raise ExportError(f"--version={options.version}: {os.path.join(model_dir, str(options.version))} already exists")
    try:
        model, prefix = restore_model(options.checkpoint, config, options.model)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    log(f"restored {options.model} from {prefix} ({model.count_params():,} parameters)")
    if options.format == "tflite":
        return _export_tflite(options, model, prefix, model_dir, asset, log)
    if options.precision == "bfloat16" and (warning := bfloat16_warning("this export")):
        log(warning)
    set_matmul_dtype(model, options.precision)
    packer = AlbertPacker(max_seq_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                          pad_to_sequence_length=False, bucket_lengths=options.bucket_lengths)
    module = AlbertServingModule(model, options.model, tokenizer, packer, jit_compile=options.xla,
                                 xla_short_lengths=short_lengths, tokenizer_asset=asset)
    if (options.xla or short_lengths) and not module.constant_kernels:
        log(f"dense kernels take {module.kernel_bytes / 2**20:.0f} MiB, over "
            f"{module.constant_kernels_max_bytes / 2**20:.0f} MiB: the XLA functions read them as variables")
    save_options = tf.saved_model.SaveOptions()
    signatures = module.signatures(save_options)
    staging = layout.make_staging_dir(model_dir)
    try:
        tf.saved_model.save(module, staging, signatures=signatures, options=save_options)
        set_method_names(staging, module.method_names())
        check_serving_ops(staging)
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        config.to_json_file(os.path.join(extra, "albert_config.json"))
        records = 0
        if options.warmup:
            requests = warmup.warmup_inputs(list(signatures), tokenizer.vocab_size, max_seq_length,
                                            short_lengths=short_lengths)
            records = warmup.write_warmup_file(os.path.join(extra, warmup.WARMUP_FILE), options.model_name, requests)
        manifest = {
            "model": options.model,
            "signatures": list(signatures),
            "checkpoint": prefix,
            "tokenizer": os.path.basename(asset),
            "do_lower_case": options.do_lower_case,
            "max_seq_length": max_seq_length,
            "bucket_lengths": list(options.bucket_lengths),
            "num_labels": module.num_labels,
            "precision": options.precision,
            "xla": options.xla,
            "xla_short_lengths": list(short_lengths),
            "xla_constant_kernels": module.constant_kernels,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        }
        with open(os.path.join(extra, "albert_export.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
        path = layout.publish_version(staging, model_dir, options.version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"exported {options.model} with signatures {', '.join(signatures)} and {records} warmup records → {path}")
    return path
