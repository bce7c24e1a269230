/* core/webhook.c — webhooks (SPEC §11; see core/webhook.h).
 *
 * The queue lives in the store: webhook_event() adds a row per subscriber
 * beside the event's own row, in the same transaction, so what is recorded
 * is delivered and a crash loses neither. Delivery reads the queue only
 * once the rows are committed (a kick after the turn's commit; seq below
 * `committed`): an event a failed commit undoes is never posted. Each
 * subscriber has at most one request in flight or one retry waiting; its
 * next row is read from the store when that ends. */
#include "core/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/engine_i.h"

static const double default_retry[] = { 30, 60, 120, 300, 600 };

/* ---- configuration (pure) ---- */

void webhook_cfg_free(struct webhook_cfg *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		orch_free(v[i].url);
		orch_free(v[i].secret);
		for (size_t k = 0; k < v[i].nevents; k++)
			orch_free(v[i].events[k]);
		orch_free(v[i].events);
		orch_free(v[i].retry_sec);
	}
	orch_free(v);
}

static bool text_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* http(s), a host, nothing curl's parser refuses */
static bool url_ok(const char *url)
{
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
		return false;
	CURLU *u = curl_url();
	char *host = NULL;
	bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && host[0];
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

#define CFG_ERR(...)                          \
	do {                                  \
		sbuf_addf(err, __VA_ARGS__);  \
		rc = -EINVAL;                 \
		goto fail;                    \
	} while (0)

int webhook_cfg_parse(const json_t *v, struct webhook_cfg **out, size_t *n, struct sbuf *err)
{
	char b[96];
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (!json_is_array(v)) {
		sbuf_addf(err, "\"webhooks\" must be a list of {\"url\", \"secret\", \"events\"} objects, not %s",
			  json_kind(v));
		return -EINVAL;
	}
	size_t count = json_array_size(v);
	struct webhook_cfg *c = orch_calloc(count ? count : 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		json_t *o = json_array_get(v, i), *val;
		const char *key;
		struct webhook_cfg *w = &c[i];
		*n = i + 1;
		if (!json_is_object(o))
			CFG_ERR("webhooks[%zu] must be an object with \"url\", \"secret\" and \"events\", not %s", i,
				json_kind(o));
		json_object_foreach(o, key, val) {
			if (strcmp(key, "url") && strcmp(key, "secret") && strcmp(key, "events") &&
			    strcmp(key, "retry_sec"))
				CFG_ERR("webhooks[%zu]: unknown field \"%s\" (known: url, secret, events, retry_sec)", i,
					text_show(b, sizeof(b), key, strlen(key)));
		}
		json_t *url = json_object_get(o, "url"), *secret = json_object_get(o, "secret");
		json_t *events = json_object_get(o, "events"), *retry = json_object_get(o, "retry_sec");
		if (!url)
			CFG_ERR("webhooks[%zu].url is required", i);
		if (!json_is_string(url))
			CFG_ERR("webhooks[%zu].url must be a string, not %s", i, json_kind(url));
		const char *us = json_string_value(url);
		if (strlen(us) != json_string_length(url) || !text_clean(us) || strlen(us) > WEBHOOK_URL_MAX ||
		    !url_ok(us))
			CFG_ERR("webhooks[%zu].url must be an http:// or https:// URL (at most %d bytes), not \"%s\"", i,
				WEBHOOK_URL_MAX, text_show(b, sizeof(b), us, json_string_length(url)));
		for (size_t k = 0; k < i; k++)
			if (!strcmp(c[k].url, us))
				CFG_ERR("webhooks[%zu].url is the url of webhooks[%zu]: list each URL once (one subscriber"
					" takes every event type it wants)",
					i, k);
		if (!secret)
			CFG_ERR("webhooks[%zu].secret is required (the key of the X-Orchfs-Signature HMAC)", i);
		if (!json_is_string(secret) || json_string_length(secret) == 0 ||
		    strlen(json_string_value(secret)) != json_string_length(secret))
			CFG_ERR("webhooks[%zu].secret must be a non-empty string without NUL bytes", i);
		if (!events)
			CFG_ERR("webhooks[%zu].events is required: a list of event type globs such as [\"run.*\","
				" \"step.failed\"] ([\"*\"]: every event)",
				i);
		if (!json_is_array(events) || json_array_size(events) == 0 ||
		    json_array_size(events) > WEBHOOK_MAX_GLOBS)
			CFG_ERR("webhooks[%zu].events must be a list of 1 to %d event type globs such as [\"run.*\"]",
				i, WEBHOOK_MAX_GLOBS);
		if (!(w->url = orch_strdup(us)) || !(w->secret = orch_strdup(json_string_value(secret))) ||
		    !(w->events = orch_calloc(json_array_size(events), sizeof(char *)))) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t k = 0; k < json_array_size(events); k++) {
			json_t *g = json_array_get(events, k);
			if (!json_is_string(g) || json_string_length(g) == 0 ||
			    strlen(json_string_value(g)) != json_string_length(g) || !text_clean(json_string_value(g)))
				CFG_ERR("webhooks[%zu].events[%zu] must be a non-empty glob such as \"run.*\", not %s", i, k,
					json_is_string(g) ? "that string" : json_kind(g));
			if (!(w->events[w->nevents++] = orch_strdup(json_string_value(g)))) {
				rc = -ENOMEM;
				goto fail;
			}
		}
		if (retry) {
			if (!json_is_array(retry) || json_array_size(retry) > WEBHOOK_MAX_RETRIES)
				CFG_ERR("webhooks[%zu].retry_sec must be a list of at most %d delays in seconds such as"
					" [30, 60, 120] ([]: no retry), not %s",
					i, WEBHOOK_MAX_RETRIES, json_is_array(retry) ? "a longer one" : json_kind(retry));
			w->nretry = json_array_size(retry);
		} else {
			w->nretry = ARRAY_SIZE(default_retry);
		}
		w->retry_sec = orch_calloc(w->nretry ? w->nretry : 1, sizeof(double));
		if (!w->retry_sec) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t k = 0; k < w->nretry; k++) {
			json_t *d = retry ? json_array_get(retry, k) : NULL;
			if (d && (!json_is_number(d) || !(json_number_value(d) > 0) || json_number_value(d) > 86400))
				CFG_ERR("webhooks[%zu].retry_sec[%zu] must be a number of seconds greater than 0 and at most"
					" 86400",
					i, k);
			w->retry_sec[k] = d ? json_number_value(d) : default_retry[k];
		}
	}
	*out = c;
	*n = count;
	return 0;
