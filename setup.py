"""Packaging for albert-tf. One pinned, mutually consistent TensorFlow stack:
tensorflow, tensorflow-text and tensorflow-serving-api share the 2.20 minor version."""

from setuptools import find_packages, setup

# Console scripts: every CLI is also runnable as `python -m albert_tf.<module>`.
CONSOLE_SCRIPTS = [
    "albert-model-summary=albert_tf.model_summary:run",
    "albert-train-tokenizer=albert_tf.train_tokenizer:run",
    "albert-tokenize=albert_tf.tokenize:run",
    "albert-create-pretraining-data=albert_tf.create_pretraining_data:run",
    "albert-pipeline=albert_tf.run_pipeline:run",
    "albert-run-pretraining=albert_tf.run_pretraining:run",
    "albert-convert-checkpoint=albert_tf.convert_checkpoint:run",
    "albert-export=albert_tf.export_savedmodel:run",
    "albert-serve=albert_tf.serve:run",
    "albert-client=albert_tf.client:run",
    "albert-ssl-config=albert_tf.make_ssl_config:run",
    "albert-run-classifier=albert_tf.run_classifier:run",
    "albert-run-squad=albert_tf.run_squad:run",
]

setup(
    name="albert-tf",
    version="0.1.0",
    description="ALBERT (A Lite BERT) in Keras 3 / TensorFlow 2: pretraining, fine-tuning, "
    "checkpoint conversion and TF Serving export",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["albert_tf", "albert_tf.*"]),
    package_data={"albert_tf.text": ["re2_classes.json"]},  # Unicode classes, computed ahead (normalize.py)
    install_requires=[
        "tensorflow==2.20.0",
        "tensorflow-text==2.20.1",
        "tensorflow-serving-api==2.20.0",
        "keras==3.12.0",
        "sentencepiece==0.2.1",
        "grpcio==1.85.3",
        "grpcio-health-checking==1.85.1",  # --enable_grpc_healthcheck_service (its newest release)
        "absl-py==2.5.1",
        "numpy>=1.26,<3",
        # TensorFlow takes any ml_dtypes 0.5-0.x; 0.7.0's import alone takes 1.1-1.3 s on a
        # 2-core Zen 3 (0.2 s for 0.6.0), paid by every process that imports TensorFlow.
        "ml_dtypes==0.6.0",
        "orjson==3.13.0",  # albert-serve's REST answers: numpy arrays straight to JSON
    ],
    extras_require={
        # cryptography: tests/test_tls.py makes its CA, server and client certificates.
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "cryptography==50.0.2"],
        # Plots and memory readings for benchmarks/.
        "bench": ["matplotlib==3.11.2", "psutil==7.2.2"],
        # Other runtimes timed beside ours by benchmarks/peers.py (for the CPU-only torch wheel add
        # --extra-index-url https://download.pytorch.org/whl/cpu). keras-hub 0.25.1 is the newest
        # release that accepts our Keras 3.12, so it runs on our pinned TensorFlow.
        "peers": ["onnxruntime==1.32.0", "onnx==1.23.2", "onnxscript==0.7.2", "torch==2.13.0",
                  "transformers==5.24.0", "keras-hub==0.25.1"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
