/* tests/test_ports.c — the port allocator: no port held twice, a freed port
 * comes back, and allocations survive reopening the state directory; named
 * ports keep their names and places. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/engine_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("ports", 33000, 33004);
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state) { return fixture_teardown(state); }

/* The ports of sandbox NAME, from its status. */
static int ports_of(struct fixture *f, const char *name, int *out, int max)
{
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(f->e, name, &a), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_sandbox_render(f->e, a.rowid, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	json_t *p = json_object_get(j, "ports");
	int n = 0;
	for (size_t i = 0; i < json_array_size(p) && n < max; i++)
		out[n++] = (int)json_integer_value(json_array_get(p, i));
	json_decref(j);
	sbuf_release(&sb);
	return n;
}

static int64_t create(struct fixture *f, const char *name)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_create(f->e, name, getuid(), getgid(), &a);
	orch_engine_turn(f->e, 0);
	return rc ? rc : a.rowid;
}

static void test_ports__no_port_twice_then_exhausted(void **state)
{
	struct fixture *f = *state;
	char name[16];
	int seen[8] = { 0 };
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_true(create(f, name) > 0);
		int p;
		assert_int_equal(ports_of(f, name, &p, 1), 1);
		assert_true(p >= f->port_min && p <= f->port_max);
		assert_int_equal(seen[p - f->port_min]++, 0);
	}
	assert_int_equal(create(f, "s5"), -ENOSPC);	/* the range is used up */
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(f->e, "s5", &a), -ENOENT);	/* nothing half made */
}

static void test_ports__freed_port_comes_back(void **state)
{
	struct fixture *f = *state;
	char name[16];
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_true(create(f, name) > 0);
	}
	int p2;
	ports_of(f, "s2", &p2, 1);
	struct orch_sandbox_attr a;
	orch_sandbox_by_name(f->e, "s2", &a);
	assert_int_equal(orch_sandbox_remove(f->e, a.rowid), 0);
	orch_engine_turn(f->e, 0);
	assert_true(create(f, "again") > 0);
	int p;
	ports_of(f, "again", &p, 1);
	assert_int_equal(p, p2);
}

static void test_ports__persist_across_reopen(void **state)
{
	struct fixture *f = *state;
	assert_true(create(f, "a") > 0);
	assert_true(create(f, "b") > 0);
	int pa, pb;
	ports_of(f, "a", &pa, 1);
	ports_of(f, "b", &pb, 1);
	orch_engine_close(f->e);
	f->e = fixture_open(f);
	int qa, qb;
	ports_of(f, "a", &qa, 1);
	ports_of(f, "b", &qb, 1);
	assert_int_equal(pa, qa);
	assert_int_equal(pb, qb);
	assert_true(create(f, "c") > 0);
	int pc;
	ports_of(f, "c", &pc, 1);
	assert_int_not_equal(pc, pa);
	assert_int_not_equal(pc, pb);
}

static void test_ports__skips_a_port_someone_else_holds(void **state)
{
	struct fixture *f = *state;
	/* the next port the allocator would hand out is bound by another program */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port_min) };
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(create(f, "x") > 0);
	int p;
	ports_of(f, "x", &p, 1);
	assert_int_not_equal(p, f->port_min);
	close(fd);
}

/* plans/NAME.json written and closed, as `cp` does, then committed. */
static int submit(struct orch_engine *e, const char *name, const char *text)
{
	char fname[128];
	struct orch_pentry p;
	snprintf(fname, sizeof(fname), "%s.json", name);
	int rc = orch_plans_lookup(e, fname, &p);
	if (rc)
		rc = orch_plans_create(e, fname, 0644, getuid(), getgid(), &p);
	assert_int_equal(rc, 0);
	char *path = orch_plans_path(e, p.id);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	orch_free(path);
	rc = orch_plans_written(e, p.id, getuid(), getgid());
	orch_engine_turn(e, 0);
	return rc;
}

/* The status of sandbox NAME (new reference). */
static json_t *sb_status(struct fixture *f, const char *name)
{
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(f->e, name, &a), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_sandbox_render(f->e, a.rowid, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	assert_non_null(j);
	sbuf_release(&sb);
	return j;
}

/* Named ports (SPEC §11): "api" is the first port the allocator hands out
 * and "web" the next, also when the range wraps around between them (the
 * number of web is then the lower); they keep their names and places
 * across a reopen, status shows them as an object with their urls. */
static void test_ports__named_keep_their_place(void **state)
{
	struct fixture *f = *state;
	char name[16];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_true(create(f, name) > 0);	/* port_min + i */
	}
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(f->e, "s0", &a), 0);
	assert_int_equal(orch_sandbox_remove(f->e, a.rowid), 0);
	orch_engine_turn(f->e, 0);
	assert_int_equal(submit(f->e, "svc", "{\"sandbox\": {\"id\": \"svc\", \"ports\": [\"api\", \"web\"]},"
				" \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}"),
			 0);
	for (int round = 0; round < 2; round++) {
		json_t *j = sb_status(f, "svc");
		json_t *ports = json_object_get(j, "ports"), *urls = json_object_get(j, "urls");
		assert_true(json_is_object(ports));
		assert_int_equal(json_object_size(ports), 2);
		assert_int_equal(json_integer_value(json_object_get(ports, "api")), f->port_max);
		assert_int_equal(json_integer_value(json_object_get(ports, "web")), f->port_min);
		char want[64];
		snprintf(want, sizeof(want), "http://127.0.0.1:%d/", f->port_max);
		assert_string_equal(json_string_value(json_object_get(urls, "api")), want);
		assert_int_equal(json_object_size(urls), 2);
		json_decref(j);
		fixture_reopen(f);
	}
	/* unnamed ports stay an array, with no urls */
	json_t *j = sb_status(f, "s1");
	assert_true(json_is_array(json_object_get(j, "ports")));
	assert_int_equal(json_object_size(json_object_get(j, "urls")), 0);
	json_decref(j);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports__no_port_twice_then_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__freed_port_comes_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__persist_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__skips_a_port_someone_else_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__named_keep_their_place, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
