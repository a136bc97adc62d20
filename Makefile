# distill.h - build, test, bench, demo.   make help
CC      ?= cc
CXX     ?= c++
OPT     ?= -O2
# Portable default: no -march at all. The kernels pick AVX2/FMA or AVX-512 at run time (per-function
# target attributes + a one-time CPU check), so a plain -O2 build is fast and runs on any x86-64.
# ARCH=-march=native only helps the compiler's auto-vectorisation of the non-kernel loops.
ARCH    ?=
WARN    ?= -Wall -Wextra -pedantic
CSTD    ?= -std=c99
BUILD   ?= build
CFLAGS  += $(CSTD) $(OPT) $(ARCH) $(WARN) -g $(XCFLAGS)
LDLIBS  += -lm -lpthread
# make MPI=1: data-parallel training and distributed sweeps over MPI (Debian: libopenmpi-dev)
ifeq ($(MPI),1)
CC      := mpicc
CFLAGS  += -DDISTILL_MPI
endif
ifeq ($(BLAS),1)
CFLAGS  += -DDISTILL_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread
LDLIBS  += -lopenblas
endif

HDR      := distill.h
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
CLI_SRC  := examples/distill.c $(wildcard examples/cli/*.c) $(wildcard examples/valley/*.c)

.PHONY: test-mpi all test asan fixtures bench demo valley clean help compile-check test-long fuzz bench-data test-blas test-aarch64 fuzz-tokenizer bench-tokenizer
all: distill

# the tool is rebuilt when the compiler or flags change (make MPI=1 / BLAS=1 after a plain make)
FLAGS_STAMP := build/.flags-distill
$(FLAGS_STAMP): FORCE
	@mkdir -p build; echo '$(CC) $(CFLAGS) $(LDLIBS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDLIBS)' > $@
.PHONY: FORCE
FORCE:

distill: $(CLI_SRC) $(wildcard examples/cli/*.h) $(wildcard examples/valley/*.h) $(HDR) $(FLAGS_STAMP)
	$(CC) $(CFLAGS) -o $@ $(CLI_SRC) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/harness.h $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the world's tests link the world's code (examples/valley/world.c) rather than #include it
$(BUILD)/tests/test_world: tests/test_world.c examples/valley/world.c examples/valley/world.h tests/harness.h $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ tests/test_world.c examples/valley/world.c $(LDLIBS)

## make test: build and run the whole suite (one closing line "N passed, N failed")
test: $(TESTS) distill
	@mkdir -p build
	@sh tests/run.sh $(TESTS)

## make asan: the suite under AddressSanitizer + UndefinedBehaviorSanitizer
asan:
	$(MAKE) test BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDLIBS="-lm -lpthread -fsanitize=address,undefined"

## make compile-check: the header warning-free with gcc, clang (C99, C11) and as C++, and
## DISTILL_STATIC in two translation units of one program
compile-check:
	sh tests/compile_check.sh

## make fixtures: regenerate the committed reference fixtures (needs python3-torch, node)
fixtures: distill
	@for g in tests/gen_*.py; do [ -f "$$g" ] && echo "== $$g" && /usr/bin/python3 $$g || exit 1; done
	@[ -d tests/node_modules/tiktoken ] || { echo "tests/node_modules missing: (cd tests && npm install)"; exit 1; }
	@for g in tests/gen_*.js; do [ -f "$$g" ] && echo "== $$g" && node $$g || exit 1; done

## make test-blas: the kernel tests built with BLAS=1 (OpenBLAS == own kernels, 1 == N threads)
test-blas:
	$(MAKE) BLAS=1 BUILD=build/blas build/blas/tests/test_kernels build/blas/tests/test_threads
	@sh tests/run.sh build/blas/tests/test_kernels build/blas/tests/test_threads

## make bench-mpi: data-parallel step and all-reduce time, 1 vs 2 ranks (bench/RESULTS.md)
.PHONY: bench-mpi
bench-mpi:
	sh bench/run_mpi.sh

## make test-mpi: data-parallel training and distributed sweeps under mpirun -np 2 (libopenmpi-dev)
MPICC ?= mpicc
test-mpi:
	@mkdir -p build/mpi
	$(MPICC) $(CSTD) $(OPT) $(WARN) -g -DDISTILL_MPI -o build/distill-mpi $(CLI_SRC) $(LDLIBS)
	$(MPICC) $(CSTD) $(OPT) $(WARN) -g -DDISTILL_MPI -o build/mpi/test_mpi_dp tests/mpi/test_mpi_dp.c $(LDLIBS)
	$(MPICC) $(CSTD) $(OPT) $(WARN) -g -DDISTILL_MPI -o build/mpi/data_parallel examples/data_parallel.c $(LDLIBS)
	@sh tests/run.sh tests/mpi/run_dp.sh tests/mpi/example_dp.sh tests/mpi/mpi_train.sh $(wildcard tests/mpi_sweep.sh tests/mpi/mpi_sweep.sh)

## make test-aarch64: the kernel tests cross-compiled for aarch64 (NEON) and run under qemu-user
test-aarch64:
	sh tests/cross_aarch64.sh

## make bench: FMA peak, matmul GFLOP/s (own vs OpenBLAS), training tokens/s (+ PyTorch); see bench/RESULTS.md
bench:
	sh bench/run.sh

## make fuzz-tokenizer: libFuzzer on the three tokenizer loaders for FUZZ_SECONDS (default 60)
fuzz-tokenizer:
	@mkdir -p build/fuzz/corpus_fuzz_tokenizer build/fuzz/crashes_fuzz_tokenizer
	@cp tests/fuzz/seeds/fuzz_tokenizer/* build/fuzz/corpus_fuzz_tokenizer/
	$${FUZZ_CC:-clang} -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o build/fuzz/fuzz_tokenizer tests/fuzz/fuzz_tokenizer.c -lm -lpthread
	build/fuzz/fuzz_tokenizer -max_total_time=$${FUZZ_SECONDS:-60} -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 -artifact_prefix=build/fuzz/crashes_fuzz_tokenizer/ build/fuzz/corpus_fuzz_tokenizer

## make bench-generate: decode tokens/s with the KV cache (batch 1, 8, 32) next to the measured memory-bandwidth bound (bench/RESULTS.md)
.PHONY: bench-generate
bench-generate:
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o build/bench/bench_generate bench/bench_generate.c $(LDLIBS)
	build/bench/bench_generate 128 64

## make bench-05b: a Qwen2.5-0.5B-shaped model end to end (sharded BF16 folder: load, generate, train, export); ~10 GB RAM
.PHONY: bench-05b
bench-05b:
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o build/bench/bench_05b bench/bench_05b.c $(LDLIBS)
	build/bench/bench_05b build/bench_05b 128 3

## make bench-tokenizer: GPT-2 encode MB/s vs npm tiktoken, BPE training time (bench/RESULTS.md)
bench-tokenizer:
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o build/bench/bench_tokenizer bench/bench_tokenizer.c $(LDLIBS)
	@[ -f build/bench/tok_corpus.jsonl ] || python3 bench/make_tokenizer_corpus.py --mb 4 --out build/bench/tok_corpus.jsonl
	@[ -f build/bench/tok_corpus10.jsonl ] || python3 bench/make_tokenizer_corpus.py --mb 10 --out build/bench/tok_corpus10.jsonl
	build/bench/bench_tokenizer encode build/bench/tok_corpus.jsonl ../shared/data/gpt2/tokenizer.json 3
	@[ -d tests/node_modules/tiktoken ] && node bench/tiktoken_bench.js build/bench/tok_corpus.jsonl 3 || echo "(cd tests && npm install) for the tiktoken comparison"
	build/bench/bench_tokenizer train build/bench/tok_corpus10.jsonl 8192

## make bench-data: JSONL load + tokenise MB/s and the JSON layer's share of the time (bench/RESULTS.md)
bench-data:
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o build/bench/bench_data bench/bench_data.c $(LDLIBS)
	build/bench/bench_data $(or $(DATA_MB),32)

## make fuzz: every libFuzzer harness in tests/fuzz/ (JSON, data loader, tokenizer, model files) for FUZZ_SECONDS each (default 10)
fuzz:
	sh tests/fuzz/run_all.sh $(or $(FUZZ_SECONDS),10)

## make demo: the Valley of Code Reasoning in miniature, reduced (1 seed, 4 sizes; <= 5 min on 2 cores)
demo: distill
	./distill sweep --preset demo

## make valley: the full miniature (3 seeds, 30..10000 traces, easy/hard, correct/incorrect, controls; resumable)
## Two workers (array tasks 0 and 1 of 2, one core each; task 1 logs to build/valley-task1.log),
## then the merge writes the report. Rerun after a kill: finished runs are reused.
## VALLEY_ARGS adds options to both tasks, e.g. VALLEY_ARGS='--out build/v2'.
valley: distill
	@mkdir -p build
	./distill sweep --preset valley $(VALLEY_ARGS) --plan --num-tasks 2
	./distill sweep --preset valley $(VALLEY_ARGS) --num-tasks 2 --task-id 1 > build/valley-task1.log 2>&1 & pid=$$!; \
	./distill sweep --preset valley $(VALLEY_ARGS) --num-tasks 2 --task-id 0; s0=$$?; wait $$pid; s1=$$?; \
	if [ $$s0 != 0 ] || [ $$s1 != 0 ]; then echo "make valley: task 0 exited $$s0, task 1 exited $$s1 (log: build/valley-task1.log); rerun to resume" >&2; exit 1; fi
	./distill sweep --preset valley $(VALLEY_ARGS) --merge

## make mutants: mutation testing (tests/mutants.txt): each mutation of a scratch copy of distill.h
## must make one of its listed tests fail; prints the survivors (slow: ~30 min; not part of CI)
.PHONY: mutants
mutants:
	sh tests/mutants.sh

## make test-long: slow checks (sweep: 1 vs 2 threads identical, kill + resume identical)
test-long: distill $(BUILD)/tests/test_interop
	sh tests/test_sweep_long.sh
	DISTILL_TEST_LONG=1 $(BUILD)/tests/test_interop

## make fuzz-all: every libFuzzer harness in tests/fuzz/ for FUZZ_SECONDS each (default 60), one at a
## time, seeds from tests/fuzz/corpus/<name>/, findings in build/fuzz/art_<name>/ (never part of make test)
.PHONY: fuzz-all tsan matrix
fuzz-all:
	sh tests/fuzz/run_all.sh $(or $(FUZZ_SECONDS),60)

## make tsan: the thread pool (test_threads) and threaded SFT + KD steps (test_tsan_step) under
## ThreadSanitizer, checked bit-identical to 1 thread
TSAN_TESTS := build/tsan/tests/test_threads build/tsan/tests/test_tsan_step
tsan:
	$(MAKE) CC=clang BUILD=build/tsan OPT="-O1 -fsanitize=thread" LDLIBS="-lm -lpthread -fsanitize=thread" $(TSAN_TESTS)
	TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" sh tests/run.sh $(TSAN_TESTS)

## make matrix: the build matrix (gcc/clang C99/C11, g++/clang++, DISTILL_STATIC x2, DISTILL_NO_THREADS,
## scalar kernels, BLAS=1, -m32 and aarch64/qemu when installed), each -Werror, each running
## tests/matrix_check.c and comparing its numbers with the default build's
matrix:
	sh tests/compile_check.sh --run

clean:
	rm -rf build distill

help:
	@grep -E '^## ' Makefile | sed 's/^## //'

## make examples: build examples/sft.c and examples/kd.c into build/examples/
.PHONY: examples bench-kd
examples: $(BUILD)/examples/hello_train $(BUILD)/examples/sft $(BUILD)/examples/kd
$(BUILD)/examples/%: examples/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

## make bench-load-bf16: peak RSS and decode speed of a 124M model loaded with FP32 vs BF16 weights
.PHONY: bench-load-bf16
bench-load-bf16: $(BUILD)/bench_load_bf16
	$(BUILD)/bench_load_bf16 $(BUILD)/bench_load_model
$(BUILD)/bench_load_bf16: bench/bench_load_bf16.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

## make bench-kd: KD step cost vs teacher forward + student step, top-k cache path
bench-kd: $(BUILD)/bench_kd
	$(BUILD)/bench_kd
$(BUILD)/bench_kd: bench/bench_kd.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)
