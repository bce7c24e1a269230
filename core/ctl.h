/* core/ctl.h — the grammar of ctl files: one verb per write, blanks and a
 * trailing newline allowed around it. Pure: any thread. */
#ifndef ORCH_CTL_H
#define ORCH_CTL_H

#include <stddef.h>

/* The index in VERBS of the one verb BUF (LEN bytes, not NUL-terminated)
 * holds, or -EINVAL (unknown, empty, several words or lines, a NUL byte). */
int ctl_parse(const char *buf, size_t len, const char *const *verbs, size_t nverbs);

#endif
