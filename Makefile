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
ifeq ($(BLAS),1)
CFLAGS  += -DDISTILL_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread
LDLIBS  += -lopenblas
endif

HDR      := distill.h $(wildcard parts/*.h)
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
CLI_SRC  := examples/distill.c $(wildcard examples/cli/*.c)

.PHONY: all test asan fixtures bench demo valley clean help compile-check test-long test-blas test-aarch64
all: distill

distill: $(CLI_SRC) $(wildcard examples/cli/*.h) $(HDR)
	$(CC) $(CFLAGS) -o $@ $(CLI_SRC) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/harness.h $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

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
fixtures:
	@for g in tests/gen_*.py; do [ -f "$$g" ] && echo "== $$g" && /usr/bin/python3 $$g || exit 1; done
	@for g in tests/gen_*.js; do [ -f "$$g" ] && echo "== $$g" && node $$g || true; done

## make test-blas: the kernel tests built with BLAS=1 (OpenBLAS == own kernels, 1 == N threads)
test-blas:
	$(MAKE) BLAS=1 BUILD=build/blas build/blas/tests/test_kernels build/blas/tests/test_threads
	@sh tests/run.sh build/blas/tests/test_kernels build/blas/tests/test_threads

## make test-aarch64: the kernel tests cross-compiled for aarch64 (NEON) and run under qemu-user
test-aarch64:
	sh tests/cross_aarch64.sh

## make bench: FMA peak, matmul GFLOP/s (own vs OpenBLAS), training tokens/s (+ PyTorch); see bench/RESULTS.md
bench:
	sh bench/run.sh

## make demo: the Valley of Code Reasoning in miniature, reduced (1 seed, 4 sizes; <= 5 min on 2 cores)
demo: distill
	./distill sweep --preset demo

## make valley: the full miniature (3 seeds, 20..2000 traces, easy/hard, right/wrong; <= 60 min)
valley: distill
	./distill sweep --preset valley

## make test-long: slow checks (sweep: 1 vs 2 threads identical, kill + resume identical)
test-long: distill
	sh tests/test_sweep_long.sh

clean:
	rm -rf build distill

help:
	@grep -E '^## ' Makefile | sed 's/^## //'
