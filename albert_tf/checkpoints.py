"""Finding and restoring albert_tf checkpoints (pretraining, fine-tuning or converted).

Every checkpoint written here is `tf.train.Checkpoint(model=<keras model>, ...)`. What
the `model` object holds (read from the checkpoint's object graph) decides how it is read:

- `backbone` and `mlm_head`: an AlbertPretrainer;
- `backbone` and `classifier_head`: an AlbertClassifier;
- `backbone` and `squad_head`: an AlbertSpanExtractor (kind "squad");
- `embeddings` (no `backbone`): a bare AlbertBackbone.

Any of them can give the backbone. The other kinds need their heads.
"""

import os

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from albert_tf.io_utils import missing_local_checkpoint, unreadable_checkpoint_message
from albert_tf.models import AlbertBackbone, AlbertClassifier, AlbertPretrainer, AlbertSpanExtractor

MODEL_KINDS = ("backbone", "pretrainer", "classifier", "squad")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the config; names the flag."""


def resolve_checkpoint(path, flag="--checkpoint"):
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint).

    Raises CheckpointError naming `flag` when nothing readable is there.
    """
    if not path:
        raise CheckpointError(f"{flag} is required")
    if missing := missing_local_checkpoint(path, flag):
        raise CheckpointError(missing)
    prefix = path
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise CheckpointError(f"{flag} {path}: the directory holds no checkpoint (no 'checkpoint' state file)")
    try:
        tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError):
        raise CheckpointError(unreadable_checkpoint_message(path, flag)) from None
    return prefix


class _ObjectGraph:
    """The object graph of a TF2 checkpoint, read from its `_CHECKPOINTABLE_OBJECT_GRAPH`.

    Keys alone cannot tell what a checkpoint holds: a variable is stored once, under the
    first path that reaches it, which in a training checkpoint is often
    `optimizer/_trainable_variables/N`. The object graph has every path.
    """

    def __init__(self, prefix):
        reader = tf.train.load_checkpoint(prefix)
        self.shapes = reader.get_variable_to_shape_map()
        self.graph = trackable_object_graph_pb2.TrackableObjectGraph()
        if "_CHECKPOINTABLE_OBJECT_GRAPH" in self.shapes:
            self.graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def node(self, *path):
        """The node id at a path of child names from the root, or None."""
        if not self.graph.nodes:
            return None
        node_id = 0
        for name in path:
            children = {c.local_name: c.node_id for c in self.graph.nodes[node_id].children}
            if name not in children:
                return None
            node_id = children[name]
        return node_id

    def children(self, node_id):
        return {c.local_name for c in self.graph.nodes[node_id].children}

    def variable_shape(self, *path):
        """The stored shape of the variable at `path` (a list), or None."""
        node_id = self.node(*path)
        if node_id is None:
            return None
        for attribute in self.graph.nodes[node_id].attributes:
            if attribute.name == "VARIABLE_VALUE":
                return self.shapes.get(attribute.checkpoint_key)
        return None

    def count_variables(self, node_id):
        """Distinct variables reachable from a node (optimizer slots are not children)."""
        seen, stack, count = set(), [node_id], 0
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if any(a.name == "VARIABLE_VALUE" for a in self.graph.nodes[current].attributes):
                count += 1
            stack.extend(c.node_id for c in self.graph.nodes[current].children)
        return count


def describe_checkpoint(prefix, flag="--checkpoint", graph=None):
    """What a checkpoint holds: (kind, num_labels), kind one of MODEL_KINDS.

    num_labels is read off the classifier head (None for other kinds). `graph` is the
    checkpoint's already-read object graph, if the caller has it. Raises
    CheckpointError for original TF1 checkpoints and for foreign ones.
    """
    graph = graph or _ObjectGraph(prefix)
    model = graph.node("model")
    if model is None:
        if any(n.startswith(("bert/", "module/bert/")) for n in graph.shapes):
            raise CheckpointError(f"{flag} {prefix}: this is an original TF1 ALBERT checkpoint; convert it first "
                                  "with albert-convert-checkpoint")
        raise CheckpointError(f"{flag} {prefix}: holds no albert_tf model (no 'model' object)")
    children = graph.children(model)
    if "backbone" in children:
        if "classifier_head" in children:
            return "classifier", int(graph.variable_shape("model", "classifier_head", "output_bias")[0])
        if "mlm_head" in children:
            return "pretrainer", None
        if "squad_head" in children:
            return "squad", None
        raise CheckpointError(f"{flag} {prefix}: holds a backbone inside an unknown task model ({sorted(children)})")
    if "embeddings" in children:
        return "backbone", None
    raise CheckpointError(f"{flag} {prefix}: holds no albert_tf model (model children {sorted(children)})")


