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

int ctl_parse_arg(const char *buf, size_t len, const char *const *verbs, size_t nverbs,
		  const char **arg, size_t *arglen)
{
	while (len && blank(*buf))
		buf++, len--;
	while (len && blank(buf[len - 1]))
		len--;
	if (memchr(buf, '\0', len) || memchr(buf, '\n', len))
		return -EINVAL;
	size_t w = 0;
	while (w < len && !blank(buf[w]))
		w++;
	for (size_t i = 0; i < nverbs; i++) {
		if (w != strlen(verbs[i]) || memcmp(buf, verbs[i], w))
			continue;
		size_t a = w;
		while (a < len && blank(buf[a]))
			a++;
		*arg = buf + a;
		*arglen = len - a;
		return (int)i;
	}
	return -EINVAL;
}
