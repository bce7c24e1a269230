# orchfs — one Makefile for the daemon, its core library, the tests and the demo.
#   make            build ./orchfs
#   make test       install missing packages, then unit + integration tests (plain and ASan+UBSan builds),
#                   and the quick form of the benchmark suite (it must run; nothing is timed)
#   make bench      the benchmark suite: orchfs beside its anchors, the table into BENCHMARKS.md
#   make demo       install missing packages, build, mount a scratch orchfs and run the example plans
#   make asan       build ./orchfs-asan (AddressSanitizer + UndefinedBehaviorSanitizer)
#   make check      the core library must not reference FUSE
#   make install    install orchfs, its man pages and examples under $(DESTDIR)$(PREFIX) (default /usr/local);
#                   make uninstall removes exactly those files

PKGS     := fuse3 sqlite3 jansson libcurl libcrypto
CC       ?= cc
OPT      ?= -O2
CFLAGS   ?=
WARN     := -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow -Wno-unused-parameter
# pkg-config is asked the first time a recipe needs its flags, never while make
# reads this file: on a fresh machine `make demo` and `make test` install the
# packages (scripts/install-deps.sh) before anything compiles, and nothing
# complains about them before. A build without them stops at `pkgs`, which
# lets pkg-config say what is missing.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)
BASE     = -std=gnu11 -g $(OPT) $(WARN) -D_GNU_SOURCE -MMD -MP -I. $(PKG_CFLAGS) $(VERSION_DEF)
LIBS     = $(PKG_LIBS) -lpthread -lm
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

CORE_SRC := $(sort $(wildcard core/*.c))
FS_SRC   := $(sort $(wildcard fs/*.c))
UNIT_SRC := $(sort $(wildcard tests/test_*.c))

# The version (core/version.h): `git describe` in a git checkout, or
# `make VERSION=...`; else the version of the last build (`sudo make install`
# after `make`: git refuses a repository another user owns), else (a
# tarball) core/version.h's fallback. The files that include core/version.h
# are compiled again when it changes.
ifeq ($(origin VERSION),undefined)
VERSION := $(or $(if $(wildcard .git),$(shell git describe --always --dirty 2>/dev/null)),$(shell cat build/version 2>/dev/null))
endif
VERSION_DEF   = $(if $(VERSION),-DORCHFS_VERSION='"$(VERSION)"')
VERSION_USERS := $(shell grep -l '"core/version\.h"' $(CORE_SRC) $(FS_SRC) 2>/dev/null)

# two build flavours, each in its own directory
B        := build/rel
A        := build/asan

core_objs = $(CORE_SRC:%.c=$(1)/%.o)
fs_objs   = $(FS_SRC:%.c=$(1)/%.o)

.PHONY: all asan test unit e2e check demo clean deps bench bench-quick valgrind fuzz fuzz-replay crash \
	install uninstall pkgs FORCE
all: orchfs

# V=1 shows the commands
Q := $(if $(V),,@)

# the packages must be there before anything compiles
pkgs:
	@pkg-config --exists $(PKGS) || { pkg-config --print-errors --exists $(PKGS); \
		echo "orchfs needs the packages of $(PKGS): run make deps (scripts/install-deps.sh)" >&2; exit 1; }

FORCE:
build/version: FORCE
	@mkdir -p build; [ "$$(cat $@ 2>/dev/null)" = '$(VERSION)' ] || echo '$(VERSION)' >$@
$(VERSION_USERS:%.c=$(B)/%.o) $(VERSION_USERS:%.c=$(A)/%.o): build/version

$(B)/%.o: %.c | pkgs
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(A)/%.o: %.c | pkgs
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

# make install [PREFIX=/usr/local] [DESTDIR=]: the daemon, its man pages, and
# (the Debian place for them) the README and examples, the systemd units among
# them (installed, not enabled; their ExecStart names $(PREFIX)/bin/orchfs).
# make uninstall with the same PREFIX and DESTDIR removes those files, and the
# directories of orchfs's own that are left empty.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
MANDIR  := $(PREFIX)/share/man
DOCDIR  := $(PREFIX)/share/doc/orchfs
MANPAGES := man/orchfs.1 man/orchfs-plan.5
examples_list = find examples -type f ! -name '*~' ! -name '.*' | LC_ALL=C sort

install: orchfs
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(MANDIR)/man5' '$(DESTDIR)$(DOCDIR)'
	install -m 0755 orchfs '$(DESTDIR)$(BINDIR)/orchfs'
	install -m 0644 man/orchfs.1 '$(DESTDIR)$(MANDIR)/man1/orchfs.1'
	install -m 0644 man/orchfs-plan.5 '$(DESTDIR)$(MANDIR)/man5/orchfs-plan.5'
	install -m 0644 README.md '$(DESTDIR)$(DOCDIR)/README.md'
	@set -e; $(examples_list) | while read -r f; do \
		d='$(DESTDIR)$(DOCDIR)/'$$f; mode=0644; [ -x "$$f" ] && mode=0755; \
		echo "install -m $$mode $$f $$d"; install -d "$${d%/*}"; \
		case $$f in \
		*.service) sed 's|/usr/local/bin/orchfs|$(BINDIR)/orchfs|g' "$$f" >"$$d.tmp"; \
			chmod $$mode "$$d.tmp"; mv -f "$$d.tmp" "$$d" ;; \
		*) install -m $$mode "$$f" "$$d" ;; \
		esac; \
	done

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/orchfs' '$(DESTDIR)$(MANDIR)/man1/orchfs.1' \
		'$(DESTDIR)$(MANDIR)/man5/orchfs-plan.5' '$(DESTDIR)$(DOCDIR)/README.md'
	@set -e; $(examples_list) | while read -r f; do \
		echo "rm -f $(DESTDIR)$(DOCDIR)/$$f"; rm -f '$(DESTDIR)$(DOCDIR)/'"$$f"; done
	@if [ -d '$(DESTDIR)$(DOCDIR)' ]; then \
		find '$(DESTDIR)$(DOCDIR)' -depth -type d -empty -exec rmdir {} \;; fi

-include $(shell find build -name '*.d' 2>/dev/null)
