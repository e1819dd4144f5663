"""tf.distribute strategy from the --distribution_strategy flag (no home-made distribution)."""


def create_strategy(name, tpu_address=None):
    """Returns the tf.distribute strategy for `name`:

    - "default": one device, the default strategy.
    - "mirrored": all local GPUs, or all logical CPUs.
    - "multi_worker_mirrored": the workers of TF_CONFIG.
    - "tpu": the TPU at `tpu_address` (a name or grpc:// address).

    Raises ValueError for an unknown name.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--distribution_strategy: unknown strategy {name!r}")


def is_chief(strategy):
    """True for the worker that writes checkpoints and summaries."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)
