/* tests/fuzz/fuzz_ctl.c — ctl_parse() against the verbs of a run's ctl and of
 * a sandbox's ctl (copied from core/run.c and core/sandbox.c: keep in step).
 *
 * The result is -EINVAL or an index whose verb equals the input with blanks
 * (space, tab, CR, LF) trimmed from both ends, and every input that is such
 * a verb after trimming gets that index. The trimming is done again here, on
 * its own, so the harness does not just repeat the parser. */
#include <errno.h>

#include "core/ctl.h"
#include "tests/fuzz/fuzz.h"

static const char *const run_verbs[] = { "cancel", "pause", "resume", "retry" };
static const char *const sandbox_verbs[] = { "stop", "restart", "reset", "delete" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void check_verbs(const char *buf, size_t len, const char *const *verbs, size_t nverbs)
{
	size_t b = 0, e = len;
	int want = -EINVAL;

	while (b < e && is_blank(buf[b]))
		b++;
	while (e > b && is_blank(buf[e - 1]))
		e--;
	for (size_t i = 0; i < nverbs; i++)
		if (strlen(verbs[i]) == e - b && !memcmp(verbs[i], buf + b, e - b))
			want = (int)i;

	int r = ctl_parse(buf, len, verbs, nverbs);

	CHECK("ctl-range", r == -EINVAL || (r >= 0 && (size_t)r < nverbs));
	CHECK("ctl-verb", r == want);
	if (r >= 0) {
		/* one word, no NUL: what the header promises for an accepted write */
		CHECK("ctl-one-word", !memchr(buf, '\0', len));
		for (size_t i = b; i < e; i++)
			CHECK("ctl-one-word", !is_blank(buf[i]));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* libFuzzer hands over an exact-size heap copy: ASan sees any read past it */
	const char *buf = (const char *)data;

	check_verbs(buf, size, run_verbs, ARRAY_SIZE(run_verbs));
	check_verbs(buf, size, sandbox_verbs, ARRAY_SIZE(sandbox_verbs));
	return 0;
}
