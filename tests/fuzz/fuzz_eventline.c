/* tests/fuzz/fuzz_eventline.c — lines appended to a sandbox's events file:
 * event_line_parse() and line assembly (LINES_EVENTS) across write()s.
 * The harness is tests/fuzz/fuzz_lines.h; see there. */
#define LINE_KIND LINES_EVENTS
#include "tests/fuzz/fuzz_lines.h"
