# emergent: build, test, bench.
#   make            build ./train, ./prepare, ./sample, ./embeddings
#   make test       every test: C unit tests (cmocka), PyTorch parity, end-to-end runs
#   make data       put Tiny Shakespeare at data/tinyshakespeare.txt
#   make run        build, fetch the data, train configs/shakespeare_char.conf, write the
#                   page of its embeddings in motion (out/shakespeare_char/embeddings.html)
#   make deps       install the Debian packages (as root)
#   make bench      time training steps, C against PyTorch, and write docs/bench.md
#                   (with MARCH=x86-64-v3: docs/bench-x86-64-v3.md)
#   make sanitize   the whole suite again with ASan + UBSan builds
#   make fuzz       libFuzzer targets for every reader of outside input (clang)
#   make SPM=0      build without libsentencepiece (tokenizer = sentencepiece then
#                   reports that); by default SPM=1 when pkg-config finds it
#   make MPI=1      build with mpicc for data-parallel training over Open MPI
#                   (mpirun -np N ./train CONFIG; docs/mpi.md); `make MPI=1 test` tests it
#   make KERNELS=reference   build every program on the plain-loop reference
#                   kernels alone (kernels/reference/) instead of the fast ones
#   make MARCH=x86-64-v3   build for AVX2 + FMA (default: native, this CPU)
#   make cross-test build for aarch64 (NEON) and run the kernel, model and training
#                   tests and a short training run under qemu-aarch64 (docs/testing.md)

CC ?= gcc
# MARCH: the CPU to build for. native (this CPU: AVX-512 where present) by default;
#   x86-64-v3 is AVX2 + FMA, which any x86 of the last decade runs: `make bench
#   MARCH=x86-64-v3` measures the AVX2 path on an AVX-512 machine.
MARCH ?= native
# -O3 -march=$(MARCH): vectorise the kernels for that CPU (kernels/fast/simd.h).
# -ffp-contract=fast: let the compiler fuse a*b+c into FMA; -std=c11 alone turns this
#   off. Determinism does not suffer: each output element always runs the same code.
# -fno-math-errno: sqrtf becomes one instruction (no errno to set), so loops using it
#   vectorise; the values are the same.
# No -ffast-math: it would let the compiler reorder sums (and break NaN checks).
# -fopenmp: thread the kernels; every parallel loop splits over outputs.
OPTFLAGS ?= -O3 -march=$(MARCH) -ffp-contract=fast -fno-math-errno
CFLAGS ?= $(OPTFLAGS)
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -I.
# MPI=1: the same program compiled by Open MPI's wrapper, with training/dist.c's MPI calls in
MPI ?= 0
ifeq ($(MPI),1)
CC = mpicc
CFLAGS += -DUSE_MPI
endif
# WERROR=1 (CI) turns warnings into errors
ifeq ($(WERROR),1)
CFLAGS += -Werror
endif
LDLIBS = -lm
PYTHON ?= /usr/bin/python3

# The SentencePiece backend: one C++17 file (the library's headers need it),
# linked with the library and its trainer; without it, a C stub.
SPM ?= $(shell pkg-config --exists sentencepiece 2>/dev/null && echo 1 || echo 0)
CXX ?= g++
CXXFLAGS ?= $(OPTFLAGS)
CXXFLAGS += -std=c++17 -Wall -Wextra -Wno-unused-parameter -I.
ifeq ($(WERROR),1)
CXXFLAGS += -Werror
endif
ifeq ($(SPM),1)
SPM_OBJ = tokenizer/sentencepiece_shim.o
LDLIBS += $(shell pkg-config --libs sentencepiece) -lstdc++
else
SPM_OBJ = tokenizer/sentencepiece_none.o
endif

