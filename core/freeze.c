/* core/freeze.c — a sandbox's pause (SPEC §10 "Pause freezes", and §9's
 * on_end pause, which is the same freeze).
 *
 * A sandbox is frozen while a user's `pause` (sb->paused, kept as the
 * state "paused" of its row in table sandboxes) or its window's end
 * (win_paused(), table windows) holds it. Frozen, its runs are paused (no
 * step starts; the runs the freeze paused are the rows of table
 * window_paused_runs, named for the window that used it first) and every
 * live attempt's processes are stopped: by the cgroup freezer where the
 * attempt has a leaf with one (limits), else by SIGSTOP to each process of
 * the step's tree (run_freeze() in run.c). Their timeout and heartbeat
 * clocks stop with them. `resume` lifts both holds: the processes go on,
 * the runs the freeze paused resume (not those a user had paused).
 *
 * Durable: the rows survive kill -9. The processes do not (a restarted
 * daemon kills a dead one's steps and runs their attempts again), so after
 * a restart a paused sandbox's runs are paused and start nothing until
 * `resume`.
 *
 * Engine thread only. */
#include <errno.h>

#include "core/engine_i.h"

bool sb_frozen(const struct sandbox *sb)
{
	return sb->paused || (sb->win && win_paused(sb));
}

void sb_freeze(struct orch_engine *e, struct sandbox *sb)
{
	for (struct run *r = e->active_head; r; r = r->next)
		if (r->sb == sb && run_freeze(e, r, true, false))
			store_exec(&e->st, "INSERT OR REPLACE INTO window_paused_runs(run, sandbox) VALUES(?, ?)",
				   "ii", r->rowid, sb->rowid);
}

void sb_thaw(struct orch_engine *e, struct sandbox *sb)
{
	for (struct run *r = e->active_head; r; r = r->next)
		if (r->sb == sb)
			run_freeze(e, r, false,
				   store_int(&e->st, "SELECT 1 FROM window_paused_runs WHERE run = ?", 0, "i",
					     r->rowid) == 1);
	store_exec(&e->st, "DELETE FROM window_paused_runs WHERE sandbox = ?", "i", sb->rowid);
}

int sb_ctl_pause(struct orch_engine *e, struct sandbox *sb)
{
	if (sb->paused || sb->stopped)
		return -EINVAL;	/* paused already; a stopped one has nothing to freeze */
	sb->paused = true;
	int rc = sb_save(e, sb);
	if (rc) {
		sb->paused = false;
		return rc;
	}
	if (!(sb->win && win_paused(sb)))
		sb_freeze(e, sb);	/* a window's pause froze it already */
	ev_emit(e, "sandbox.paused", NULL, NULL, sb, NULL);
	orch_need_durable(e);
	return 0;
}

int sb_ctl_resume(struct orch_engine *e, struct sandbox *sb)
{
	bool win = sb->win && win_paused(sb);
	if (!sb->paused && !win)
		return -EINVAL;
	if (sb->paused) {
		sb->paused = false;
		int rc = sb_save(e, sb);
		if (rc) {
			sb->paused = true;
			return rc;
		}
	}
	if (win)
		return win_ctl_resume(e, sb);	/* it thaws and says so */
	sb_thaw(e, sb);
	ev_emit(e, "sandbox.resumed", NULL, NULL, sb, NULL);
	e->sched_all = true;
	orch_need_durable(e);
	return 0;
}
