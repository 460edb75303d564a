#!/usr/bin/env bash
# install_deps.sh: the Debian packages emergent needs, installed only if missing.
#   gcc, make (build-essential)        the trainer (C11 + OpenMP)
#   libcmocka-dev                      C unit tests
#   libsentencepiece-dev, pkg-config   the sentencepiece tokenizer (make SPM=0 builds without)
#   python3-torch, python3-numpy       the PyTorch parity test, the GPT-2 layout check
#   libopenblas0-pthread               the BLAS behind them: without it (and with --no-install-recommends)
#                                      apt satisfies libblas.so.3 with the reference BLAS, and the
#                                      PyTorch peer of make bench runs at 5 GFLOP/s instead of about 50
#   python3-matplotlib                 scripts/plot_curves.py (training curves as PNG)
#   libopenmpi-dev, openmpi-bin        make MPI=1: data-parallel training over MPI (docs/mpi.md)
#   clang, libclang-rt-14-dev,         make fuzz: libFuzzer targets with ASan and UBSan (libclang-rt
#   libomp-14-dev                      holds libFuzzer; libomp clang's OpenMP) (docs/robustness.md)
#   valgrind                           tests/test_valgrind.sh: memcheck on training and sampling
#   chromium, chromium-driver,         tests/test_html.sh: the page of ./embeddings OUT_DIR html in
#   python3-selenium                   headless chromium (skipped without them)
set -euo pipefail
packages=(build-essential libcmocka-dev libsentencepiece-dev pkg-config python3-torch python3-numpy
          libopenblas0-pthread python3-matplotlib libopenmpi-dev openmpi-bin clang libclang-rt-14-dev libomp-14-dev valgrind
          chromium chromium-driver python3-selenium)
"$(dirname "$0")/apt_install.sh" dependencies "${packages[@]}"
