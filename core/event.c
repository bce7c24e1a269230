/* core/event.c — the event log (SPEC §6).
 *
 * Every event is rendered once, as the JSON line every view shows, and stored
 * with its byte offset in each view it belongs to: the global MOUNT/events,
 * its run's and its sandbox's. A view is then a byte range query: any offset
 * reads the same bytes forever (views only grow), so `tail -f` and readers
 * at odd offsets never see a torn or shifted line. */
#include "core/engine_i.h"

#include <errno.h>
#include <string.h>

/* The views' sizes as the store has them. */
static int64_t view_bytes_run(struct orch_engine *e, int64_t run)
{
	return store_int(&e->st,
			 "SELECT r_off + length(CAST(line AS BLOB)) + 1 FROM events"
			 " WHERE run = ? ORDER BY r_off DESC LIMIT 1",
			 0, "i", run);
}

static int64_t view_bytes_sb(struct orch_engine *e, int64_t sb)
{
	return store_int(&e->st,
			 "SELECT s_off + length(CAST(line AS BLOB)) + 1 FROM events"
			 " WHERE sandbox = ? ORDER BY s_off DESC LIMIT 1",
			 0, "i", sb);
}

int64_t ev_run_bytes(struct orch_engine *e, struct run *r)
{
	if (r->ev_epoch != e->st.rollbacks) {
		r->ev_bytes = view_bytes_run(e, r->rowid);
		r->ev_epoch = e->st.rollbacks;
	}
	return r->ev_bytes;
}

int64_t ev_sb_bytes(struct orch_engine *e, struct sandbox *sb)
{
	if (sb->ev_epoch != e->st.rollbacks) {
		sb->ev_bytes = view_bytes_sb(e, sb->rowid);
		sb->ev_epoch = e->st.rollbacks;
	}
	return sb->ev_bytes;
}

int ev_open(struct orch_engine *e)
{
	struct store *st = &e->st;
	/* seq grows with g_off, the key: the last row has the highest */
	int64_t seq = store_int(st, "SELECT seq FROM events ORDER BY g_off DESC LIMIT 1", 0, NULL);
	int64_t aseq = store_int(st, "SELECT seq FROM sqlite_sequence WHERE name = 'events'", 0, NULL);
	/* never lower: a seq someone may have read must not come back */
	if ((seq > aseq ? seq : aseq) + 1 > e->next_seq)
		e->next_seq = (seq > aseq ? seq : aseq) + 1;
	e->ev_epoch = st->rollbacks;
	e->g_bytes = store_int(st,
			       "SELECT g_off + length(CAST(line AS BLOB)) + 1 FROM events"
			       " ORDER BY g_off DESC LIMIT 1",
			       0, NULL);
	e->events_total = store_int(st, "SELECT count(*) FROM events", 0, NULL);
	return 0;
}

int ev_emit(struct orch_engine *e, const char *type, struct run *r, struct step *s,
	    struct sandbox *sb, json_t *extra)
{
	if (!sb && r)
		sb = r->sb;
	if (e->ev_epoch != e->st.rollbacks)
		ev_open(e);	/* something was undone: the global view too */
	int64_t r_off = r ? ev_run_bytes(e, r) : 0, s_off = sb ? ev_sb_bytes(e, sb) : 0;
	int64_t now = clock_wall_ms();
	char ts[ISO8601_LEN];
	fmt_iso8601(now, ts);
	json_t *o = json_object();
	int rc = -ENOMEM;
	if (!o)
		goto out;
	int bad = json_object_set_new(o, "seq", json_integer(e->next_seq));
	bad |= json_object_set_new(o, "ts", json_string(ts));
	bad |= json_object_set_new(o, "type", json_string(type));
	if (r)
		bad |= json_object_set_new(o, "run_id", json_string(r->name));
	if (s)
		bad |= json_object_set_new(o, "step_id", json_string(r->plan->steps[s->idx].id));
	if (sb)
		bad |= json_object_set_new(o, "sandbox", json_string(sb->name));
	/* who caused it: the engine's word, never one of EXTRA's fields
	 * (a posted event has none anyway: core/lines.c takes event_type,
	 * event_data and source only) */
	if (e->actor.set)
		bad |= json_object_set_new(o, "by", json_string(ident_user(&e->ident, e->actor.uid)));
	if (extra) {
		bad |= json_object_update(o, extra);
		if (e->actor.set && json_object_get(extra, "by"))
			bad |= json_object_set_new(o, "by", json_string(ident_user(&e->ident, e->actor.uid)));
	}
	if (bad)
		goto out;
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!line)
		goto out;
	int64_t len = (int64_t)strlen(line) + 1;
	rc = store_exec(&e->st,
			"INSERT INTO events(seq, ts, type, run, sandbox, line, g_off, r_off, s_off)"
			" VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
			"iisIIsiii", e->next_seq, now, type, r ? r->rowid : (int64_t)0,
			sb ? sb->rowid : (int64_t)0, line, e->g_bytes, r_off, s_off);
	free(line);
	if (rc)
		goto out;
	if (e->hooks)
		webhook_event(e, type, e->next_seq, e->g_bytes);
	e->next_seq++;
	e->g_bytes += len;
	e->events_total++;
	if (r)
		r->ev_bytes += len;
	if (sb)
		sb->ev_bytes += len;
	eng_changed(e, OCH_EVENT, r ? r->rowid : 0, sb ? sb->rowid : 0);
