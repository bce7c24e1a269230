/* core/http.c — libcurl's multi interface on the engine's loop (the
 * "multi_socket" pattern of curl's hiperfifo example): curl asks for fd
 * watches and a timer; the loop calls back with what happened; finished
 * transfers are read off curl_multi_info_read() and handed to their
 * callbacks. */
#include "core/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "core/util.h"

struct http_req {
	struct http *h;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	http_done_fn fn;
	void *arg;
	char err[CURL_ERROR_SIZE];
	struct http_req *prev, *next;
};

/* A socket curl asked us to watch. Freed only after the loop's batch of fd
 * events (a later event of the batch may still name it): see sock_free(). */
struct http_sock {
	struct loop_watch w;
	struct http *h;
	struct http_sock *next_dead;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

size_t http_pending(const struct http *h)
{
	size_t n = 0;
	for (const struct http_req *r = h->reqs; r; r = r->next)
		n++;
	return n;
}

static void req_unlink(struct http *h, struct http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void req_free(struct http_req *r)
{
	if (!r)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	orch_free(r->body);
	orch_free(r);
}

/* Every transfer curl has finished: off the multi handle, then its callback
 * (which may start or cancel others: curl drops the message of a handle
 * removed meanwhile, so each is read only when its turn comes). */
static void check_done(struct http *h)
{
	CURLMsg *m;
	int left;
	while (h->multi && (m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle;
		CURLcode res = m->data.result;
		struct http_req *r = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
		long status = 0;
		if (res == CURLE_OK)
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(h->multi, easy);
		if (!r)
			continue;
		req_unlink(h, r);
		if (res != CURLE_OK && !r->err[0])
			snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(res));
		if (res == CURLE_OK && status == 0)
			snprintf(r->err, sizeof(r->err), "no HTTP status in the answer");
		r->fn(r->arg, (int)status, r->err);
		req_free(r);
	}
}

static void reap_cb(struct loop_timer *t)
{
	struct http *h = t->data;
	while (h->dead) {
		struct http_sock *s = h->dead;
		h->dead = s->next_dead;
		orch_free(s);
	}
}

/* curl is done with S's socket (it closes it next): stop watching now, free
 * after the turn's batch (a run of the timer heap comes after it). */
static void sock_free(struct http *h, struct http_sock *s)
{
	loop_watch_del(h->loop, &s->w);
	s->w.fd = -1;
	s->next_dead = h->dead;
	h->dead = s;
	if (!loop_timer_armed(&h->reap) && loop_timer_set(h->loop, &h->reap, clock_mono_ms())) {
		/* no room for the timer: the pointer may still sit in this turn's
		 * batch, so it is leaked rather than freed under it */
		h->dead = s->next_dead;
	}
}

static void sock_ready(struct loop_watch *w, uint32_t events)
{
	struct http_sock *s = w->data;
	struct http *h = s->h;
	int flags = 0, running;
	if (events & (EPOLLIN | EPOLLHUP))
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, w->fd, flags, &running);
	check_done(h);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			if (!h->closing)
				curl_multi_assign(h->multi, fd, NULL);
			sock_free(h, s);
		}
		return 0;
	}
	uint32_t ev = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (s)
		return loop_watch_mod(h->loop, &s->w, ev) ? -1 : 0;
	s = orch_calloc(1, sizeof(*s));
	if (!s)
		return -1;	/* curl fails the transfer */
	s->h = h;
	s->w = (struct loop_watch){ .fd = fd, .cb = sock_ready, .data = s };
	if (loop_watch_add(h->loop, &s->w, ev)) {
		orch_free(s);
		return -1;
	}
	curl_multi_assign(h->multi, fd, s);
	return 0;
}

static void timer_cb(struct loop_timer *t)
{
	struct http *h = t->data;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

/* curl's wish for a wake-up (it may not call back into curl from here) */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	(void)multi;
	if (timeout_ms < 0) {
		loop_timer_cancel(h->loop, &h->timer);
		return 0;
	}
	return loop_timer_set(h->loop, &h->timer, clock_mono_ms() + timeout_ms) ? -1 : 0;
}

void http_init(struct http *h, struct loop *l)
{
	memset(h, 0, sizeof(*h));
	h->loop = l;
	h->timer = (struct loop_timer)LOOP_TIMER_INIT(timer_cb, h);
	h->reap = (struct loop_timer)LOOP_TIMER_INIT(reap_cb, h);
}

