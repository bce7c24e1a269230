/* tests/engine_fixture.h — an engine on a fresh state directory, driven by
 * the test's thread (orch_engine_turn), for the unit tests of core modules
 * that need one. Include after cmocka.h; the test's main() must hand
 * `--exec-step` to orch_exec_step() (the test binary is the trampoline). */
#ifndef ORCH_TEST_ENGINE_FIXTURE_H
#define ORCH_TEST_ENGINE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/exec.h"

struct fixture {
	char dir[64], state[96], mnt[96];
	struct orch_engine *e;
	int port_min, port_max;
	int64_t sb;		/* for tests that make a sandbox */
};

static inline struct orch_engine *fixture_open(struct fixture *f)
{
	struct orch_config cfg = { .exec_helper = "/proc/self/exe", .state_dir = f->state,
				   .mountpoint = f->mnt, .port_min = f->port_min,
				   .port_max = f->port_max };
	struct sbuf err = SBUF_INIT;
	struct orch_engine *e = orch_engine_open(&cfg, &err);
	if (!e)
		fail_msg("engine did not open: %s", sbuf_str(&err));
	sbuf_release(&err);
	return e;
}

/* The engine goes away (as after kill -9: what it committed stays) and a new
 * one opens the same state directory. */
static inline void fixture_reopen(struct fixture *f)
{
	orch_engine_turn(f->e, 0);
	orch_engine_close(f->e);
	f->e = fixture_open(f);
}

/* A fixture in /tmp/orchfs-test-NAME.XXXXXX taking ports LO..HI. */
static inline struct fixture *fixture_new(const char *name, int lo, int hi)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-%s.XXXXXX", name);
	if (!mkdtemp(f->dir)) {
		free(f);
		return NULL;
	}
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->dir);
	mkdir(f->state, 0711);
	mkdir(f->mnt, 0755);
	f->port_min = lo;
	f->port_max = hi;
	f->e = fixture_open(f);
	return f;
}

static inline int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	orch_engine_close(f->e);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* main() of a test binary that is also the step trampoline. */
#define FIXTURE_MAIN_PROLOGUE(argc, argv)                                   \
	do {                                                                \
		if ((argc) > 1 && !strcmp((argv)[1], EXEC_STEP_FLAG))       \
			orch_exec_step((argc), (argv));                     \
		orch_alloc_setup_jansson();                                 \
	} while (0)

#endif
