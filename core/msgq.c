/* core/msgq.c — a sandbox's message queue (SPEC §5 "messages and inbox").
 *
 * Messages are rows of the store, FIFO by id, queued until delivered. An
 * open inbox takes every queued message no other open inbox holds: a lease,
 * kept in memory only. Read to its end and closed, the lease's messages
 * become delivered; closed earlier (or after a crash, which forgets every
 * lease), they are queued again and the next inbox gets them, in order. */
#include "core/engine_i.h"

#include <errno.h>
#include <string.h>

static bool leased(const struct sandbox *sb, int64_t id)
{
	for (const struct lease *l = sb->leases; l; l = l->next)
		for (size_t i = 0; i < l->n; i++)
			if (l->msgs[i] == id)
				return true;
	return false;
}

/* One message as the JSON line readers get. Only "state" ever changes, from
 * "queued" to "delivered": a line grows by DELIVERED_GROWTH bytes then, so
 * the view's size is known without rendering it. */
#define DELIVERED_GROWTH ((int64_t)sizeof("delivered") - (int64_t)sizeof("queued"))

static int render_line(int64_t id, int64_t ts_ms, const char *type, const char *content,
		       const char *state, struct sbuf *out)
{
	char ts[ISO8601_LEN];
	fmt_iso8601(ts_ms, ts);
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)id, "ts", ts, "message_type",
			      type, "content", content, "state", state);
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!line)
		return -ENOMEM;
	sbuf_adds(out, line);
	sbuf_addc(out, '\n');
	free(line);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

static int render_msg(sqlite3_stmt *q, struct sbuf *out)
{
	return render_line(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
			   (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3),
			   (const char *)sqlite3_column_text(q, 4), out);
}

int64_t msgq_bytes_load(struct orch_engine *e, int64_t sbid)
{
	return store_int(&e->st,
			 "SELECT coalesce(sum(len), 0) + ? * coalesce(sum(state = 'delivered'), 0)"
			 " FROM messages WHERE sandbox = ?",
			 0, "ii", DELIVERED_GROWTH, sbid);
}

int orch_messages_append(struct orch_engine *e, int64_t sbid, const struct line_batch *b)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb)
		return -ENOENT;
	if (!b->n)
		return 0;
	int rc = eng_room(e);
	if (!rc)
		rc = store_savepoint(&e->st, "msg_append");
	if (rc)
		return rc;
	int64_t now = clock_wall_ms();
	int64_t *ids = orch_calloc(b->n, sizeof(*ids));
	if (!ids)
		rc = -ENOMEM;
	int64_t bytes = 0;
	struct sbuf line = SBUF_INIT;
	for (size_t i = 0; !rc && i < b->n; i++) {
		rc = store_exec(&e->st, "INSERT INTO messages(sandbox, ts, type, content) VALUES(?, ?, ?, ?)",
				"iiss", sbid, now, msg_type_name(b->msgs[i].type), b->msgs[i].content);
		ids[i] = sqlite3_last_insert_rowid(e->st.db);
		sbuf_reset(&line);
		if (!rc)
			rc = render_line(ids[i], now, msg_type_name(b->msgs[i].type), b->msgs[i].content,
					 "queued", &line);
		if (!rc)
			rc = store_exec(&e->st, "UPDATE messages SET len = ? WHERE id = ?", "ii",
					(int64_t)line.len, ids[i]);
		bytes += (int64_t)line.len;
	}
	sbuf_release(&line);
	store_release(&e->st, "msg_append", rc == 0);
	if (rc) {
		orch_free(ids);
		return rc;
	}
	sb->msg_queued += (int64_t)b->n;
	e->msg_queued += (int64_t)b->n;
	sb->msg_bytes += bytes;
	for (size_t i = 0; i < b->n; i++)
		ev_emit(e, "message.queued", sb->holder, NULL, sb,
			json_pack("{s:I, s:s}", "message_id", (json_int_t)ids[i], "message_type",
				  msg_type_name(b->msgs[i].type)));
	orch_free(ids);
	orch_need_durable(e);
	return 0;
}

#define MSG_COLS "id, ts, type, content, state"

int orch_messages_render(struct orch_engine *e, int64_t sbid, struct sbuf *out)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT " MSG_COLS " FROM messages WHERE sandbox = ? ORDER BY id",
				      &rc, "i", sbid);
	if (!q)
		return rc;
	do
		rc = render_msg(q, out);
	while (!rc && store_next(q));
	store_done(q);
	return rc;
}

int orch_inbox_take(struct orch_engine *e, int64_t sbid, uint64_t *lease, struct sbuf *out)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	*lease = 0;
	if (!sb)
		return -ENOENT;
	struct lease *l = orch_calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	size_t cap = 0;
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT " MSG_COLS " FROM messages WHERE sandbox = ? AND state = 'queued'"
				      " ORDER BY id",
				      &rc, "i", sbid);
	for (; q && !rc; q = store_next(q) ? q : (store_done(q), NULL)) {
		int64_t id = sqlite3_column_int64(q, 0);
		if (leased(sb, id))
			continue;	/* another open inbox holds it */
		if (l->n == cap) {
			cap = cap ? cap * 2 : 16;
			int64_t *m = orch_reallocarray(l->msgs, cap, sizeof(*m));
			if (!m) {
				rc = -ENOMEM;
				break;
			}
			l->msgs = m;
		}
		l->msgs[l->n++] = id;
		rc = render_msg(q, out);
	}
	store_done(q);
	if (rc || !l->n) {
		orch_free(l->msgs);
		orch_free(l);
		return rc;
	}
	l->id = ++e->next_lease;
	l->next = sb->leases;
	sb->leases = l;
	*lease = l->id;
	return 0;
}

int orch_inbox_done(struct orch_engine *e, int64_t sbid, uint64_t lease, bool deliver)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb || !lease)
		return 0;
	struct lease *l = NULL;
	for (struct lease **pp = &sb->leases; *pp; pp = &(*pp)->next)
		if ((*pp)->id == lease) {
			l = *pp;
			*pp = l->next;
			break;
		}
	if (!l)
		return 0;
	int rc = deliver ? eng_room(e) : 0;	/* no room: they stay queued */
	if (deliver && !rc) {
		int64_t now = clock_wall_ms();
		rc = store_savepoint(&e->st, "deliver");
		for (size_t i = 0; !rc && i < l->n; i++)
			rc = store_exec(&e->st,
					"UPDATE messages SET state = 'delivered', delivered_at = ?"
					" WHERE id = ? AND state = 'queued'",
					"ii", now, l->msgs[i]);
		store_release(&e->st, "deliver", rc == 0);
		if (!rc) {
			sb->msg_queued -= (int64_t)l->n;
			e->msg_queued -= (int64_t)l->n;
			sb->msg_delivered += (int64_t)l->n;
			sb->msg_bytes += (int64_t)l->n * DELIVERED_GROWTH;
			for (size_t i = 0; i < l->n; i++)
				ev_emit(e, "message.delivered", sb->holder, NULL, sb,
					json_pack("{s:I}", "message_id", (json_int_t)l->msgs[i]));
			orch_need_durable(e);
		}
	}
	orch_free(l->msgs);
	orch_free(l);
	return rc;
}

void msgq_forget(struct sandbox *sb)
{
	while (sb->leases) {
		struct lease *l = sb->leases;
		sb->leases = l->next;
		orch_free(l->msgs);
		orch_free(l);
	}
}

int64_t orch_messages_size(struct orch_engine *e, int64_t sbid)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	return sb ? sb->msg_bytes : 0;
}