fail:
	webhook_cfg_free(c, *n);
	*n = 0;
	return rc;
}

bool webhook_wants(const struct webhook_cfg *c, const char *type)
{
	for (size_t i = 0; i < c->nevents; i++)
		if (fnmatch(c->events[i], type, 0) == 0)
			return true;
	return false;
}

int64_t webhook_retry_ms(const struct webhook_cfg *c, unsigned failures)
{
	if (failures == 0 || failures > c->nretry)
		return -1;
	return (int64_t)llround(c->retry_sec[failures - 1] * 1000);
}

int webhook_hmac_sha256(const void *key, size_t klen, const void *msg, size_t len, unsigned char out[32])
{
	unsigned int olen = 0;
	static const unsigned char none;
	if (!HMAC(EVP_sha256(), klen ? key : &none, (int)klen, len ? msg : &none, len, out, &olen) || olen != 32)
		return -EIO;
	return 0;
}

int webhook_sign(const char *secret, const void *body, size_t len, char out[WEBHOOK_SIG_LEN])
{
	unsigned char mac[32];
	int rc = webhook_hmac_sha256(secret, strlen(secret), body, len, mac);
	if (rc)
		return rc;
	memcpy(out, "sha256=", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

char *webhook_url_shown(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *s = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
		s = orch_asprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
				  path ? path : "/");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return s;
}

/* ---- delivery (engine thread) ---- */

struct wh_sub {
	struct webhooks *w;
	const struct webhook_cfg *cfg;
	char *shown;		/* its URL for the log and events */
	int64_t id;		/* webhook_subs.id */
	bool queued;		/* rows were queued since the last kick */
	bool busy;		/* a request in flight, or a retry's timer armed */
	struct http_req *req;
	int64_t row, seq;	/* the row being delivered */
	unsigned attempts;
	char type[64];		/* its event's type */
	struct loop_timer timer;
	char failed_why[128];	/* a post that could not start: failed at the timer, in
				 * the next turn (no recursion through a whole queue) */
};

struct webhooks {
	struct orch_engine *e;
	struct webhook_cfg *cfg;	/* copies, n of them */
	struct wh_sub *subs;
	size_t n;
	int64_t committed;	/* events below this seq are committed */
	struct orch_done kick;
	bool kick_queued;
	const struct wh_sub *dropping;	/* emitting webhook.dropped about it */
	int64_t ok, failed, dropped;
};

static void deliver_next(struct wh_sub *s, bool now);

static void attempt_failed(struct wh_sub *s, const char *why);

static void sub_retry_cb(struct loop_timer *t)
{
	struct wh_sub *s = t->data;
	if (s->failed_why[0]) {
		char why[sizeof(s->failed_why)];
		snprintf(why, sizeof(why), "%s", s->failed_why);
		s->failed_why[0] = '\0';
		attempt_failed(s, why);	/* still busy with its row */
		return;
	}
	s->busy = false;
	deliver_next(s, true);
}

/* After the commit that holds newly queued rows: subscribers that are idle
 * start on them. */
static void kick_fn(struct orch_done *d, int rc)
{
	struct webhooks *w = (struct webhooks *)((char *)d - offsetof(struct webhooks, kick));
	w->kick_queued = false;
	if (rc)
		return;	/* undone: nothing new to deliver */
	w->committed = w->e->next_seq;
	for (size_t i = 0; i < w->n; i++) {
		struct wh_sub *s = &w->subs[i];
		if (!s->queued)
			continue;
		s->queued = false;
		if (!s->busy)
			deliver_next(s, false);
	}
}

void webhook_event(struct orch_engine *e, const char *type, int64_t seq, int64_t g_off)
{
	struct webhooks *w = e->hooks;
	bool any = false;
	bool drop_ev = !strcmp(type, "webhook.dropped");
	for (size_t i = 0; i < w->n; i++) {
		struct wh_sub *s = &w->subs[i];
		if ((drop_ev && w->dropping == s) || !webhook_wants(s->cfg, type))
			continue;
		int rc = store_exec(&e->st, "INSERT INTO webhook_queue(sub, seq, g_off) VALUES(?, ?, ?)", "iii",
				    s->id, seq, g_off);
		if (rc) {
			eng_log(e, "webhook %s: cannot queue event %lld (%s): %s", s->shown, (long long)seq, type,
				strerror(-rc));
			continue;
		}
		s->queued = any = true;
	}
	if (any) {
		/* posted only once durable: a receiver never gets an event (and a
		 * seq) that a power loss could undo and give to another */
		orch_need_durable(e);
	}
	if (any && !w->kick_queued) {
		w->kick_queued = true;
		w->kick.fn = kick_fn;
		orch_after_commit(e, &w->kick);
	}
}

/* The row being delivered is done with (delivered, or dropped): gone. */
static void row_done(struct wh_sub *s)
{
	struct orch_engine *e = s->w->e;
	int rc = store_exec(&e->st, "DELETE FROM webhook_queue WHERE id = ?", "i", s->row);
	if (rc)
		eng_log(e, "webhook %s: cannot dequeue event %lld: %s", s->shown, (long long)s->seq, strerror(-rc));
	s->row = 0;
	s->busy = false;
}

static void attempt_failed(struct wh_sub *s, const char *why)
{
	struct webhooks *w = s->w;
	struct orch_engine *e = w->e;
	w->failed++;
	s->attempts++;
	int64_t delay = webhook_retry_ms(s->cfg, s->attempts);
	if (delay < 0) {
		eng_log(e, "webhook %s: event %lld (%s) dropped after %u attempt%s: %s", s->shown, (long long)s->seq,
			s->type, s->attempts, s->attempts == 1 ? "" : "s", why);
		w->dropped++;
		int64_t seq = s->seq;
		unsigned attempts = s->attempts;
		char type[sizeof(s->type)];
		snprintf(type, sizeof(type), "%s", s->type);
		row_done(s);
		/* a drop of a drop says nothing more: no chain of them */
		if (strcmp(type, "webhook.dropped")) {
			w->dropping = s;
			ev_emit(e, "webhook.dropped", NULL, NULL, NULL,
				json_pack("{s:s, s:I, s:s, s:i, s:s}", "url", s->shown, "event_seq", (json_int_t)seq,
					  "event_type", type, "attempts", (int)attempts, "error", why));
			w->dropping = NULL;
		}
		deliver_next(s, false);
		return;
	}
	eng_log(e, "webhook %s: event %lld (%s), attempt %u: %s: again in %.10gs", s->shown, (long long)s->seq,
		s->type, s->attempts, why, delay / 1000.0);
	int rc = store_exec(&e->st, "UPDATE webhook_queue SET attempts = ?, next_at = ?, error = ? WHERE id = ?",
			    "iisi", (int64_t)s->attempts, clock_wall_ms() + delay, why, s->row);
	if (rc)
		eng_log(e, "webhook %s: cannot record the attempt: %s", s->shown, strerror(-rc));
	if (loop_timer_set(&e->loop, &s->timer, clock_mono_ms() + delay)) {
		/* no room in the timer heap: the next event's kick tries again */
		s->busy = false;
		s->queued = true;
	}
}

static void post_done(void *arg, int status, const char *err)
{
	struct wh_sub *s = arg;
	s->req = NULL;
	if (status >= 200 && status < 300) {
		s->w->ok++;
		row_done(s);
		deliver_next(s, false);
		return;
	}
	char why[CURL_ERROR_SIZE + 32];
	if (status)
		snprintf(why, sizeof(why), "HTTP status %d", status);
	else
		snprintf(why, sizeof(why), "%s", err && *err ? err : "no answer");
	attempt_failed(s, why);
}

/* Start on S's oldest committed row: post it, or wait for its retry's turn
 * (NOW: that turn has come, the timer says so). */
static void deliver_next(struct wh_sub *s, bool now)
{
	struct webhooks *w = s->w;
	struct orch_engine *e = w->e;
	if (s->busy || e->stopped)
		return;
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT q.id, q.seq, q.attempts, q.next_at, ev.type, ev.line FROM webhook_queue q"
				      " JOIN events ev ON ev.g_off = q.g_off WHERE q.sub = ? AND q.seq < ?"
				      " ORDER BY q.id LIMIT 1",
				      &rc, "ii", s->id, w->committed);
	if (!q) {
		if (rc)
			eng_log(e, "webhook %s: cannot read its queue: %s", s->shown, strerror(-rc));
		return;
	}
	s->row = sqlite3_column_int64(q, 0);
	s->seq = sqlite3_column_int64(q, 1);
	s->attempts = (unsigned)sqlite3_column_int64(q, 2);
	int64_t next_at = sqlite3_column_int64(q, 3);
	snprintf(s->type, sizeof(s->type), "%s", (const char *)sqlite3_column_text(q, 4));
	s->busy = true;
	int64_t wait = next_at - clock_wall_ms();
	if (!now && wait > 0) {
		store_done(q);
		if (loop_timer_set(&e->loop, &s->timer, clock_mono_ms() + wait))
			s->busy = false;
		return;
	}
	const char *line = (const char *)sqlite3_column_blob(q, 5);
	size_t len = (size_t)sqlite3_column_bytes(q, 5);
	char sig[WEBHOOK_SIG_LEN], sighdr[WEBHOOK_SIG_LEN + 32];
	rc = webhook_sign(s->cfg->secret, line, len, sig);
	snprintf(sighdr, sizeof(sighdr), "X-Orchfs-Signature: %s", sig);
	const char *hdrs[] = { "Content-Type: application/json", sighdr, NULL };
	struct http_opts o = { .method = "POST", .url = s->cfg->url, .headers = hdrs, .body = line,
			       .body_len = len, .timeout_ms = WEBHOOK_TIMEOUT_MS };
	if (!rc)
		rc = http_start(&e->http, &o, post_done, s, &s->req);
	store_done(q);
	if (rc) {
		snprintf(s->failed_why, sizeof(s->failed_why), "cannot post: %s",
			 rc == -ENOTSUP ? "this libcurl resolves names synchronously (use an IP address)"
					: strerror(-rc));
		/* failed in the next turn: a queue that cannot start (a drop
		 * each) goes a row a turn, never a recursion through it all */
		if (loop_timer_set(&e->loop, &s->timer, clock_mono_ms())) {
			s->failed_why[0] = '\0';
			s->busy = false;	/* no room in the heap: the next kick tries again */
			s->queued = true;
		}
	}
}

