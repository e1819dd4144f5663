"""Checkpoint conversion between the original TF1 ALBERT names and albert_tf models."""
