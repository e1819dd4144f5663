"""Shared by the serving tests (the `models` fixture they use is in conftest.py): request
builders, a REST caller and a model-config writer."""

import concurrent.futures
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from tests.conftest import random_inputs


Code = grpc.StatusCode
MAX_SEQ = 48


def write_config(path, base, names=("albert", "cls", "reg"), labels=None, policy=""):
    lines = ["model_config_list {"]
    for name in names:
        lines.append(f"  config {{ name: '{name}' base_path: '{base / name}' model_platform: 'tensorflow' {policy}")
        for label, version in (labels or {}).get(name, {}).items():
            lines.append(f"    version_labels {{ key: '{label}' value: {version} }}")
        lines.append("  }")
    lines.append("}")
    path.write_text("\n".join(lines))
    return str(path)


def stubs(address, **limits):
    options = [("grpc.max_receive_message_length", limits.get("receive", -1)),
               ("grpc.max_send_message_length", limits.get("send", -1))]
    channel = grpc.insecure_channel(address, options=options if limits.get("raised", True) else [])
    return (prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel), channel)


def predict_request(inputs, model="albert", signature="", output_filter=(), version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def rpc_error(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details() or ""


def ids_inputs(config, batch=2, seq=9, seed=0):
    return random_inputs(np.random.default_rng(seed), config, batch=batch, seq=seq)


def rest(server, path, body=None):
    """(HTTP status, parsed JSON) of a REST call; body: a dict (sent as JSON) or raw bytes."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(server.rest_url + path, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def predict_at_once_then_stop(process, requests, clients=16):
    """Sends the PredictRequests from `clients` threads at once, then stops the server.

    Returns ([{alias: numpy} per request, in order], (batches, requests) from the server's
    batching summary line). The server is stopped even when a request fails."""
    predict, _, channel = stubs(process.address)

    def call(request):
        response = predict.Predict(request, timeout=60)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    try:
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(call, requests))
    finally:
        channel.close()
        _, stderr = process.stop()
    summary = stderr.split("batching: ")[1].split()  # "<batches> batches for <requests> requests"
    return results, (int(summary[0]), int(summary[3]))
