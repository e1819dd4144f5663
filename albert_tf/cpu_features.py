"""Whether this CPU multiplies bfloat16 natively, for the `--precision=bfloat16` warning.

`--precision=bfloat16` pays off only where oneDNN has bfloat16 instructions (AVX512-BF16 or
AMX). Elsewhere it emulates them and the export runs slower than float32. On a 2-core AMD
Zen 3 (AVX2, no AVX-512), ALBERT-base with bfloat16 matmuls took 1.77x float32's time at
1 x 12 tokens, 1.37x at 1 x 128 and 1.18x at 32 x 128 (a one-off script timing the Keras
backbone both ways, interleaved; WORKSPACE_NOTES, "bfloat16 on CPUs without it"). There,
float32 with `--xla` was the fastest export at every shape measured (`python benchmarks/peers.py`,
benchmarks/results/zen3/).
"""

NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names


def native_bfloat16_from_cpuinfo(cpuinfo_text):
    """True if the first `flags` line of a /proc/cpuinfo text (str) lists AVX512-BF16 or
    AMX-BF16, False if it lists neither, None if the text has no flags line."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return any(flag in value.split() for flag in NATIVE_BFLOAT16_FLAGS)
    return None


def native_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True / False as native_bfloat16_from_cpuinfo for this machine; None where
    /proc/cpuinfo cannot be read (not Linux) or has no flags."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            return native_bfloat16_from_cpuinfo(f.read())
    except OSError:
        return None


def bfloat16_warning(what):
    """A warning (str) that `what` ("this export", "model m version 3") uses bfloat16 matmuls
    on a CPU without native bfloat16, or None when the CPU has it or cannot be told."""
    if native_bfloat16() is not False:
        return None
    return (f"WARNING: {what} uses bfloat16 matmuls (--precision=bfloat16), but this CPU has neither "
            "AVX512-BF16 nor AMX, so they are emulated and run slower than float32 (1.2-1.8x its time for "
            "ALBERT-base on an AVX2 CPU). Serve it on a CPU with them, or export with --precision=float32; "
            "on an AVX2 CPU float32 with --xla was our fastest SavedModel (0.6-0.9x the float32 graph's time "
            "for ALBERT-base; it compiles once per new input shape, which --bucket_lengths bounds for raw-text "
            "requests), and --format=tflite (token ids in) faster still from about 40 tokens.")
