/* core/ctl.h — the grammar of ctl files: one verb per write, blanks and a
 * trailing newline allowed around it. Pure: any thread. */
#ifndef ORCH_CTL_H
#define ORCH_CTL_H

#include <stddef.h>

/* The index in VERBS of the one verb BUF (LEN bytes, not NUL-terminated)
 * holds, or -EINVAL (unknown, empty, several words or lines, a NUL byte). */
int ctl_parse(const char *buf, size_t len, const char *const *verbs, size_t nverbs);
/* The same for a verb followed by an optional argument: "approve looks good".
 * *ARG and *ARGLEN: the rest after the verb's blanks, trimmed (length 0 when
 * none). The argument is one line (no newline inside, no NUL byte); -EINVAL
 * otherwise. */
int ctl_parse_arg(const char *buf, size_t len, const char *const *verbs, size_t nverbs,
		  const char **arg, size_t *arglen);

#endif
