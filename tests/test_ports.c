/* tests/test_ports.c — the port allocator: no port held twice, a freed port
 * comes back, and allocations survive reopening the state directory. */
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

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports__no_port_twice_then_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__freed_port_comes_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__persist_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports__skips_a_port_someone_else_holds, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