int webhook_open(struct orch_engine *e, const struct webhook_cfg *cfg, size_t n, struct sbuf *err)
{
	struct store *st = &e->st;
	int rc = 0;
	/* queues of URLs no longer configured: nobody to post them to */
	sqlite3_stmt *q = store_query(st, "SELECT id, url FROM webhook_subs", &rc, NULL);
	int64_t gone[64];
	size_t ngone = 0;
	for (; q; q = store_next(q) ? q : (store_done(q), NULL)) {
		const char *url = (const char *)sqlite3_column_text(q, 1);
		bool kept = false;
		for (size_t i = 0; i < n && !kept; i++)
			kept = !strcmp(cfg[i].url, url);
		if (!kept && ngone < ARRAY_SIZE(gone))
			gone[ngone++] = sqlite3_column_int64(q, 0);
	}
	for (size_t k = 0; !rc && k < ngone; k++) {
		int64_t cnt = store_int(st, "SELECT count(*) FROM webhook_queue WHERE sub = ?", 0, "i", gone[k]);
		char *url = NULL;
		sqlite3_stmt *u = store_query(st, "SELECT url FROM webhook_subs WHERE id = ?", &rc, "i", gone[k]);
		if (u) {
			url = webhook_url_shown((const char *)sqlite3_column_text(u, 0));
			store_done(u);
		}
		if (cnt)
			eng_log(e, "webhook %s is no longer configured: its %lld undelivered event%s dropped",
				url ? url : "?", (long long)cnt, cnt == 1 ? "" : "s");
		orch_free(url);
		rc = store_exec(st, "DELETE FROM webhook_queue WHERE sub = ?", "i", gone[k]);
		if (!rc)
			rc = store_exec(st, "DELETE FROM webhook_subs WHERE id = ?", "i", gone[k]);
	}
	if (rc) {
		sbuf_addf(err, "cannot read the webhook queues: %s", strerror(-rc));
		return rc;
	}
	if (n == 0)
		return 0;
	struct webhooks *w = orch_calloc(1, sizeof(*w));
	if (!w || !(w->subs = orch_calloc(n, sizeof(*w->subs))) || !(w->cfg = orch_calloc(n, sizeof(*w->cfg)))) {
		if (w)
			orch_free(w->subs);
		orch_free(w);
		sbuf_adds(err, "out of memory");
		return -ENOMEM;
	}
	w->e = e;
	w->n = n;
	e->hooks = w;
	for (size_t i = 0; i < n && !rc; i++) {
		struct webhook_cfg *c = &w->cfg[i];
		struct wh_sub *s = &w->subs[i];
		/* a copy: the caller's configuration is its own */
		c->url = orch_strdup(cfg[i].url);
		c->secret = orch_strdup(cfg[i].secret);
		c->events = orch_calloc(cfg[i].nevents ? cfg[i].nevents : 1, sizeof(char *));
		c->retry_sec = orch_calloc(cfg[i].nretry ? cfg[i].nretry : 1, sizeof(double));
		s->w = w;
		s->cfg = c;
		s->shown = c->url ? webhook_url_shown(c->url) : NULL;
		s->timer = (struct loop_timer)LOOP_TIMER_INIT(sub_retry_cb, s);
		if (!c->url || !c->secret || !c->events || !c->retry_sec || !s->shown) {
			rc = -ENOMEM;
			break;
		}
		for (size_t k = 0; k < cfg[i].nevents; k++)
			if ((c->events[c->nevents++] = orch_strdup(cfg[i].events[k])) == NULL)
				rc = -ENOMEM;
		c->nretry = cfg[i].nretry;
		if (c->nretry)
			memcpy(c->retry_sec, cfg[i].retry_sec, c->nretry * sizeof(double));
		if (!rc)
			rc = store_exec(st, "INSERT OR IGNORE INTO webhook_subs(url) VALUES(?)", "s", c->url);
		if (!rc && !(s->id = store_int(st, "SELECT id FROM webhook_subs WHERE url = ?", 0, "s", c->url)))
			rc = -EIO;
	}
	if (rc) {
		sbuf_addf(err, "cannot set up the webhooks: %s", strerror(-rc));
		webhook_close(e);
		return rc;
	}
	/* everything in the store is committed: resume where it stood */
	w->committed = e->next_seq;
	for (size_t i = 0; i < n; i++)
		deliver_next(&w->subs[i], false);
	return 0;
}

