/* core/msgq.c — a sandbox's message queue (SPEC §5 "messages and inbox").
 *
 * Messages are rows of the store, FIFO by id, queued until delivered. An
 * open inbox takes the oldest queued messages no other open inbox holds, at
 * most INBOX_BATCH_MSGS of them and INBOX_BATCH_BYTES: a lease, kept in
 * memory only. Read to its end and closed, the lease's messages become
 * delivered; closed earlier (or after a crash, which forgets every lease),
 * they are queued again and the next inbox gets them, in order.
 *
 * Which queued messages no lease holds is known without looking at the
 * leases: a lease takes the oldest free messages, so every queued message
 * from sb->inbox_next on is free, and below it only those handed back (kept
 * in a min-heap, sb->back). An open costs a bounded query and a batch,
 * whatever the queue holds and however many inboxes are open. */
#include "core/engine_i.h"

#include <errno.h>
#include <string.h>

/* ---- leases by id ---- */

static int lease_put(struct lease_tab *t, struct lease *l)
{
	uint32_t slot;
	if (t->nfree) {
		slot = t->free[--t->nfree];
	} else {
		if (t->n == t->cap) {
			uint32_t cap = t->cap ? t->cap * 2 : 64;
			struct lease **v = orch_reallocarray(t->v, cap, sizeof(*v));
			uint32_t *fr = v ? orch_reallocarray(t->free, cap, sizeof(*fr)) : NULL;
			if (v)
				t->v = v;
			if (!fr)
				return -ENOMEM;
			t->free = fr;
			t->cap = cap;
		}
		slot = t->n++;
	}
	t->v[slot] = l;
	l->tab = t;
	l->id = (uint64_t)++t->gen << 32 | slot;
	if (!(l->id >> 32))
		l->id = (uint64_t)++t->gen << 32 | slot;	/* never 0: "no lease" */
	return 0;
}

static struct lease *lease_get(const struct lease_tab *t, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	return slot < t->n && t->v[slot] && t->v[slot]->id == id ? t->v[slot] : NULL;
}

/* L leaves its slot and its sandbox's list, and is freed. */
static void lease_free(struct sandbox *sb, struct lease *l)
{
	struct lease_tab *t = l->tab;
	uint32_t slot = (uint32_t)l->id;
	t->v[slot] = NULL;
	t->free[t->nfree++] = slot;	/* room: free has as many as v */
	if (l->prev)
		l->prev->next = l->next;
	else
		sb->leases = l->next;
	if (l->next)
		l->next->prev = l->prev;
	orch_free(l->msgs);
	orch_free(l);
}

void msgq_tab_release(struct lease_tab *t)
{
	orch_free(t->v);
	orch_free(t->free);
	memset(t, 0, sizeof(*t));
}

/* ---- the heap of handed-back ids ---- */

static int back_push(struct sandbox *sb, int64_t id)
{
	if (sb->nback == sb->capback) {
		size_t cap = sb->capback ? sb->capback * 2 : 64;
		int64_t *b = orch_reallocarray(sb->back, cap, sizeof(*b));
		if (!b)
			return -ENOMEM;
		sb->back = b;
		sb->capback = cap;
	}
	size_t i = sb->nback++;
	while (i && sb->back[(i - 1) / 2] > id) {
		sb->back[i] = sb->back[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	sb->back[i] = id;
	return 0;
}

static void back_pop(struct sandbox *sb)
{
	int64_t last = sb->back[--sb->nback];
	size_t i = 0, n = sb->nback;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && sb->back[c + 1] < sb->back[c])
			c++;
		if (sb->back[c] >= last)
			break;
		sb->back[i] = sb->back[c];
		i = c;
	}
	if (n)
		sb->back[i] = last;
}

