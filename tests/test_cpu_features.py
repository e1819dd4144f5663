"""Reading whether the CPU has native bfloat16 (the --precision=bfloat16 warning)."""

from albert_tf import cpu_features


def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    avx2 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n"
    zen5 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
    sapphire_rapids = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
    assert cpu_features.native_bfloat16_from_cpuinfo(avx2) is False
    assert cpu_features.native_bfloat16_from_cpuinfo(zen5) is True
    assert cpu_features.native_bfloat16_from_cpuinfo(sapphire_rapids) is True
    assert cpu_features.native_bfloat16_from_cpuinfo("processor\t: 0\n") is None
    assert cpu_features.native_bfloat16(str(tmp_path / "no_cpuinfo")) is None
    (tmp_path / "cpuinfo").write_text(avx2)
    assert cpu_features.native_bfloat16(str(tmp_path / "cpuinfo")) is False
