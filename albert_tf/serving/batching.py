"""Server-side batching: concurrent requests to one signature merged into one model call.

It follows TF Serving's batching session:
- one queue per (model version, signature);
- a batch closes when it reaches `max_batch_size` or when `batch_timeout_micros` have
  passed since its first request;
- `num_batch_threads` run batches;
- at most `max_enqueued_batches` batches wait, after which requests get UNAVAILABLE;
- `allowed_batch_sizes` pads a batch up to the next allowed size;
- TF Serving's errors for oversized tasks, unequal 0th dimensions and, with padding off,
  unequal shapes.

One deliberate difference: with `pad_variable_length_inputs`, inputs are padded with
**zeros**, not with each tensor's first element. TF Serving's rule would set the padding
of `input_mask` to 1 and make the model attend to it.

For albert-tf exports (they carry assets.extra/albert_export.json), per-token outputs are
cut back to the length each request would have had alone, so batching is invisible in
the results.
"""

import os
import threading
import time
import weakref

import grpc
import numpy as np

from albert_tf.serving.batching_config import BatchingConfigError, BatchingParameters
from albert_tf.serving.deadlines import cancel_at
from albert_tf.serving.tensors import STOPPING_MESSAGE, ServingError, invalid_argument
from albert_tf.serving.text_proto import read_config_text

__all__ = ["Batcher", "BatchingConfigError", "BatchingParameters", "read_model_batching_parameters"]

MODEL_BATCHING_FILE = "batching_params.pbtxt"  # in a version directory (--enable_per_model_batching_parameters)


def read_model_batching_parameters(version_dir):
    """The BatchingParameters of `version_dir`/batching_params.pbtxt, or None when the
    version has no such file. A file that does not parse raises ServingError
    (INVALID_ARGUMENT) naming it, which fails the version's load, as in TF Serving."""
    path = os.path.join(version_dir, MODEL_BATCHING_FILE)
    if not os.path.exists(path):
        return None
    try:
        return BatchingParameters.from_text(read_config_text(path, "--enable_per_model_batching_parameters",
                                                             BatchingConfigError), source=path)
    except BatchingConfigError as e:
        raise invalid_argument(str(e)) from None


class _Task:
    __slots__ = ("inputs", "size", "arrived", "deadline", "done", "outputs", "error")

    def __init__(self, inputs, size, deadline=None):
        self.inputs, self.size, self.arrived, self.deadline = inputs, size, time.monotonic(), deadline
        self.done, self.outputs, self.error = threading.Event(), None, None


def _task_size(inputs):
    sizes = set()
    for value in inputs.values():
        if value.ndim < 1:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop() if sizes else 0


class _Queue:
    """The requests waiting for one (version, signature), batched with `params`; its
    threads end when the batcher stops, or once it is retired and empty."""

    def __init__(self, batcher, version, signature, params):
        self.batcher, self.version, self.signature, self.params = batcher, version, signature, params
        self.tasks, self.condition = [], threading.Condition()
        self.threads = []
        self.retired = False

    def ensure_threads(self):
        while len(self.threads) < max(1, self.params.num_batch_threads):
            thread = threading.Thread(target=self._loop, daemon=True, name="albert-serve-batch")
            thread.start()
            self.threads.append(thread)

    def _loop(self):
        params = self.params
        timeout = params.batch_timeout_micros / 1e6
        while True:
            with self.condition:
                while not self.tasks and not self.batcher.stopped and not self.retired:
                    self.condition.wait(0.5)
                if self.batcher.stopped:
                    self._fail_queued()
                    return
                if not self.tasks:  # retired and drained
                    return
                # Another thread of this queue may take the batch while this one waits.
                while self.tasks and sum(t.size for t in self.tasks) < params.max_batch_size and not self.retired:
                    remaining = self.tasks[0].arrived + timeout - time.monotonic()
                    if remaining <= 0:
                        break
                    self.condition.wait(remaining)
                batch, total = [], 0
                while self.tasks and total + self.tasks[0].size <= params.max_batch_size:
                    task = self.tasks.pop(0)
                    batch.append(task)
                    total += task.size
            if batch:
                self.batcher.execute(self.version, self.signature, batch, params)

    def _fail_queued(self):
        """Answers every queued task UNAVAILABLE (the caller holds `condition`)."""
        for task in self.tasks:
            task.error = ServingError(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)
            task.done.set()
        self.tasks.clear()