/* A lease's messages are free again. */
static void hand_back(struct sandbox *sb, const struct lease *l)
{
	for (size_t i = 0; i < l->n && !sb->back_lost; i++)
		if (back_push(sb, l->msgs[i]))
			sb->back_lost = true;	/* the next take makes the heap again */
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Make the heap again from the store: every queued message below
 * inbox_next that no lease holds. Costs a pass over the queue: only after
 * a hand-back ran out of memory, or a failed commit (msgq_resync). */
static int rebuild(struct orch_engine *e, struct sandbox *sb)
{
	size_t n = 0;
	for (const struct lease *l = sb->leases; l; l = l->next)
		n += l->n;
	int64_t *held = orch_calloc(n ? n : 1, sizeof(*held));
	if (!held)
		return -ENOMEM;
	n = 0;
	for (const struct lease *l = sb->leases; l; l = l->next)
		for (size_t i = 0; i < l->n; i++)
			held[n++] = l->msgs[i];
	qsort(held, n, sizeof(*held), cmp_id);
	sb->nback = 0;
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT id FROM messages WHERE sandbox = ? AND state = 'queued' AND id < ?"
				      " ORDER BY id",
				      &rc, "ii", sb->rowid, sb->inbox_next);
	for (; q && !rc; q = store_next(q) ? q : (store_done(q), NULL)) {
		int64_t id = sqlite3_column_int64(q, 0);
		if (!bsearch(&id, held, n, sizeof(*held), cmp_id))
			rc = back_push(sb, id);
	}
	store_done(q);
	orch_free(held);
	sb->back_lost = rc != 0;
	return rc;
}

void msgq_resync(struct orch_engine *e, struct sandbox *sb)
{
	if (sb->inbox_next || sb->nback)
		sb->back_lost = true;
	(void)e;
}

/* One message as the JSON line readers get. Only "state" ever changes, from
 * "queued" to "delivered": in the messages view (VIEW) a queued line ends in
 * DELIVERED_GROWTH spaces after its object, so that a line keeps its length
 * and its place (messages.off) for good, and a read at any offset renders
 * only the lines it covers. The inbox's lines are not padded. */
#define DELIVERED_GROWTH ((int64_t)sizeof("delivered") - (int64_t)sizeof("queued"))

static int render_line(int64_t id, int64_t ts_ms, const char *type, const char *content,
		       const char *state, bool view, struct sbuf *out)
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
	if (view && !strcmp(state, "queued"))
		sbuf_add(out, "   ", DELIVERED_GROWTH);
	sbuf_addc(out, '\n');
	free(line);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

/* The row of Q (columns id, ts, type, content, state first) as a line. */
static int render_msg(sqlite3_stmt *q, bool view, struct sbuf *out)
{
	return render_line(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
			   (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3),
			   (const char *)sqlite3_column_text(q, 4), view, out);
}

int64_t msgq_bytes_load(struct orch_engine *e, int64_t sbid)
{
	/* where the last line ends: lines never move */
	return store_int(&e->st, "SELECT off + len FROM messages WHERE sandbox = ? ORDER BY off DESC LIMIT 1",
			 0, "i", sbid);
}

/* Queue B's messages in SB; a user's (USER) within the owner's limits. */
static int append(struct orch_engine *e, struct sandbox *sb, const struct line_batch *b, bool user)
{
	int64_t sbid = sb->rowid;
	if (!b->n)
		return 0;
	int rc = user ? eng_room(e) : 0;
	/* what waits in one user's sandboxes is bounded: past it, EDQUOT */
	if (!rc && user)
		rc = eng_quota(e, sb->uid, QUOTA_QUEUED_MESSAGES, (int64_t)b->n, NULL);
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
					 "queued", true, &line);
		if (!rc)
			rc = store_exec(&e->st, "UPDATE messages SET len = ?, off = ? WHERE id = ?", "iii",
					(int64_t)line.len, sb->msg_bytes + bytes, ids[i]);
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
	quota_add(&e->quota, sb->uid, QUOTA_QUEUED_MESSAGES, (int64_t)b->n);
	sb->msg_bytes += bytes;
	eng_changed(e, OCH_MESSAGES, 0, sb->rowid);
	if (sb->win)
		win_activity(sb);	/* a message is activity (SPEC §9) */
	for (size_t i = 0; i < b->n; i++)
		ev_emit(e, "message.queued", sb->holder, NULL, sb,
			json_pack("{s:I, s:s}", "message_id", (json_int_t)ids[i], "message_type",
				  msg_type_name(b->msgs[i].type)));
	/* a person's answer ends the oldest open question (core/supervise.h) */
	for (size_t i = 0; i < b->n; i++)
		if (b->msgs[i].type == MSG_HUMAN_ANSWER)
			sup_on_answer(e, sb, ids[i]);
	orch_free(ids);
	orch_need_durable(e);
	return 0;
}