void http_release(struct http *h)
{
	while (h->reqs) {
		struct http_req *r = h->reqs;
		req_unlink(h, r);
		if (h->multi)
			curl_multi_remove_handle(h->multi, r->easy);
		req_free(r);
	}
	h->closing = true;
	if (h->multi)
		curl_multi_cleanup(h->multi);	/* closes what it kept */
	h->multi = NULL;
	if (h->loop) {
		loop_timer_cancel(h->loop, &h->timer);
		loop_timer_cancel(h->loop, &h->reap);
	}
	reap_cb(&h->reap);
	h->closing = false;
}

static int multi_make(struct http *h)
{
	if (h->multi)
		return 0;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return -ENOMEM;
	CURLM *m = curl_multi_init();
	if (!m)
		return -ENOMEM;
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, h);
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	h->async_dns = v && (v->features & CURL_VERSION_ASYNCHDNS);
	h->multi = m;
	return 0;
}

/* Steps must not inherit our sockets (proc_spawn closes them anyway). */
static int sockopt_cb(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	(void)arg;
	(void)purpose;
	int fl = fcntl(fd, F_GETFD);
	if (fl >= 0)
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	return CURL_SOCKOPT_OK;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Is URL http(s), and (with a synchronous resolver) is its host one that
 * needs none? 0, -EINVAL or -ENOTSUP. */
static int url_check(const char *url, bool async_dns)
{
	CURLU *u = curl_url();
	if (!u)
		return -ENOMEM;
	char *scheme = NULL, *host = NULL;
	int rc = 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		rc = -EINVAL;
	else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
		rc = -EINVAL;
	else if (!async_dns) {
		unsigned char buf[16];
		bool literal = host[0] == '[' || inet_pton(AF_INET, host, buf) == 1 ||
			       !strcasecmp(host, "localhost");
		if (!literal)
			rc = -ENOTSUP;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

int http_start(struct http *h, const struct http_opts *o, http_done_fn fn, void *arg,
	       struct http_req **out)
{
	int rc = multi_make(h);
	if (rc)
		return rc;
	if ((rc = url_check(o->url, h->async_dns)))
		return rc;
	struct http_req *r = orch_calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->h = h;
	r->fn = fn;
	r->arg = arg;
	r->easy = curl_easy_init();
	if (!r->easy)
		goto oom;
	CURL *c = r->easy;
	bool bad = false;
	bad |= curl_easy_setopt(c, CURLOPT_URL, o->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PRIVATE, r) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, sockopt_cb) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "orchfs") != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
#if LIBCURL_VERSION_NUM >= 0x075700
	/* a lookup still running when the request ends is left to finish on
	 * its own thread: never joined on ours */
	curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
#endif
	if (o->no_proxy)
		bad |= curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK;
	for (const char *const *hd = o->headers; hd && *hd; hd++) {
		struct curl_slist *l = curl_slist_append(r->hdrs, *hd);
		if (!l)
			goto oom;
		r->hdrs = l;
	}
	if (!strcmp(o->method, "POST")) {
		/* no "Expect: 100-continue" wait for a body over 1 KiB */
		struct curl_slist *l = curl_slist_append(r->hdrs, "Expect:");
		if (!l)
			goto oom;
		r->hdrs = l;
		r->body = orch_malloc(o->body_len + 1);
		if (!r->body)
			goto oom;
		memcpy(r->body, o->body, o->body_len);
		r->body[o->body_len] = '\0';
		bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len) != CURLE_OK;
	} else {
		bad |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	}
	if (r->hdrs)
		bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs) != CURLE_OK;
	if (bad) {
		req_free(r);
		return -EINVAL;
	}
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	/* curl asks for a wake-up at once (timer_fn): the transfer begins on
	 * the loop's next run of its timers, never in here */
	if (curl_multi_add_handle(h->multi, c) != CURLM_OK) {
		req_unlink(h, r);
		req_free(r);
		return -ENOMEM;
	}
	h->started++;
	if (out)
		*out = r;
	return 0;
oom:
	req_free(r);
	return -ENOMEM;
}

void http_cancel(struct http *h, struct http_req *r)
{
	if (!r)
		return;
	req_unlink(h, r);
	if (h->multi)
		curl_multi_remove_handle(h->multi, r->easy);
	req_free(r);
}
