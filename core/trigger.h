/* core/trigger.h — the matching rules of triggers (SPEC §9): which recorded
 * events a plan's "on" list asks for. Pure (no I/O, no engine state): any
 * thread. core/plan.c validates "on"; this module only reads a valid one. */
#ifndef ORCH_TRIGGER_H
#define ORCH_TRIGGER_H

#include <jansson.h>
#include <stdbool.h>

#define TRIGGER_MAX_RULES 64	/* entries of "on" */
#define TRIGGER_MAX_MATCH 64	/* fields of one rule's "match" */

/* Does EVENT (an event as its JSON line has it: "type", "run_id",
 * "event_data"...) match RULE ({"event_type": GLOB, "match": {...}})?
 * "event_type" is an fnmatch(3) pattern against the event's "type";
 * each "match" key is a top-level field of the event, or "event_data.NAME"
 * for the field NAME (taken whole, dots and all) of its "event_data";
 * its value must equal the event's by json_equal(): same type and value
 * (1 and "1" differ, and so do 1 and 1.0). A field the event lacks never
 * matches. */
bool trigger_rule_matches(const json_t *rule, const json_t *event);

/* Does any rule of ON (a plan's valid "on" array) match EVENT? */
bool trigger_matches(const json_t *on, const json_t *event);

#endif
