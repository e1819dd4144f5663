"""Model calls that stop when their caller's deadline passes, as in TF Serving.

TF Serving runs each request with a `RunOptions` timeout taken from the gRPC deadline or
`--rest_api_timeout_in_ms` (a batch gets its latest request's deadline), so TensorFlow
abandons a call nobody waits for and the CPU goes to live requests. Here `cancel_at`
gives the calls made inside it a TensorFlow CancellationManager, and one watchdog thread
cancels it when the deadline passes; TensorFlow then stops the call at its next op. An
XLA-compiled function is one op, so it finishes.

TensorFlow's own way to hand a function call a CancellationManager keeps it in a
module global (`tensorflow.python.eager.cancellation`), which concurrent requests would
share. `install` replaces the lookup with a per-thread one (a thread's own manager, else
TensorFlow's global), once per process.
"""

import contextlib
import heapq
import itertools
import threading
import time

import grpc

from albert_tf.serving.tensors import ServingError

DEADLINE_MESSAGE = "Deadline exceeded while the model ran"

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


def install():
    """Makes TensorFlow look up the CancellationManager of a function call per thread."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from tensorflow.python.eager import cancellation

        global_lookup = cancellation.context

        def per_thread_lookup():
            return getattr(_local, "manager", None) or global_lookup()

        cancellation.context = per_thread_lookup
        _installed = True


class _Watchdog:
    """One daemon thread that cancels each registered CancellationManager at its deadline."""

    def __init__(self):
        self._heap = []  # (deadline, sequence, entry); entry = [manager, still running]
        self._condition = threading.Condition()
        self._sequence = itertools.count()
        self._thread = None

    def add(self, deadline, manager):
        """Cancels `manager` at `deadline` (time.monotonic()) unless the returned entry is
        marked finished first (entry[1] = False)."""
        entry = [manager, True]
        with self._condition:
            heapq.heappush(self._heap, (deadline, next(self._sequence), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="albert-serve-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is entry:  # the new earliest deadline: the thread must wake sooner
                self._condition.notify()
        return entry

    def _loop(self):
        with self._condition:
            while True:
                while self._heap and not self._heap[0][2][1]:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._heap)
                entry[0].start_cancel()


_watchdog = _Watchdog()


@contextlib.contextmanager
def cancel_at(deadline):
    """TensorFlow function calls made in this thread inside the block are cancelled at
    `deadline` (time.monotonic(), or None for never). A call stopped that way raises
    ServingError DEADLINE_EXCEEDED out of the block."""
    if deadline is None or getattr(_local, "manager", None) is not None:  # no deadline, or an outer one rules
        yield
        return
    install()
    from tensorflow.python.eager.cancellation import CancellationManager

    manager = CancellationManager()
    entry = _watchdog.add(deadline, manager)
    _local.manager = manager
    try:
        yield
    except ServingError as e:
        if e.code == grpc.StatusCode.CANCELLED and manager.is_cancelled:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE) from None
        raise
    finally:
        _local.manager = None
        entry[1] = False
