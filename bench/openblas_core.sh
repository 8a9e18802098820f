# openblas_core.sh — sourced by the bench scripts: PyTorch's best CPU configuration here. Debian's
# OpenBLAS 0.3.21 does not know the AVX-512 Xeons of these guests and runs its Prescott kernels, so on an
# AVX-512 CPU the core is named (SkylakeX); on any other CPU the name would select instructions it
# lacks (SIGILL on an AVX2 AMD EPYC), so OpenBLAS detects the core itself. A caller's value wins.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