# The kernels: one API (kernels/*.h), two layers. kernels/reference/ holds every
# kernel as plain loops, kernels/fast/ the tuned twins of some. KERNELS=fast (the
# default) links each fast kernel and the reference file of every kernel that has
# no fast twin; KERNELS=reference links the reference layer alone.
KERNELS ?= fast
REF_KERNEL_SRCS = $(wildcard kernels/reference/*.c)
FAST_KERNEL_SRCS = $(wildcard kernels/fast/*.c)
ifeq ($(KERNELS),fast)
KERNEL_SRCS = $(FAST_KERNEL_SRCS) $(filter-out $(FAST_KERNEL_SRCS:kernels/fast/%=kernels/reference/%),$(REF_KERNEL_SRCS))
else ifeq ($(KERNELS),reference)
KERNEL_SRCS = $(REF_KERNEL_SRCS)
else
$(error KERNELS=$(KERNELS): use KERNELS=fast (the default) or KERNELS=reference)
endif
KERNEL_OBJS = $(KERNEL_SRCS:.c=.o)
TOKENIZER = tokenizer/tokenizer.o tokenizer/char_tokenizer.o $(SPM_OBJ)
# Every module's object: the model, then each folder's sources (a new .c file joins by being there).
MODULES = gpt formats data training embed util
CORE = model.o $(patsubst %.c,%.o,$(foreach d,$(MODULES),$(wildcard $(d)/*.c))) $(TOKENIZER) $(KERNEL_OBJS)
HEADERS = $(wildcard *.h */*.h kernels/*/*.h)
TESTS = tests/test_kernels tests/test_model tests/test_config tests/test_training tests/test_tokenizer \
        tests/test_safetensors tests/test_checkpoint tests/test_embeddings

.PHONY: all test run data deps clean bench sanitize
all: train prepare sample embeddings

train: train.o $(CORE)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# the other programs: sources in programs/, binaries at the root beside ./train
sample embeddings prepare: %: programs/%.o $(CORE)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Objects remember the flags they were built with: a build with other flags
# (MPI=1, SPM=0, KERNELS=reference, OPTFLAGS=...) rebuilds everything instead of
# mixing objects (and relinks every program on the other kernels).
BUILD_FLAGS = $(CC) $(CFLAGS) | $(CXX) $(CXXFLAGS) | SPM=$(SPM) | KERNELS=$(KERNELS)
.build-flags: FORCE
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
.PHONY: FORCE
FORCE:

%.o: %.c $(HEADERS) .build-flags
	$(CC) $(CFLAGS) -c -o $@ $<

tokenizer/sentencepiece_shim.o: tokenizer/sentencepiece_shim.cc $(HEADERS) .build-flags
	$(CXX) $(CXXFLAGS) $(shell pkg-config --cflags sentencepiece) -c -o $@ $<

tests/%: tests/%.c tests/test_util.h $(CORE)
	$(CC) $(CFLAGS) -o $@ $< $(CORE) $(LDLIBS) -lcmocka

# The reference layer once more with its functions renamed ref_* (tests/ref_*.o), for
# test_kernels to compare the build's kernels with. tests/reference_kernels.h declares
# the ref_* functions; included here after the renames, it fails to compile if one of
# its declarations differs from the API's. A name missing from KERNEL_API fails the
# link (two definitions of it).
KERNEL_API = matmul_path matmul_forward matmul_scratch_floats matvec_forward matmul_backward matmul_backward_scratch_floats \
             attention_scratch_floats attention_forward attention_backward attention_decode \
             layernorm_forward residual_layernorm_forward layernorm_backward \
             sinusoidal_table encoder_forward encoder_backward gelu_forward gelu_backward \
             crossentropy_forward crossentropy_backward dropout_key dropout_forward dropout_backward \
             rope_table rope_forward rope_backward rope_row
REF_NAMES = $(foreach f,$(KERNEL_API),-D$(f)=ref_$(f))
REF_RENAMED_OBJS = $(patsubst kernels/reference/%.c,tests/ref_%.o,$(REF_KERNEL_SRCS))
tests/ref_%.o: kernels/reference/%.c $(HEADERS) .build-flags
	$(CC) $(CFLAGS) $(REF_NAMES) -include tests/reference_kernels.h -c -o $@ $<

# test_kernels: the build's kernels against the renamed reference; with the fast
# layer (TEST_FAST_KERNELS) also its private helpers.
KERNEL_TEST_OBJS = $(REF_RENAMED_OBJS)
ifeq ($(KERNELS),fast)
KERNEL_TEST_FLAGS = -DTEST_FAST_KERNELS
else
KERNEL_TEST_FLAGS =
endif
tests/test_kernels: tests/test_kernels.c tests/test_util.h $(CORE) $(KERNEL_TEST_OBJS)
	$(CC) $(CFLAGS) $(KERNEL_TEST_FLAGS) -o $@ $< $(CORE) $(KERNEL_TEST_OBJS) $(LDLIBS) -lcmocka

# ./train and tests/parity_dump linked with the reference layer alone, whatever
# KERNELS says: tests/test_reference.sh compares them with the build's.
REF_CORE = $(filter-out $(KERNEL_OBJS),$(CORE)) $(REF_KERNEL_SRCS:.c=.o)
tests/reference/train: train.o $(REF_CORE)
	@mkdir -p tests/reference
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

tests/reference/parity_dump: tests/parity_dump.c $(REF_CORE)
	@mkdir -p tests/reference
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

tests/parity_dump: tests/parity_dump.c $(CORE)
	$(CC) $(CFLAGS) -o $@ $< $(CORE) $(LDLIBS)

tests/logits_dump: tests/logits_dump.c $(CORE)
	$(CC) $(CFLAGS) -o $@ $< $(CORE) $(LDLIBS)

# the benchmark: one training step of the C model, timed
bench/bench_step: bench/bench_step.c $(CORE) $(HEADERS) .build-flags
	$(CC) $(CFLAGS) -o $@ $< $(CORE) $(LDLIBS)

# the FP32 FMA peak of this CPU, the yardstick of the benchmark's GFLOP/s, for the
# build's instruction set (MARCH=x86-64-v3: the AVX2 peak)
bench/fma_peak: bench/fma_peak.c .build-flags
	$(CC) $(CFLAGS) -o $@ $<

test: train prepare sample embeddings $(TESTS) tests/parity_dump tests/logits_dump tests/memcheck/train \
      tests/memcheck/sample tests/reference/train tests/reference/parity_dump
	PYTHON=$(PYTHON) MPI=$(MPI) tests/run_all.sh
ifeq ($(MPI),1)
	PYTHON=$(PYTHON) tests/test_mpi.sh
endif

# the report: docs/bench.md for this CPU's build, docs/bench-$(MARCH).md for another
BENCH_OUT ?= $(if $(filter native,$(MARCH)),docs/bench.md,docs/bench-$(MARCH).md)
bench: train bench/bench_step bench/fma_peak
	PYTHON=$(PYTHON) BENCH_OUT=$(BENCH_OUT) MARCH=$(MARCH) bench/bench.sh

# make sanitize: every program and test rebuilt under AddressSanitizer and
# UndefinedBehaviorSanitizer (-O2 -g; any report ends the program with an error),
# then the whole suite. The objects it leaves are sanitized: the next plain `make`
# rebuilds them (.build-flags). SANITIZE=1 tells the suite to skip what cannot run
# under ASan: valgrind, and ulimit -v (ASan reserves terabytes of address space).
SANITIZE_OPTFLAGS = -O2 -g -march=$(MARCH) -ffp-contract=fast -fno-math-errno -fno-omit-frame-pointer \
                    -fsanitize=address,undefined -fno-sanitize-recover=all
sanitize:
	SANITIZE=1 ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(MAKE) OPTFLAGS="$(SANITIZE_OPTFLAGS)" test

# valgrind's memcheck cannot decode AVX-512: tests/test_valgrind.sh runs copies of
# ./train and ./sample built for AVX2 with debug info, one compile each.
MEMCHECK_CFLAGS = -O2 -g -march=x86-64-v3 -ffp-contract=fast -fno-math-errno -std=c11 -D_POSIX_C_SOURCE=200809L \
                  -fopenmp -I.
MEMCHECK_SRCS = $(filter-out $(SPM_OBJ:.o=.c),$(CORE:.o=.c)) tokenizer/sentencepiece_none.c
tests/memcheck/train: train.c
tests/memcheck/sample: programs/sample.c
tests/memcheck/%: $(MEMCHECK_SRCS) $(HEADERS)
	@mkdir -p tests/memcheck
	$(CC) $(MEMCHECK_CFLAGS) -o $@ $(filter train.c programs/%,$^) $(MEMCHECK_SRCS) -lm

# make run trains the default config from scratch each time: --overwrite moves an earlier
# run's files to out/shakespeare_char/previous-<UTC time>/ (at the new run's first
# checkpoint) instead of refusing to start. ./train itself refuses without it. Then the page
# that plays the run's snapshots of E: out/shakespeare_char/embeddings.html (docs/embeddings.md).
run: train embeddings data/tinyshakespeare.txt
	./train configs/shakespeare_char.conf --overwrite
	./embeddings out/shakespeare_char html --out=out/shakespeare_char/embeddings.html

data: data/tinyshakespeare.txt
data/tinyshakespeare.txt:
	scripts/get_data.sh

deps:
	scripts/install_deps.sh

clean:
	rm -f train prepare sample embeddings *.o */*.o kernels/*/*.o $(TESTS) tests/parity_dump tests/logits_dump \
	      bench/bench_step bench/fma_peak .build-flags $(FUZZ_ALL:%=tests/fuzz/fuzz_%) tests/fuzz/sentencepiece_shim.o \
	      tests/reference/train tests/reference/parity_dump \
	      tests/memcheck/train tests/memcheck/sample
	rm -rf $(CROSS_DIR)

# ---------------------------------------------------------------------------
# Fuzzing: one libFuzzer target per reader of outside input, in
# tests/fuzz/fuzz_<name>.c, with seed corpora in tests/fuzz/corpus/<name>/
# (docs/robustness.md). clang builds each binary straight from the sources with
# libFuzzer, AddressSanitizer (LeakSanitizer included) and UBSan, aborting at
# the first undefined behaviour; the gcc objects above are neither used nor touched.
#   make fuzz                        build every tests/fuzz/fuzz_<name>
#   make fuzz-run FUZZ_SECONDS=60    run each for that long on a copy of its seeds:
#                                    fails on a crash, leak, timeout or OOM
#                                    (FUZZ_TARGETS="config tokens" runs only those)
FUZZ_CC ?= clang
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_ALL = config tokens safetensors checkpoint_state checkpoint_model tokenizer sentencepiece
FUZZ_TARGETS ?= $(FUZZ_ALL)
# -O1 -g: fast enough to fuzz, and readable stack traces. -fopenmp: the kernels'
# pragmas (the targets run one thread). -fsanitize-link-c++-runtime: UBSan's C++
# checks in the SentencePiece shim, linked by the C driver. -Wno-pass-failed: at
# -O1 clang does not vectorise, and would warn at each `#pragma omp simd` loop.
FUZZ_SANITIZE = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 $(FUZZ_SANITIZE) -fopenmp -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
              -Wno-unused-parameter -Wno-pass-failed -I. -Itests/fuzz
FUZZ_SRCS = $(filter-out $(SPM_OBJ:.o=.c),$(CORE:.o=.c)) tests/fuzz/fuzz_common.c
FUZZ_LDLIBS = -lm
ifeq ($(SPM),1)
FUZZ_SPM = tests/fuzz/sentencepiece_shim.o
FUZZ_LDLIBS += $(shell pkg-config --libs sentencepiece) -lstdc++ -fsanitize-link-c++-runtime
else
FUZZ_SPM = tokenizer/sentencepiece_none.c
endif
FUZZ_BINS = $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%)
.PHONY: fuzz fuzz-run

fuzz: $(FUZZ_BINS)

# the shim, instrumented (fuzzer-no-link: coverage without a second main)
tests/fuzz/sentencepiece_shim.o: tokenizer/sentencepiece_shim.cc $(HEADERS)
	$(FUZZ_CXX) -g -O1 $(subst fuzzer,fuzzer-no-link,$(FUZZ_SANITIZE)) -std=c++17 -Wall -Wextra \
	    -Wno-unused-parameter -I. $(shell pkg-config --cflags sentencepiece) -c -o $@ $<

tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_SRCS) $(FUZZ_SPM) $(HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) $(FUZZ_SPM) $(FUZZ_LDLIBS)

fuzz-run: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_TARGETS)

# ---------------------------------------------------------------------------
# make cross-test: the programs and the kernel, model and training tests built for
# aarch64 (NEON) by the cross compiler and run under qemu-aarch64 (user-mode
# emulation; one thread, 2 to 4 in the thread checks); a 20-step training run that
# must learn; objdump's word that the matmul tile is NEON fmla on v*.4s
# (tests/cross_test.sh, docs/testing.md). scripts/install_cross_deps.sh installs the
# toolchain. Objects go to build/aarch64/, away from the host build's, each source
# compiled once and remembering its flags; the fast kernel layer (and a
# reference/train on the reference layer alone); no SentencePiece (as SPM=0).
#   make cross-test                               install what is missing, build, run
#   make cross-build                              build only
#   make cross-test CROSS_OPTFLAGS="-O3 -mcpu=neoverse-n1 ..."   another target CPU
CROSS ?= aarch64-linux-gnu-
CROSS_DIR = build/aarch64
# -march=armv8-a: the baseline every aarch64 CPU runs; NEON (Advanced SIMD) is part of it.
CROSS_OPTFLAGS ?= -O3 -march=armv8-a -ffp-contract=fast -fno-math-errno
CROSS_CFLAGS = $(CROSS_OPTFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Wall -Wextra -Wshadow \
               -Wno-unused-parameter -I.
ifeq ($(WERROR),1)
CROSS_CFLAGS += -Werror
endif
CROSS_KERNEL_SRCS = $(FAST_KERNEL_SRCS) $(filter-out $(FAST_KERNEL_SRCS:kernels/fast/%=kernels/reference/%),$(REF_KERNEL_SRCS))
CROSS_CORE = $(patsubst %.c,$(CROSS_DIR)/%.o,model.c $(foreach d,$(MODULES),$(wildcard $(d)/*.c)) \
             tokenizer/tokenizer.c tokenizer/char_tokenizer.c tokenizer/sentencepiece_none.c $(CROSS_KERNEL_SRCS))
CROSS_PROGRAMS = $(CROSS_DIR)/train $(CROSS_DIR)/prepare $(CROSS_DIR)/sample $(CROSS_DIR)/embeddings \
                 $(CROSS_DIR)/reference/train
CROSS_TESTS = $(CROSS_DIR)/tests/test_kernels $(CROSS_DIR)/tests/test_model $(CROSS_DIR)/tests/test_training
.PHONY: cross-deps cross-build cross-test

# the objects remember their flags, as .build-flags does for the host's
$(CROSS_DIR)/.flags: FORCE
	@mkdir -p $(CROSS_DIR)
	@echo '$(CROSS)gcc $(CROSS_CFLAGS)' | cmp -s - $@ || echo '$(CROSS)gcc $(CROSS_CFLAGS)' > $@

$(CROSS_DIR)/%.o: %.c $(HEADERS) $(CROSS_DIR)/.flags
	@mkdir -p $(@D)
	$(CROSS)gcc $(CROSS_CFLAGS) -c -o $@ $<

$(CROSS_DIR)/train: $(CROSS_DIR)/train.o $(CROSS_CORE)
	$(CROSS)gcc $(CROSS_CFLAGS) -o $@ $^ -lm
$(CROSS_DIR)/sample $(CROSS_DIR)/embeddings $(CROSS_DIR)/prepare: $(CROSS_DIR)/%: $(CROSS_DIR)/programs/%.o $(CROSS_CORE)
	$(CROSS)gcc $(CROSS_CFLAGS) -o $@ $^ -lm
# ./train on the reference kernels alone, as tests/reference/train: the same losses
CROSS_REF_CORE = $(filter-out $(CROSS_KERNEL_SRCS:%.c=$(CROSS_DIR)/%.o),$(CROSS_CORE)) $(REF_KERNEL_SRCS:%.c=$(CROSS_DIR)/%.o)
$(CROSS_DIR)/reference/train: $(CROSS_DIR)/train.o $(CROSS_REF_CORE)
	@mkdir -p $(@D)
	$(CROSS)gcc $(CROSS_CFLAGS) -o $@ $^ -lm

# test_kernels as the host's: the reference layer once more under ref_* names
CROSS_REF_RENAMED = $(patsubst kernels/reference/%.c,$(CROSS_DIR)/tests/ref_%.o,$(REF_KERNEL_SRCS))
$(CROSS_DIR)/tests/ref_%.o: kernels/reference/%.c $(HEADERS) $(CROSS_DIR)/.flags
	@mkdir -p $(@D)
	$(CROSS)gcc $(CROSS_CFLAGS) $(REF_NAMES) -include tests/reference_kernels.h -c -o $@ $<
$(CROSS_DIR)/tests/test_kernels: tests/test_kernels.c tests/test_util.h $(CROSS_CORE) $(CROSS_REF_RENAMED)
	$(CROSS)gcc $(CROSS_CFLAGS) -DTEST_FAST_KERNELS -o $@ $< $(filter %.o,$^) -lm -lcmocka
$(CROSS_DIR)/tests/test_model $(CROSS_DIR)/tests/test_training: $(CROSS_DIR)/tests/%: tests/%.c tests/test_util.h $(CROSS_CORE)
	@mkdir -p $(@D)
	$(CROSS)gcc $(CROSS_CFLAGS) -o $@ $< $(CROSS_CORE) -lm -lcmocka

cross-deps:
	scripts/install_cross_deps.sh

cross-build: $(CROSS_PROGRAMS) $(CROSS_TESTS)

cross-test: cross-deps
	$(MAKE) cross-build
	CROSS=$(CROSS) CROSS_DIR=$(CROSS_DIR) tests/cross_test.sh
