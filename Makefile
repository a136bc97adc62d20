# distill.h - build, test, bench, demo.   make help
CC      ?= cc
CXX     ?= c++
OPT     ?= -O2
# Portable default: x86-64-v3 (AVX2+FMA) on x86-64, the compiler's default elsewhere.
# Use ARCH=-march=native for your own machine only, ARCH= for a generic build.
ARCH    ?= $(shell $(CC) -dumpmachine 2>/dev/null | grep -q x86_64 && echo -march=x86-64-v3)
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

.PHONY: all test asan fixtures bench demo clean help compile-check test-long
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

clean:
	rm -rf build distill

help:
	@grep -E '^## ' Makefile | sed 's/^## //'
