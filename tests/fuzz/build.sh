#!/bin/sh
# tests/fuzz/build.sh — build the libFuzzer harnesses into build/fuzz/.
#   tests/fuzz/build.sh [-f] [NAME...]   (from anywhere; NAME: plan msgline eventline ctl cron)
# Each is one clang line: the harness, core/util.c and the core module it
# fuzzes, with ASan + UBSan. A binary newer than all its inputs is kept
# unless -f. CC (clang) and FUZZ_CFLAGS (added last) may be set.
set -eu
cd "$(dirname "$0")/../.."

CC=${CC_FUZZ:-clang}
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I."
OUT=build/fuzz
FORCE=0
if [ "${1:-}" = -f ]; then FORCE=1; shift; fi
NAMES=${*:-plan msgline eventline ctl cron}

# the core module each harness needs beside core/util.c
module() {
	case $1 in
	plan) echo core/plan.c core/window.c core/cron.c ;;
	msgline|eventline) echo core/lines.c ;;
	ctl) echo core/ctl.c ;;
	cron) echo core/cron.c ;;
	*) echo "build.sh: unknown harness \"$1\"" >&2; exit 2 ;;
	esac
}

mkdir -p "$OUT"
for name in $NAMES; do
	src="core/util.c $(module "$name") tests/fuzz/fuzz_$name.c"
	bin=$OUT/fuzz_$name
	if [ $FORCE = 0 ] && [ -x "$bin" ]; then
		stale=0
		for f in $src core/*.h tests/fuzz/*.h; do
			[ "$f" -nt "$bin" ] && stale=1
		done
		[ $stale = 0 ] && continue
	fi
	echo "  FUZZ    $bin"
	# shellcheck disable=SC2086
	$CC $CFLAGS $src ${FUZZ_CFLAGS:-} -ljansson -lm -o "$bin"
done