void webhook_close(struct orch_engine *e)
{
	struct webhooks *w = e->hooks;
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		struct wh_sub *s = &w->subs[i];
		if (s->req)
			http_cancel(&e->http, s->req);
		loop_timer_cancel(&e->loop, &s->timer);
		orch_free(s->shown);
	}
	/* a kick waiting for the commit would find us gone */
	for (struct orch_done **pp = &e->read_head; *pp; pp = &(*pp)->next)
		if (*pp == &w->kick) {
			*pp = w->kick.next;
			break;
		}
	e->read_tail = NULL;
	for (struct orch_done *d = e->read_head; d; d = d->next)
		e->read_tail = d;
	webhook_cfg_free(w->cfg, w->n);
	orch_free(w->subs);
	orch_free(w);
	e->hooks = NULL;
}

void webhook_metrics(struct orch_engine *e, struct sbuf *out)
{
	struct webhooks *w = e->hooks;
	sbuf_addf(out,
		  "# HELP orchfs_webhook_deliveries_total Webhook posts since start, by result (failed: an"
		  " attempt that gets no 2xx; dropped: an event given up after its retries).\n"
		  "# TYPE orchfs_webhook_deliveries_total counter\n"
		  "orchfs_webhook_deliveries_total{result=\"ok\"} %lld\n"
		  "orchfs_webhook_deliveries_total{result=\"failed\"} %lld\n"
		  "orchfs_webhook_deliveries_total{result=\"dropped\"} %lld\n",
		  (long long)(w ? w->ok : 0), (long long)(w ? w->failed : 0), (long long)(w ? w->dropped : 0));
}