out:
	json_decref(o);
	json_decref(extra);
	if (rc)
		eng_log(e, "cannot record event %s: %s", type, strerror(-rc));
	return rc;
}

int64_t orch_events_size(struct orch_engine *e, enum orch_ev_scope scope, int64_t id)
{
	switch (scope) {
	case EV_GLOBAL:
		if (e->ev_epoch != e->st.rollbacks)
			ev_open(e);
		return e->g_bytes;
	case EV_RUN: {
		struct run *r = run_find_loaded(e, id);
		return r ? ev_run_bytes(e, r) : view_bytes_run(e, id);
	}
	case EV_SANDBOX: {
		struct sandbox *sb = sb_get_rowid(e, id);
		return sb ? ev_sb_bytes(e, sb) : 0;
	}
	case EV_MESSAGES:
		return orch_messages_size(e, id);
	}
	return 0;
}

int orch_events_read(struct orch_engine *e, enum orch_ev_scope scope, int64_t id, int64_t off,
		     size_t size, struct sbuf *out)
{
	static const char *const q[] = {
		[EV_GLOBAL] = "SELECT g_off, line FROM events WHERE g_off >= coalesce("
			      "(SELECT max(g_off) FROM events WHERE g_off <= ?2), 0)"
			      " ORDER BY g_off",
		[EV_RUN] = "SELECT r_off, line FROM events WHERE run = ?1 AND r_off >= coalesce("
			   "(SELECT max(r_off) FROM events WHERE run = ?1 AND r_off <= ?2), 0)"
			   " ORDER BY r_off",
		[EV_SANDBOX] = "SELECT s_off, line FROM events WHERE sandbox = ?1 AND s_off >= coalesce("
			       "(SELECT max(s_off) FROM events WHERE sandbox = ?1 AND s_off <= ?2), 0)"
			       " ORDER BY s_off",
	};
	if (scope == EV_MESSAGES)
		return orch_messages_read(e, id, off, size, out);
	int rc;
	sqlite3_stmt *st = store_query(&e->st, q[scope], &rc, "ii", id, off);
	if (!st)
		return rc;
	do {
		int64_t at = sqlite3_column_int64(st, 0);
		const char *line = (const char *)sqlite3_column_blob(st, 1);
		int64_t n = sqlite3_column_bytes(st, 1);
		/* the part of "line\n" at or after off, as much as fits */
		int64_t from = off > at ? off - at : 0;
		if (from > n)
			continue;
		int64_t take = n + 1 - from;
		if ((size_t)take > size - out->len)
			take = (int64_t)(size - out->len);
		int64_t body = from + take <= n ? take : n - from;
		sbuf_add(out, line + from, (size_t)body);
		if (body < take)
			sbuf_addc(out, '\n');
	} while (out->len < size && store_next(st));
	store_done(st);
	return sbuf_failed(out) ? -ENOMEM : 0;
}