class Batcher:
    """Runs (version, signature, inputs) through merged batches; `run` blocks per request.

    Args:
      params: BatchingParameters, for every queue whose `run` call passes none of its own.
      run: the unbatched runner, (version, signature, inputs) → outputs.
      metrics: a monitoring.Metrics that gets each request's time in the queue
        (:tensorflow:serving:batching_session:queuing_latency, by thread_pool_name) and
        counts the batches run (wrapped_run_count), or None.

    `retire(version)` ends the queues of an unloaded version once they are empty, so hot
    swaps leave no batch threads behind.
    """

    def __init__(self, params, run, metrics=None):
        self.params = params
        self._run = run
        self.metrics = metrics
        self._queues = {}
        self._lock = threading.Lock()
        self._retired = weakref.WeakSet()  # unloaded versions; late requests to them run unbatched
        self.stopped = False
        self.batches_run = 0
        self.tasks_run = 0

    def stop(self):
        """Stops the batch threads after their current batch. Requests still queued, and
        any that arrive later, get UNAVAILABLE instead of waiting forever."""
        self.stopped = True
        with self._lock:
            queues = list(self._queues.values())
        for queue in queues:
            with queue.condition:
                queue.condition.notify_all()

    def retire(self, version):
        """Lets the queues of `version` (an unloaded model version) run what they hold and
        end their threads; later requests to it run unbatched."""
        with self._lock:
            self._retired.add(version)
            queues = [q for key, q in self._queues.items() if q.version is version]
            for queue in queues:
                del self._queues[(id(version), queue.signature)]
        for queue in queues:
            with queue.condition:
                queue.retired = True
                queue.condition.notify_all()

    def thread_count(self):
        """Batch threads still running (int), over every queue."""
        with self._lock:
            queues = list(self._queues.values())
        return sum(t.is_alive() for q in queues for t in q.threads)

    def run(self, version, signature, inputs, params=None, deadline=None):
        """Runs `signature` of `version` on `inputs` ({name: np.ndarray}, batch first) as part of a
        merged batch; blocks and returns this task's rows of the outputs ({name: np.ndarray}).
        `params` (BatchingParameters) overrides the batcher's for this version's queues
        (per-model batching parameters); a queue keeps the parameters it was made with.
        `deadline` (time.monotonic() value, or None) is when the caller stops waiting (gRPC
        deadline, REST timeout): a batch whose every request is past its deadline when it
        leaves the queue is not run, and its requests get TF Serving's RESOURCE_EXHAUSTED;
        a batch that runs is cancelled at its latest request's deadline (DEADLINE_EXCEEDED)."""
        params = params or self.params
        size = _task_size(inputs)
        if size > params.max_batch_size:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size "
                                   f"{params.max_batch_size}")
        key = (id(version), signature)
        with self._lock:
            if version in self._retired:
                queue = None
            else:
                queue = self._queues.get(key)
                if queue is None or queue.version is not version:
                    queue = self._queues[key] = _Queue(self, version, signature, params)
                queue.ensure_threads()
        task = _Task(inputs, size, deadline)
        if queue is not None:
            with queue.condition:
                if self.stopped:  # checked under the queue's lock, so a stopping thread cannot miss the task
                    raise ServingError(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)
                if queue.retired:  # retired since it was looked up: its threads may have ended
                    queue = None
                else:
                    waiting = sum(t.size for t in queue.tasks)
                    if waiting + size > queue.params.max_batch_size * queue.params.max_enqueued_batches:
                        raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                           "The batch scheduling queue to which this task was submitted is full")
                    queue.tasks.append(task)
                    queue.condition.notify()
        if queue is None:  # the version was unloaded just after this request resolved it: run unbatched
            with cancel_at(deadline):
                return self._run(version, signature, inputs)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def execute(self, version, signature, tasks, params=None):
        """Merges tasks, runs them once, and hands each its rows (`params`: the queue's)."""
        params = params or self.params
        now = time.monotonic()
        if self.metrics is not None:
            for task in tasks:
                self.metrics.observe("/tensorflow/serving/batching_session/queuing_latency",
                                     (params.thread_pool_name,), int((now - task.arrived) * 1e6))
        if all(task.deadline is not None and task.deadline <= now for task in tasks):
            error = ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 "Run() timeout exceeded while waiting in batching queue")
            for task in tasks:
                task.error = error
                task.done.set()
            return
        try:
            merged = self._merge(tasks, params)
            rows = sum(t.size for t in tasks)
            target = next((b for b in params.allowed_batch_sizes if b >= rows), rows)
            if target > rows:  # pad up to an allowed batch size with copies of the first row
                merged = {k: np.concatenate([v, np.repeat(v[:1], target - rows, axis=0)]) for k, v in merged.items()}
            # As TF Serving: the batch runs until its latest request's deadline (none if one has none).
            deadline = None if any(task.deadline is None for task in tasks) else max(task.deadline for task in tasks)
            with cancel_at(deadline):
                outputs = self._run(version, signature, merged)
            if self.metrics is not None:
                self.metrics.increment("/tensorflow/serving/batching_session/wrapped_run_count")
            self.batches_run += 1
            self.tasks_run += len(tasks)
            start = 0
            for task in tasks:
                part = {k: v[start:start + task.size] for k, v in outputs.items()}
                task.outputs = _trim_to_own_length(version, part, task.inputs) if version.manifest else part
                start += task.size
        except ServingError as e:
            for task in tasks:
                task.error = e
        except Exception as e:  # noqa: BLE001 - never leave a request waiting
            for task in tasks:
                task.error = ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        finally:
            for task in tasks:
                task.done.set()

    @staticmethod
    def _merge(tasks, params):
        """Concatenates each input along dim 0 (padding with zeros if allowed)."""
        merged = {}
        for alias in tasks[0].inputs:
            values = [t.inputs[alias] for t in tasks]
            shapes = {v.shape[1:] for v in values}
            if len(shapes) > 1:
                if not params.pad_variable_length_inputs:
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                       f"Tensors with name '{alias}' from different tasks have different shapes and "
                                       "padding is turned off. Set pad_variable_length_inputs to true, or ensure that "
                                       "all tensors with the same name have equal dimensions starting with the first "
                                       "dim.")
                rank = values[0].ndim
                longest = [max(v.shape[d] for v in values) for d in range(1, rank)]
                padded = []
                for v in values:
                    widths = [(0, 0)] + [(0, longest[d - 1] - v.shape[d]) for d in range(1, rank)]
                    fill = b"" if v.dtype == object else 0
                    padded.append(np.pad(v, widths, constant_values=fill))
                values = padded
            merged[alias] = np.concatenate(values, axis=0)
        return merged


# albert-tf outputs whose dim 1 follows a padded input's dim 1 (per-token or per-position).
_LENGTH_SOURCE = {"sequence_output": "input_mask", "input_mask": "input_mask", "mlm_logits": "masked_lm_positions",
                  "start_logits": "input_mask", "end_logits": "input_mask", "input_word_ids": "input_mask"}


def _trim_to_own_length(version, outputs, own_inputs):
    """Cuts per-token outputs back to the length the request alone would have had.

    For token-id signatures, that is the request's own input dim 1. For raw
    text, it is the longest row of the request's `input_mask` output, rounded up to the
    export's bucket lengths (what the in-graph packer pads a lone request to).
    """
    trimmed = dict(outputs)
    for alias, source in _LENGTH_SOURCE.items():
        value = outputs.get(alias)
        if value is None or value.ndim < 2:
            continue
        if source in own_inputs:
            own = own_inputs[source].shape[1]
        elif source == "input_mask" and "input_mask" in outputs:
            mask = outputs["input_mask"]
            own = int(mask.sum(axis=1).max()) if mask.size else 0
            own = next((b for b in version.manifest.get("bucket_lengths") or [] if b >= own), own)
        else:
            continue
        trimmed[alias] = value[:, :own]
    return trimmed
