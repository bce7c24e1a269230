/* tests/fuzz/fuzz.h — what every libFuzzer harness of orchfs shares: the
 * CHECK() of an invariant, and the list of known bugs a fuzzing session may
 * step over. Included by tests/fuzz/fuzz_*.c only (one harness per binary).
 *
 * An invariant that fails prints its tag, the condition and where, then
 * __builtin_trap(): libFuzzer saves the input as a crash. Every check has a
 * tag so that a bug already reported can be stepped over while fuzzing goes
 * on looking for others: ORCHFS_FUZZ_IGNORE="tag1,tag2" (run.sh fuzz sets it
 * from tests/fuzz/known-bugs). Replay ignores nothing, so a regression input
 * fails until its bug is fixed. */
#ifndef ORCH_FUZZ_H
#define ORCH_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_ignore;	/* ORCHFS_FUZZ_IGNORE, read once */

static inline void fuzz_setup(void)
{
	orch_alloc_setup_jansson();
	fuzz_ignore = getenv("ORCHFS_FUZZ_IGNORE");
}

/* Is TAG in the comma-separated ORCHFS_FUZZ_IGNORE? */
static inline bool fuzz_ignored(const char *tag)
{
	size_t n = strlen(tag);

	for (const char *p = fuzz_ignore; p && *p;) {
		size_t k = strcspn(p, ", ");
		if (k == n && !memcmp(p, tag, n))
			return true;
		p += k;
		p += strspn(p, ", ");
	}
	return false;
}

static void __attribute__((noinline)) fuzz_fail(const char *tag, const char *cond,
						const char *file, int line)
{
	fprintf(stderr, "fuzz check [%s] failed: %s (%s:%d)\n", tag, cond, file, line);
	__builtin_trap();
}

/* The invariant COND, named TAG. Evaluates to COND, so a caller can skip
 * what depends on it when the tag is ignored. */
#define CHECK(tag, cond)                                                                  \
	({                                                                                \
		bool ok_ = (cond);                                                        \
		if (!ok_ && !fuzz_ignored(tag))                                           \
			fuzz_fail(tag, #cond, __FILE__, __LINE__);                        \
		ok_;                                                                      \
	})

/* Print context for the next CHECK (kept out of the way when all is well). */
#define NOTE(...) fprintf(stderr, "fuzz note: " __VA_ARGS__)

/* Strict UTF-8 without NUL, written apart from core/ so the two can be
 * compared: decode each sequence, then refuse overlongs, surrogates and
 * anything above U+10FFFF. */
static inline bool fuzz_utf8(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;

	for (size_t i = 0; i < len;) {
		unsigned c = s[i], cp, n;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0)
			n = 1, cp = c & 0x1F;
		else if ((c & 0xF0) == 0xE0)
			n = 2, cp = c & 0x0F;
		else if ((c & 0xF8) == 0xF0)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (len - i <= n)
			return false;
		for (unsigned k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

/* A reason or problem list meant for people: no control character but the
 * '\n' ending each line (when LINES); see fuzz_utf8() for the encoding. */
static inline bool text_clean(const char *s, size_t len, bool lines)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' && lines)
			continue;
		if (c < 0x20 || c == 0x7f)
			return false;
		/* C1 controls, U+0080..U+009F */
		if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9F)
			return false;
	}
	return true;
}

#endif
