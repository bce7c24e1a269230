/* core/http.h — HTTP requests over ONE libcurl multi handle driven by a
 * struct loop (core/loop.h): curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION);
 * the loop's fd watches and one timer call curl_multi_socket_action().
 * Nothing here waits: no curl_multi_perform(), no curl_easy_perform().
 * Owned and called by the loop's thread only (the engine thread); the
 * completion callback runs there too, from a loop callback, never from
 * inside http_start().
 *
 * Name resolution: this libcurl (Debian's) resolves names on a thread of
 * its own (the threaded resolver, curl_version_info() says AsynchDNS), so a
 * lookup never holds the loop; CURLOPT_QUICK_EXIT (curl >= 7.87) lets a
 * cancelled or timed-out request leave a lookup in flight behind instead of
 * joining its thread. A libcurl that resolves names synchronously is
 * refused every URL whose host is not an IP address or "localhost" (which
 * curl resolves itself): http_start() fails with -ENOTSUP. 127.0.0.1 and
 * [::1] never involve a resolver. */
#ifndef ORCH_HTTP_H
#define ORCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct http_req;
struct http_sock;

/* The multi handle is made with the first request: an engine that never
 * sends one costs nothing. */
struct http {
	struct loop *loop;
	void *multi;		/* CURLM *, NULL until the first request */
	bool async_dns;		/* this libcurl resolves names off the calling thread */
	bool closing;		/* in http_release() */
	struct loop_timer timer;	/* curl's timeout */
	struct loop_timer reap;	/* frees sockets curl let go of, after the turn's batch */
	struct http_sock *dead;
	struct http_req *reqs;	/* in flight */
	int64_t started;	/* requests started so far (tests) */
};

struct http_opts {
	const char *method;	/* "GET" or "POST" */
	const char *url;	/* http:// or https:// only */
	const char *const *headers;	/* "Name: value" strings, NULL-terminated; may be NULL */
	const char *body;	/* POST: copied */
	size_t body_len;
	int64_t timeout_ms;	/* the whole request, connect included; > 0 */
	bool no_proxy;		/* ignore the daemon's *_proxy variables (a loopback check) */
};

/* STATUS: the answer's HTTP status; 0 when none came, then ERR says why
 * (curl's words: "Failed to connect to 127.0.0.1 port 1: Connection
 * refused", "Operation timed out after 10001 milliseconds..."). ERR is
 * only valid during the call. */
typedef void (*http_done_fn)(void *arg, int status, const char *err);

void http_init(struct http *h, struct loop *l);
/* Cancel every request (no callback runs) and free the multi handle. */
void http_release(struct http *h);

/* Start a request: 0 with *OUT (NULL allowed) set, then FN runs once, later;
 * or -errno and nothing runs (-EINVAL: not http(s), or not a URL; -ENOTSUP:
 * a host name this libcurl would resolve on our thread; -ENOMEM). The
 * answer's body is read and thrown away; redirects are not followed. */
int http_start(struct http *h, const struct http_opts *o, http_done_fn fn, void *arg,
	       struct http_req **out);
/* Drop a request in flight: its callback never runs. Not from inside that
 * callback (the request is gone by then). */
void http_cancel(struct http *h, struct http_req *r);

/* Requests in flight. */
size_t http_pending(const struct http *h);

#endif
