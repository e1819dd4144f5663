"""Pretraining data: raw text → MLM + SOP examples in the original TFRecord format.

Importing this package does not import TensorFlow (data workers stay lean).
"""