int orch_messages_append(struct orch_engine *e, int64_t sbid, const struct line_batch *b)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb)
		return -ENOENT;
	return append(e, sb, b, true);
}

int msgq_post(struct orch_engine *e, struct sandbox *sb, enum msg_type type, const char *content)
{
	struct msg_line m = { type, (char *)content };
	struct line_batch b = { 1, &m, NULL };
	return append(e, sb, &b, false);
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
		rc = render_msg(q, true, out);
	while (!rc && store_next(q));
	store_done(q);
	return rc;
}

/* What one read of the messages view renders at most: the rest is the
 * next read's (a short read; readers read on to the end). */
#define VIEW_READ_MAX (32 << 10)

int orch_messages_read(struct orch_engine *e, int64_t sbid, int64_t off, size_t size, struct sbuf *out)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb)
		return -ENOENT;
	if (off < 0)
		return -EINVAL;
	if (size > VIEW_READ_MAX)
		size = VIEW_READ_MAX;
	if (!size || off >= sb->msg_bytes)
		return 0;
	/* the line OFF falls in, then on: two seeks of (sandbox, off) */
	int64_t first = store_int(&e->st,
				  "SELECT off FROM messages WHERE sandbox = ? AND off <= ? ORDER BY off DESC LIMIT 1",
				  0, "ii", sbid, off);
	int rc;
	struct sbuf line = SBUF_INIT;
	int64_t end = off + (int64_t)size;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT " MSG_COLS ", off FROM messages WHERE sandbox = ? AND off >= ?"
				      " ORDER BY off",
				      &rc, "ii", sbid, first);
	for (; q && !rc; q = store_next(q) ? q : (store_done(q), NULL)) {
		int64_t at = sqlite3_column_int64(q, 5);
		sbuf_reset(&line);
		if ((rc = render_msg(q, true, &line)))
			break;
		int64_t from = off > at ? off : at, to = end < at + (int64_t)line.len ? end : at + (int64_t)line.len;
		if (from < to)
			sbuf_add(out, line.buf + (from - at), (size_t)(to - from));
		if (to >= end)
			break;
	}
	store_done(q);
	sbuf_release(&line);
	return rc ? rc : sbuf_failed(out) ? -ENOMEM : 0;
}

#define TAKE_COLS "id, ts, type, content, state, len"

/* Render the row of Q into OUT for lease L unless the batch is full: 1
 * taken, 0 full, or -errno. */
static int take_row(sqlite3_stmt *q, struct lease *l, size_t *bytes, struct sbuf *out)
{
	size_t len = (size_t)sqlite3_column_int64(q, 5);
	if (l->n == INBOX_BATCH_MSGS || (l->n && *bytes + len > INBOX_BATCH_BYTES))
		return 0;
	int rc = render_msg(q, false, out);
	if (rc)
		return rc;
	l->msgs[l->n++] = sqlite3_column_int64(q, 0);
	*bytes += len;
	return 1;
}

