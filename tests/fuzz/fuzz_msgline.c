/* tests/fuzz/fuzz_msgline.c — lines appended to a sandbox's messages file:
 * msg_line_parse() and line assembly (LINES_MESSAGES) across write()s.
 * The harness is tests/fuzz/fuzz_lines.h; see there. */
#define LINE_KIND LINES_MESSAGES
#include "tests/fuzz/fuzz_lines.h"
