/* core/trigger.c — see core/trigger.h. */
#include "core/trigger.h"

#include <fnmatch.h>
#include <string.h>

#define DATA_PREFIX "event_data."

/* The event's field KEY: top level, or "event_data.NAME". NULL: absent. */
static const json_t *field(const json_t *event, const char *key)
{
	size_t n = strlen(DATA_PREFIX);
	if (!strncmp(key, DATA_PREFIX, n) && key[n])
		return json_object_get(json_object_get(event, "event_data"), key + n);
	return json_object_get(event, key);
}

bool trigger_rule_matches(const json_t *rule, const json_t *event)
{
	const char *glob = json_string_value(json_object_get(rule, "event_type"));
	const char *type = json_string_value(json_object_get(event, "type"));
	if (!glob || !type || fnmatch(glob, type, 0) != 0)
		return false;
	const json_t *match = json_object_get(rule, "match");
	const char *key;
	json_t *want;
	if (!json_is_object(match))
		return true;
	json_object_foreach((json_t *)match, key, want) {
		const json_t *have = field(event, key);
		if (!have || !json_equal((json_t *)have, want))
			return false;
	}
	return true;
}

bool trigger_matches(const json_t *on, const json_t *event)
{
	size_t i;
	json_t *rule;
	json_array_foreach(on, i, rule)
		if (trigger_rule_matches(rule, event))
			return true;
	return false;
}
