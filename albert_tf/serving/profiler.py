"""TensorFlow's profiler service on albert-serve's gRPC port (`--enable_profiler`, on by
default as in TF Serving).

TF Serving registers TSL's `tensorflow.ProfilerService` beside its own services, so
TensorBoard's "Capture profile" button and `tf.profiler.experimental.client.trace` can
record what the running server does. This is that service for albert-serve: `Profile`
traces the whole process for the requested time and writes the trace where the real one
does, `<repository_root>/<session_id>/<host_name>.xplane.pb` (":" in the host name
becomes "_"), which TensorBoard's profile plugin reads. `Terminate` ends a session's
trace early; `Monitor` is UNIMPLEMENTED, as in TSL.

The profiler options in a request (tracer levels) are not applied: TensorFlow 2.20's
Python binding rejects every value it is given for them ("expects an i value"), so
traces use TensorFlow's defaults (host tracer level 2, no Python tracer).
"""

import os
import shutil
import tempfile
import threading
import time

import grpc

from albert_tf.serving.text_proto import proto3_message_classes

SERVICE = "tensorflow.ProfilerService"
POLL_SECONDS = 0.01  # how often a running trace checks for Terminate and cancellation

# profiler_service.proto / profiler_options.proto (package tensorflow), the fields used.
_MESSAGES = proto3_message_classes("albert_tf/profiler_service.proto", "tensorflow", {
    "ProfileOptions": [("duration_ms", 9, "uint64")],
    "ProfileRequest": [("duration_ms", 1, "uint64"), ("opts", 4, "ProfileOptions"),
                       ("repository_root", 5, "string"), ("session_id", 6, "string"),
                       ("host_name", 7, "string")],
    "ProfileResponse": [("empty_trace", 7, "bool")],
    "TerminateRequest": [("session_id", 1, "string")],
    "TerminateResponse": [],
    "MonitorRequest": [("duration_ms", 1, "uint64")],
    "MonitorResponse": [("data", 1, "string")],
})
ProfileRequest = _MESSAGES["ProfileRequest"]
ProfileResponse = _MESSAGES["ProfileResponse"]
TerminateRequest = _MESSAGES["TerminateRequest"]
TerminateResponse = _MESSAGES["TerminateResponse"]
MonitorRequest = _MESSAGES["MonitorRequest"]
MonitorResponse = _MESSAGES["MonitorResponse"]

# xplane.proto, only as deep as counting events: XSpace.planes → XPlane.lines → XLine.events.
_XSpace = proto3_message_classes("albert_tf/xplane_events.proto", "tensorflow.profiler", {
    "XSpace": [("planes", 1, "repeated XPlane")],
    "XPlane": [("lines", 3, "repeated XLine")],
    "XLine": [("events", 4, "repeated XEvent")],
    "XEvent": [],
})["XSpace"]


def count_trace_events(xspace_bytes):
    """The number of events (int) in a serialized XSpace (bytes), the contents of an
    .xplane.pb file; 0 is what TSL calls an empty trace."""
    space = _XSpace.FromString(xspace_bytes)
    return sum(len(line.events) for plane in space.planes for line in plane.lines)


def xplane_path(repository_root, session_id, host_name):
    """Where TSL's SaveXSpace puts a session's trace (str)."""
    return os.path.join(repository_root, session_id, f"{host_name}.xplane.pb".replace(":", "_"))


class ProfilerServicer:
    """`tensorflow.ProfilerService`: one trace at a time, as TensorFlow's profiler allows.

    `log(str)` gets a line per finished trace.
    """

    def __init__(self, log=print):
        self.log = log
        self._lock = threading.Lock()
        self._terminated = set()  # session ids whose trace should end now

    def handler(self):
        """The grpc.GenericRpcHandler to add to a grpc.Server."""
        def unary(method, request_class):
            return grpc.unary_unary_rpc_method_handler(
                method, request_deserializer=request_class.FromString,
                response_serializer=lambda response: response.SerializeToString())

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Profile": unary(self.Profile, ProfileRequest),
            "Terminate": unary(self.Terminate, TerminateRequest),
            "Monitor": unary(self.Monitor, MonitorRequest),
        })

    def Profile(self, request, context):  # noqa: N802 - gRPC method name
        """Traces for `request.opts.duration_ms` (TSL's rule; `request.duration_ms` when
        that is 0), or until Terminate or cancellation, then writes the trace."""
        import tensorflow as tf
        from tensorflow.python.profiler.internal import _pywrap_profiler

        duration_ms = request.opts.duration_ms or request.duration_ms
        scratch = tempfile.mkdtemp(prefix="albert-serve-profile-")
        try:
            session = _pywrap_profiler.ProfilerSession()
            try:
                session.start(scratch, {})
            except Exception as e:  # noqa: BLE001 - e.g. another trace is running
                context.abort(grpc.StatusCode.INTERNAL, str(e))
            deadline = time.monotonic() + duration_ms / 1000
            while time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                if not context.is_active():
                    session.stop()
                    context.abort(grpc.StatusCode.CANCELLED, "Cancelled")
                with self._lock:
                    if request.session_id in self._terminated:
                        self._terminated.discard(request.session_id)
                        break
            session.export_to_tb()  # writes <scratch>/plugins/profile/<time>/<host>.xplane.pb
            written = [os.path.join(folder, name) for folder, _, names in os.walk(scratch)
                       for name in names if name.endswith(".xplane.pb")]
            if len(written) != 1:
                context.abort(grpc.StatusCode.INTERNAL, f"the profiler wrote {len(written)} traces, expected 1")
            with open(written[0], "rb") as f:
                trace = f.read()
            target = xplane_path(request.repository_root, request.session_id, request.host_name)
            try:
                _write_atomically(tf.io.gfile, target, trace)
            except (OSError, tf.errors.OpError) as e:
                context.abort(grpc.StatusCode.INTERNAL, f"cannot write the trace to {target}: {e}")
            events = count_trace_events(trace)
            self.log(f"albert-serve: profile of {duration_ms} ms ({events} events) written to {target}")
            return ProfileResponse(empty_trace=events == 0)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def Terminate(self, request, context):  # noqa: N802
        """Ends the trace of `request.session_id` now (it still writes what it has)."""
        with self._lock:
            self._terminated.add(request.session_id)
        return TerminateResponse()

    def Monitor(self, request, context):  # noqa: N802
        """UNIMPLEMENTED, as in TSL's profiler service."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")


def _write_atomically(gfile, path, data):
    """Writes `data` (bytes) to `path` through a temporary name (any TF filesystem)."""
    gfile.makedirs(os.path.dirname(path))
    temporary = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with gfile.GFile(temporary, "wb") as f:
            f.write(data)
        gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if gfile.exists(temporary):
            gfile.remove(temporary)
        raise

