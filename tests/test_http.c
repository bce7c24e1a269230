/* tests/test_http.c — HTTP over the loop (core/http.h): a request goes out
 * and its answer comes back through loop turns only (http_start never waits
 * and never calls back), the body and headers arrive as given, a status
 * that is not 2xx, no listener, no answer within the timeout, a cancel,
 * and URLs that are refused. The server is a thread of this test on a
 * loopback port. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/http.h"
#include "core/util.h"

/* ---- a one-request-at-a-time server ---- */

struct server {
	int fd, port;
	pthread_t thread;
	int status;		/* to answer; 0: read the request, never answer */
	int answered;
	char request[8192];	/* the last request, head and body */
	size_t reqlen;
	pthread_mutex_t lock;
	int hold[8];		/* connections held open without an answer */
	int nhold;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		char buf[8192];
		size_t n = 0;
		ssize_t k;
		/* the head, then Content-Length bytes of body */
		for (;;) {
			k = read(c, buf + n, sizeof(buf) - 1 - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			buf[n] = '\0';
			char *end = strstr(buf, "\r\n\r\n");
			if (!end)
				continue;
			char *cl = strcasestr(buf, "Content-Length:");
			size_t want = cl ? (size_t)atoi(cl + 15) : 0;
			if (n >= (size_t)(end + 4 - buf) + want)
				break;
		}
		pthread_mutex_lock(&s->lock);
		memcpy(s->request, buf, n);
		s->request[n] = '\0';
		s->reqlen = n;
		int status = s->status;
		pthread_mutex_unlock(&s->lock);
		if (!status) {
			if (s->nhold < 8)
				s->hold[s->nhold++] = c;	/* the client's timeout must end it */
			continue;
		}
		char ans[128];
		int m = snprintf(ans, sizeof(ans), "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
				 status);
		write_all(c, ans, (size_t)m);
		close(c);
		pthread_mutex_lock(&s->lock);
		s->answered++;
		pthread_mutex_unlock(&s->lock);
	}
}