def build_model(config, kind, num_labels=None, dtype=None):
    """A fresh AlbertBackbone, AlbertPretrainer, AlbertClassifier (needs `num_labels`)
    or AlbertSpanExtractor ("squad")."""
    backbone = AlbertBackbone(config, dtype=dtype)
    if kind == "backbone":
        return backbone
    if kind == "pretrainer":
        return AlbertPretrainer(backbone)
    if kind == "classifier":
        if not num_labels:
            raise CheckpointError("a classifier needs num_labels")
        return AlbertClassifier(backbone, num_labels)
    if kind == "squad":
        return AlbertSpanExtractor(backbone)
    raise CheckpointError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


def _check_kind(prefix, held, kind, flag):
    if kind != "backbone" and held != kind:
        alternatives = "--model=backbone" + (f" or --model={held}" if held != "backbone" else "")
        raise CheckpointError(f"{flag} {prefix}: holds a {held}, which has no {kind} heads; use {alternatives}")


def restore_weights(path, model, kind, flag="--checkpoint", config_flag="--albert_config_file"):
    """Reads a checkpoint of ours into a built model of `kind` (one of MODEL_KINDS).

    A backbone can be read from any checkpoint; any other kind needs a
    checkpoint holding its heads. Every variable of `model` must be in the checkpoint.
    Returns the checkpoint prefix. Raises CheckpointError (naming `flag` and
    `config_flag`) when the checkpoint is missing, of the wrong kind, or does not fit.
    """
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"--model={kind}: expected one of {MODEL_KINDS}")
    prefix = resolve_checkpoint(path, flag)
    graph = _ObjectGraph(prefix)
    held, num_labels = describe_checkpoint(prefix, flag, graph)
    _check_kind(prefix, held, kind, flag)
    if kind == "classifier" and model.num_labels != num_labels:
        raise CheckpointError(f"{flag} {prefix}: its classifier has {num_labels} labels, not {model.num_labels}")
    _read_into(prefix, graph, held, model, kind, flag, config_flag)
    return prefix


def restore_model(path, config, kind, dtype=None, flag="--checkpoint", config_flag="--albert_config_file"):
    """Builds the `kind` model for `config` and restores it (see restore_weights).

    A classifier takes its number of labels from the checkpoint. dtype is the dtype
    policy of the model built (variables stay float32). Returns (model, prefix).
    """
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"--model={kind}: expected one of {MODEL_KINDS}")
    prefix = resolve_checkpoint(path, flag)
    graph = _ObjectGraph(prefix)
    held, num_labels = describe_checkpoint(prefix, flag, graph)
    _check_kind(prefix, held, kind, flag)
    model = build_model(config, kind, num_labels, dtype=dtype)
    _read_into(prefix, graph, held, model, kind, flag, config_flag)
    return model, prefix


def _read_into(prefix, graph, held, model, kind, flag, config_flag):
    """Checks the variable count against the object graph, then reads the values."""
    if kind == "backbone" and held != "backbone":
        node, root = graph.node("model", "backbone"), tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=model))
    else:
        node, root = graph.node("model"), tf.train.Checkpoint(model=model)
    expected, found = len({id(v) for v in model.weights}), graph.count_variables(node)
    if expected != found:
        raise CheckpointError(f"{flag} {prefix} holds a {kind} of {found} variables but {config_flag} builds one "
                              f"of {expected}: the config does not match the checkpoint (groups, layers?)")
    try:
        root.read(prefix).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"{flag} {prefix} does not match {config_flag}: {str(e).splitlines()[0][:600]}") from None
