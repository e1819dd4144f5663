"""Training pieces: losses (and, with pretraining, optimizers and the loop)."""
