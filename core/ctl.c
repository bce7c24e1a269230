/* core/ctl.c — parsing what is written to a ctl file. */
#include "core/ctl.h"

#include <errno.h>
#include <string.h>

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int ctl_parse(const char *buf, size_t len, const char *const *verbs, size_t nverbs)
{
	while (len && blank(*buf))
		buf++, len--;
	while (len && blank(buf[len - 1]))
		len--;
	for (size_t i = 0; i < nverbs; i++)
		if (len == strlen(verbs[i]) && !memcmp(buf, verbs[i], len))
			return (int)i;
	return -EINVAL;
}