int orch_inbox_take(struct orch_engine *e, int64_t sbid, uint64_t *lease, struct sbuf *out)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	*lease = 0;
	if (!sb)
		return -ENOENT;
	if (!sb->msg_queued)
		return 0;
	int rc = sb->back_lost ? rebuild(e, sb) : 0;
	if (rc)
		return rc;
	struct lease *l = orch_calloc(1, sizeof(*l));
	if (!l || !(l->msgs = orch_calloc(INBOX_BATCH_MSGS, sizeof(*l->msgs)))) {
		orch_free(l);
		return -ENOMEM;
	}
	size_t bytes = 0;
	int more = 1;
	/* the handed-back ones first: all of them are older than inbox_next */
	while (sb->nback && more > 0) {
		sqlite3_stmt *q = store_query(&e->st,
					      "SELECT " TAKE_COLS " FROM messages WHERE id = ? AND state = 'queued'",
					      &rc, "i", sb->back[0]);
		more = q ? take_row(q, l, &bytes, out) : rc ? rc : 1;
		store_done(q);
		if (more > 0)
			back_pop(sb);	/* taken (or no longer queued) */
	}
	/* then the oldest no lease ever held */
	int64_t next = sb->inbox_next;
	if (more > 0) {
		sqlite3_stmt *q = store_query(&e->st,
					      "SELECT " TAKE_COLS " FROM messages WHERE sandbox = ? AND state = 'queued'"
					      " AND id >= ? ORDER BY id LIMIT ?",
					      &rc, "iii", sbid, sb->inbox_next,
					      (int64_t)(INBOX_BATCH_MSGS - l->n));
		for (; q && !rc; q = store_next(q) ? q : (store_done(q), NULL)) {
			more = take_row(q, l, &bytes, out);
			if (more <= 0) {
				rc = more;
				break;
			}
			next = sqlite3_column_int64(q, 0) + 1;
		}
		store_done(q);
	} else if (more < 0) {
		rc = more;
	}
	if (rc || !l->n) {
		/* nothing taken after all: what the heap gave up goes back (the
		 * rest is at or above inbox_next, still free) */
		for (size_t i = 0; i < l->n && !sb->back_lost; i++)
			if (l->msgs[i] < sb->inbox_next && back_push(sb, l->msgs[i]))
				sb->back_lost = true;
		orch_free(l->msgs);
		orch_free(l);
		return rc;
	}
	l->sb = sbid;
	if ((rc = lease_put(&e->leases, l))) {
		hand_back(sb, l);
		orch_free(l->msgs);
		orch_free(l);
		return rc;
	}
	sb->inbox_next = next;
	l->next = sb->leases;
	if (l->next)
		l->next->prev = l;
	sb->leases = l;
	*lease = l->id;
	return 0;
}

int orch_inbox_done(struct orch_engine *e, int64_t sbid, uint64_t lease, bool deliver)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb || !lease)
		return 0;
	struct lease *l = lease_get(&e->leases, lease);
	if (!l || l->sb != sbid)
		return 0;
	int rc = deliver ? eng_room(e) : 0;	/* no room: they stay queued */
	bool delivered = false;
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
			delivered = true;
			sb->msg_queued -= (int64_t)l->n;
			e->msg_queued -= (int64_t)l->n;
			quota_add(&e->quota, sb->uid, QUOTA_QUEUED_MESSAGES, -(int64_t)l->n);
			sb->msg_delivered += (int64_t)l->n;
			for (size_t i = 0; i < l->n; i++)
				ev_emit(e, "message.delivered", sb->holder, NULL, sb,
					json_pack("{s:I}", "message_id", (json_int_t)l->msgs[i]));
			orch_need_durable(e);
		}
	}
	if (!delivered) {
		hand_back(sb, l);
		eng_changed(e, OCH_MESSAGES, 0, sbid);	/* an inbox may take them again */
	}
	lease_free(sb, l);
	return rc;
}

void msgq_forget(struct sandbox *sb)
{
	while (sb->leases)
		lease_free(sb, sb->leases);
	orch_free(sb->back);
	sb->back = NULL;
	sb->nback = sb->capback = 0;
}

int64_t orch_inbox_free(struct orch_engine *e, int64_t sbid)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb)
		return 0;
	int64_t n = sb->msg_queued;
	for (const struct lease *l = sb->leases; l && n > 0; l = l->next)
		n -= (int64_t)l->n;
	return n > 0 ? n : 0;
}

int64_t orch_messages_size(struct orch_engine *e, int64_t sbid)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	return sb ? sb->msg_bytes : 0;
}
