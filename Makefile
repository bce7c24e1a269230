# orchfs — one Makefile for the daemon, its core library, the tests and the demo.
#   make            build ./orchfs
#   make test       install missing packages, then unit + integration tests (plain and ASan+UBSan builds),
#                   and the quick form of the benchmark suite (it must run; nothing is timed)
#   make bench      the benchmark suite: orchfs beside its anchors, the table into BENCHMARKS.md
#   make demo       install missing packages, build, mount a scratch orchfs and run the example plans
#   make asan       build ./orchfs-asan (AddressSanitizer + UndefinedBehaviorSanitizer)
#   make check      the core library must not reference FUSE

PKGS     := fuse3 sqlite3 jansson libcurl libcrypto
CC       ?= cc
OPT      ?= -O2
CFLAGS   ?=
WARN     := -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow -Wno-unused-parameter
BASE     := -std=gnu11 -g $(OPT) $(WARN) -D_GNU_SOURCE -MMD -MP -I. $(shell pkg-config --cflags $(PKGS))
LIBS     := $(shell pkg-config --libs $(PKGS)) -lpthread -lm
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

CORE_SRC := $(sort $(wildcard core/*.c))
FS_SRC   := $(sort $(wildcard fs/*.c))
UNIT_SRC := $(sort $(wildcard tests/test_*.c))

# two build flavours, each in its own directory
B        := build/rel
A        := build/asan

core_objs = $(CORE_SRC:%.c=$(1)/%.o)
fs_objs   = $(FS_SRC:%.c=$(1)/%.o)

.PHONY: all asan test unit e2e check demo clean deps bench bench-quick valgrind fuzz fuzz-replay crash
all: orchfs

# V=1 shows the commands
Q := $(if $(V),,@)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC asan $<")
	$(Q)$(CC) $(BASE) -O1 $(SAN) $(CFLAGS) -c $< -o $@

$(B)/liborchcore.a: $(call core_objs,$(B))
	$(Q)rm -f $@; ar rcs $@ $^
$(A)/liborchcore.a: $(call core_objs,$(A))
	$(Q)rm -f $@; ar rcs $@ $^

orchfs: $(call fs_objs,$(B)) $(B)/liborchcore.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(BASE) $(CFLAGS) -o $@ $^ $(LIBS)
orchfs-asan: $(call fs_objs,$(A)) $(A)/liborchcore.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(BASE) -O1 $(SAN) $(CFLAGS) -o $@ $^ $(LIBS)
asan: orchfs-asan

# unit tests: one binary per tests/test_<module>.c, linked against the core library
$(B)/tests/%: tests/%.c $(B)/liborchcore.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(BASE) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LIBS) -lcmocka
$(A)/tests/%: tests/%.c $(A)/liborchcore.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(BASE) -O1 $(SAN) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LIBS) -lcmocka

UNIT_BIN_B := $(UNIT_SRC:tests/%.c=$(B)/tests/%)
UNIT_BIN_A := $(UNIT_SRC:tests/%.c=$(A)/tests/%)

deps:
	@scripts/install-deps.sh

# the core must build without FUSE: no fuse_ symbol may appear in it
check: $(B)/liborchcore.a
	@if nm $(B)/liborchcore.a | grep -w -E 'U (fuse_|_fuse)'; then \
		echo "check: core/ references FUSE" >&2; exit 1; fi
	@echo "check: core/ is FUSE-free"

unit: $(UNIT_BIN_B) $(UNIT_BIN_A)
	@set -e; for t in $(UNIT_BIN_B) $(UNIT_BIN_A); do echo "== $$t"; $$t; done

e2e: orchfs orchfs-asan
	tests/e2e/run ./orchfs-asan

# libFuzzer harnesses in tests/fuzz/ (clang + libclang-rt-14-dev); see tests/fuzz/README.md
FUZZ_SECONDS ?= 600
FUZZ_NAME    ?=
fuzz:
	tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_NAME)
fuzz-replay:
	@tests/fuzz/run.sh replay; rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "fuzz-replay: skipped (clang cannot link libFuzzer)"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# kill -9 at random moments, then check nothing acknowledged was lost
# (short form; tests/crash/run --long for 200 kills); and kill -9 while
# sandboxes come and go: no daemon outlives its kill, every restart recovers
# by itself (20 kills under ASan, the 100 of issue 12 with the release build)
crash: orchfs orchfs-asan
	tests/crash/run ./orchfs-asan
	tests/crash/run ./orchfs
	tests/crash/churn ./orchfs-asan
	tests/crash/churn --long ./orchfs

# one representative session under valgrind memcheck
valgrind: orchfs
	tests/valgrind/run ./orchfs

test:
	@scripts/install-deps.sh --bench
	$(MAKE) all orchfs-asan check
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) e2e
	$(MAKE) crash
	$(MAKE) valgrind
	$(MAKE) bench-quick

# benchmarks are never timed tests: this only checks that the quick form of
# the suite runs and prints a row for each benchmark
BENCH_NAMES := dag dispatch read append scale idle flood
bench-quick: all
	@mkdir -p build
	scripts/bench/run --quick >build/bench-quick.txt
	@cat build/bench-quick.txt
	@for n in $(BENCH_NAMES); do grep -q "^| $$n |" build/bench-quick.txt || \
		{ echo "bench-quick: no row for $$n" >&2; exit 1; }; done

demo:
	@scripts/install-deps.sh
	$(MAKE) all
	scripts/demo.sh

bench:
	@scripts/install-deps.sh --bench
	$(MAKE) all
	scripts/bench/run

clean:
	rm -rf build orchfs orchfs-asan

-include $(shell find build -name '*.d' 2>/dev/null)
