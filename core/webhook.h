/* core/webhook.h — webhooks of SPEC §11: each event whose type a subscriber
 * wants is queued for it in the store, in the transaction that records the
 * event, and POSTed to it as the event's JSON line, signed
 * (X-Orchfs-Signature: sha256=HMAC-SHA256(secret, body)), one at a time and
 * in seq order per subscriber, through core/http.h on the engine's loop.
 *
 * Owns the subscribers, their queues (webhook_subs, webhook_queue) and
 * their timers. The pure part (configuration, globs, the retry schedule,
 * the signature) may be called from any thread; webhook_open/close/event/
 * metrics only on the engine thread.
 *
 * Decisions: a subscriber is its URL (a URL may be listed once). At start,
 * the queue of a URL no longer configured is dropped (logged with its
 * count). A delivery is at least once: a crash between the answer and the
 * next commit posts that event again (the receiver tells by seq). A
 * `webhook.dropped` event (about a drop) is never queued for the
 * subscriber it is about, and dropping one emits no other: drops cannot
 * feed each other forever. */
#ifndef ORCH_WEBHOOK_H
#define ORCH_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define WEBHOOK_TIMEOUT_MS 10000	/* no answer in 10 s: a failed delivery */
#define WEBHOOK_MAX_RETRIES 32		/* entries of a "retry_sec" list */
#define WEBHOOK_MAX_GLOBS 256
#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_SIG_LEN 72		/* "sha256=" + 64 hex digits + NUL */

/* One subscriber of --config "webhooks". */
struct webhook_cfg {
	char *url;
	char *secret;
	char **events;		/* fnmatch(3) globs of event types */
	size_t nevents;
	double *retry_sec;	/* the delays after each failed delivery */
	size_t nretry;
};

/* Check and copy the "webhooks" value V of a config: 0 with a new array in
 * *OUT (*N entries), or -EINVAL with one line (no newline) in ERR naming
 * what is wrong and where ("webhooks[1].url: ..."), or -ENOMEM. */
int webhook_cfg_parse(const json_t *v, struct webhook_cfg **out, size_t *n, struct sbuf *err);
void webhook_cfg_free(struct webhook_cfg *v, size_t n);
/* Does subscriber C want events of TYPE? */
bool webhook_wants(const struct webhook_cfg *c, const char *type);
/* The delay before the next try after FAILURES failed deliveries of one
 * event (1: the first), in ms; -1 when it is dropped instead. */
int64_t webhook_retry_ms(const struct webhook_cfg *c, unsigned failures);
/* HMAC-SHA256 of MSG with KEY (RFC 2104), into OUT: 0, or -EIO. */
int webhook_hmac_sha256(const void *key, size_t klen, const void *msg, size_t len, unsigned char out[32]);
/* The X-Orchfs-Signature value of BODY: "sha256=<64 lowercase hex>". */
int webhook_sign(const char *secret, const void *body, size_t len, char out[WEBHOOK_SIG_LEN]);
/* URL for people and for events: scheme, host, port and path; no user,
 * password or query (they may hold credentials). New string, or NULL. */
char *webhook_url_shown(const char *url);

struct orch_engine;

/* At engine open, after the store and the event log: take the N
 * subscribers of CFG (copied), drop the queues of URLs no longer among
 * them, and resume delivery of what is queued. 0 or -errno (ERR says). */
int webhook_open(struct orch_engine *e, const struct webhook_cfg *cfg, size_t n, struct sbuf *err);
void webhook_close(struct orch_engine *e);
/* From ev_emit(), once the event's row is written: queue it for each
 * subscriber that wants TYPE. */
void webhook_event(struct orch_engine *e, const char *type, int64_t seq, int64_t g_off);
/* orchfs_webhook_deliveries_total{result} for MOUNT/metrics. */
void webhook_metrics(struct orch_engine *e, struct sbuf *out);

#endif