static struct server *server_start(int status)
{
	struct server *s = calloc(1, sizeof(*s));
	s->status = status;
	pthread_mutex_init(&s->lock, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	assert_int_equal(listen(s->fd, 8), 0);
	pthread_create(&s->thread, NULL, serve, s);
	return s;
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->nhold; i++)
		close(s->hold[i]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- the client side ---- */

struct result {
	int calls, status;
	char err[256];
};

static void done(void *arg, int status, const char *err)
{
	struct result *r = arg;
	r->calls++;
	r->status = status;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

/* Turn the loop until R has its answer (at most 10 s). */
static void wait_result(struct loop *l, struct result *r)
{
	int64_t end = clock_mono_ms() + 10000;
	while (!r->calls && clock_mono_ms() < end)
		assert_int_equal(loop_turn(l, 100), 0);
	assert_int_equal(r->calls, 1);
}

static void test_http__post_then_answer_through_the_loop(void **state)
{
	struct server *s = server_start(201);
	struct loop l;
	struct http h;
	assert_int_equal(loop_init(&l, NULL), 0);
	http_init(&h, &l);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", s->port);
	const char *hdrs[] = { "Content-Type: application/json", "X-Test: yes", NULL };
	static const char body[] = "{\"seq\":1}";
	struct result r = { 0 };
	struct http_opts o = { .method = "POST", .url = url, .headers = hdrs, .body = body,
			       .body_len = sizeof(body) - 1, .timeout_ms = 5000 };
	assert_int_equal(http_start(&h, &o, done, &r, NULL), 0);
	/* nothing happens inside http_start: the answer comes by the loop */
	assert_int_equal(r.calls, 0);
	assert_int_equal(http_pending(&h), 1);
	wait_result(&l, &r);
	assert_int_equal(r.status, 201);
	assert_int_equal(http_pending(&h), 0);
	pthread_mutex_lock(&s->lock);
	assert_non_null(strstr(s->request, "POST /hook HTTP/1.1\r\n"));
	assert_non_null(strstr(s->request, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(s->request, "X-Test: yes\r\n"));
	assert_null(strstr(s->request, "Expect:"));
	assert_non_null(strstr(s->request, "\r\n\r\n{\"seq\":1}"));
	pthread_mutex_unlock(&s->lock);
	http_release(&h);
	loop_release(&l);
	server_stop(s);
}

static void test_http__status_and_errors(void **state)
{
	struct server *s = server_start(500);
	struct loop l;
	struct http h;
	assert_int_equal(loop_init(&l, NULL), 0);
	http_init(&h, &l);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	struct result r = { 0 };
	struct http_opts o = { .method = "GET", .url = url, .timeout_ms = 5000 };
	assert_int_equal(http_start(&h, &o, done, &r, NULL), 0);
	wait_result(&l, &r);
	assert_int_equal(r.status, 500);	/* a status, whatever it is */

	/* no one listens: no status, and curl's words for why */
	int port = s->port;
	server_stop(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	memset(&r, 0, sizeof(r));
	assert_int_equal(http_start(&h, &o, done, &r, NULL), 0);
	wait_result(&l, &r);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "onnect"));

	/* not http(s), not a URL */
	o.url = "ftp://127.0.0.1/";
	assert_int_equal(http_start(&h, &o, done, &r, NULL), -EINVAL);
	o.url = "file:///etc/passwd";
	assert_int_equal(http_start(&h, &o, done, &r, NULL), -EINVAL);
	o.url = "http://";
	assert_int_equal(http_start(&h, &o, done, &r, NULL), -EINVAL);
	assert_int_equal(http_pending(&h), 0);
	http_release(&h);
	loop_release(&l);
}

static void test_http__timeout_and_cancel(void **state)
{
	struct server *s = server_start(0);	/* reads, never answers */
	struct loop l;
	struct http h;
	assert_int_equal(loop_init(&l, NULL), 0);
	http_init(&h, &l);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	struct result r = { 0 };
	struct http_opts o = { .method = "GET", .url = url, .timeout_ms = 300 };
	int64_t t0 = clock_mono_ms();
	assert_int_equal(http_start(&h, &o, done, &r, NULL), 0);
	wait_result(&l, &r);
	assert_true(clock_mono_ms() - t0 >= 300);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "imed out"));

	/* a cancelled request never calls back, and leaves nothing behind */
	struct result c = { 0 };
	struct http_req *req;
	o.timeout_ms = 200;
	assert_int_equal(http_start(&h, &o, done, &c, &req), 0);
	for (int i = 0; i < 3; i++)
		loop_turn(&l, 20);
	http_cancel(&h, req);
	assert_int_equal(http_pending(&h), 0);
	int64_t end = clock_mono_ms() + 500;
	while (clock_mono_ms() < end)
		loop_turn(&l, 50);
	assert_int_equal(c.calls, 0);
	http_release(&h);
	loop_release(&l);
	server_stop(s);
}

/* Requests still in flight at release: freed, never called back. */
static void test_http__release_in_flight(void **state)
{
	struct server *s = server_start(0);
	struct loop l;
	struct http h;
	assert_int_equal(loop_init(&l, NULL), 0);
	http_init(&h, &l);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	struct result r = { 0 };
	struct http_opts o = { .method = "POST", .url = url, .body = "x", .body_len = 1, .timeout_ms = 5000 };
	for (int i = 0; i < 3; i++)
		assert_int_equal(http_start(&h, &o, done, &r, NULL), 0);
	for (int i = 0; i < 5; i++)
		loop_turn(&l, 20);
	assert_int_equal(http_pending(&h), 3);
	http_release(&h);
	assert_int_equal(r.calls, 0);
	loop_release(&l);
	server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http__post_then_answer_through_the_loop),
		cmocka_unit_test(test_http__status_and_errors),
		cmocka_unit_test(test_http__timeout_and_cancel),
		cmocka_unit_test(test_http__release_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
