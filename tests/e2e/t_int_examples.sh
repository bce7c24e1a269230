#!/usr/bin/env bash
# The examples a user copies first (issue 14), each run on a real mount as
# the README says: examples/safe-merge.json (and its failing branch),
# examples/fan-out.json, and examples/prometheus/orchfs-metrics.sh writing
# MOUNT/metrics into a textfile-collector directory atomically.
. "$(dirname "$0")/lib.sh"

ex=$(cd "$(dirname "$E2E_LIB")/../../examples" && pwd)
command -v git >/dev/null || fail "the safe-merge example needs git (scripts/install-deps.sh installs it)"
start_fs

# ---- safe-merge: fetch (its first attempt fails on purpose), test, lint
# (advisory, fails), merge, push, on a repository its first step makes
cp "$ex/safe-merge.json" "$M/plans/" || fail "cp safe-merge.json: the plan is invalid: $(cat "$M/plans/safe-merge.error")"
# the same plan on the branch whose test fails: the merge and the push are skipped
sed 's/"BRANCH": "feature"/"BRANCH": "broken"/' "$ex/safe-merge.json" >"$T/broken.json"
grep -q '"BRANCH": "broken"' "$T/broken.json" || fail "the example no longer has variables.BRANCH \"feature\""
cp "$T/broken.json" "$M/plans/safe-merge-broken.json" || fail "cp of the broken variant: $(cat "$M/plans/safe-merge-broken.error")"
cp "$ex/fan-out.json" "$M/plans/" || fail "cp fan-out.json: $(cat "$M/plans/fan-out.error")"

expect_run safe-merge-1 succeeded 60
expect_step safe-merge-1 fetch succeeded
[ "$(step_field safe-merge-1 fetch attempt)" = 2 ] || fail "fetch: attempt $(step_field safe-merge-1 fetch attempt), want 2 (the first fails)"
grep -q 'connection reset' "$M/runs/safe-merge-1/steps/fetch/log" || fail "fetch log: $(cat "$M/runs/safe-merge-1/steps/fetch/log")"
expect_step safe-merge-1 test succeeded
grep -qx 'ok: mul' "$M/runs/safe-merge-1/steps/test/log" || fail "test log: $(cat "$M/runs/safe-merge-1/steps/test/log")"
expect_step safe-merge-1 lint failed   # not critical, on_failure continue: the merge went on
grep -q 'TODO' "$M/runs/safe-merge-1/steps/lint/log" || fail "lint log: $(cat "$M/runs/safe-merge-1/steps/lint/log")"
expect_step safe-merge-1 merge succeeded
expect_step safe-merge-1 push succeeded
w=$(ws safe-merge-1)
[ "$(git -C "$w/origin.git" log -1 --format=%s main)" = "Merge branch 'feature' (tested by safe-merge-1)" ] \
  || fail "origin main: $(git -C "$w/origin.git" log --oneline -3 main 2>&1)"
git -C "$w/origin.git" show main:calc.sh | grep -q '^mul()' || fail "origin main lacks the feature"

expect_run safe-merge-broken-1 failed 60
expect_step safe-merge-broken-1 test failed
[ "$(step_field safe-merge-broken-1 test attempt)" = 2 ] || fail "broken test: attempt $(step_field safe-merge-broken-1 test attempt), want 2 (retries 1)"
grep -q 'FAIL: add 2 2 gives 0' "$M/runs/safe-merge-broken-1/steps/test/log" || fail "broken test log: $(cat "$M/runs/safe-merge-broken-1/steps/test/log")"
expect_step safe-merge-broken-1 lint succeeded
expect_step safe-merge-broken-1 merge skipped
expect_step safe-merge-broken-1 push skipped
w=$(ws safe-merge-broken-1)
[ "$(git -C "$w/origin.git" log -1 --format=%s main)" = "calc: add, and its test" ] \
  || fail "the broken branch reached origin main: $(git -C "$w/origin.git" log --oneline -3 main 2>&1)"

# ---- fan-out: 4 shards counted side by side, joined and checked
expect_run fan-out-1 succeeded 60
for n in 0 1 2 3; do
  expect_step fan-out-1 "count-$n" succeeded
  # each count started once split had ended, and join once every count had
  [ "$(iso_ms "$(step_field fan-out-1 "count-$n" started_at)")" -ge "$(iso_ms "$(step_field fan-out-1 split finished_at)")" ] \
    || fail "count-$n started before split finished"
  [ "$(iso_ms "$(step_field fan-out-1 join started_at)")" -ge "$(iso_ms "$(step_field fan-out-1 "count-$n" finished_at)")" ] \
    || fail "join started before count-$n finished"
done
grep -qx 'join: all 200000 requests counted once' "$M/runs/fan-out-1/steps/join/log" \
  || fail "join log: $(cat "$M/runs/fan-out-1/steps/join/log")"
[ "$(jq -c '.depends_on' "$M/runs/fan-out-1/steps/join/status")" = '["count-0","count-1","count-2","count-3"]' ] \
  || fail "join depends on $(jq -c .depends_on "$M/runs/fan-out-1/steps/join/status")"

# ---- Prometheus textfile collector: atomic, and orchfs_up 0 when orchfs is down
tf=$T/textfile
mkdir "$tf"
"$ex/prometheus/orchfs-metrics.sh" "$M" "$tf" 2>"$T/prom.err" || fail "orchfs-metrics.sh: $(cat "$T/prom.err")"
[ "$(ls -A "$tf")" = orchfs.prom ] || fail "the textfile directory holds: $(ls -A "$tf")"
[ "$(stat -c %a "$tf/orchfs.prom")" = 644 ] || fail "orchfs.prom mode $(stat -c %a "$tf/orchfs.prom")"
grep -qx 'orchfs_up 1' "$tf/orchfs.prom" || fail "no orchfs_up 1: $(tail -3 "$tf/orchfs.prom")"
grep -qx 'orchfs_runs_created_total 3' "$tf/orchfs.prom" || fail "no orchfs_runs_created_total 3: $(grep runs_created "$tf/orchfs.prom")"
grep -q '^orchfs_runs{state="succeeded"} 2$' "$tf/orchfs.prom" || fail "runs by state: $(grep '^orchfs_runs{' "$tf/orchfs.prom")"
# every line is a comment or a sample (the exposition format)
bad=$(grep -vE '^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+Inf-]+)$' "$tf/orchfs.prom")
[ -z "$bad" ] || fail "not Prometheus text format: $bad"
# a reader meanwhile only ever sees a whole file (written to a .tmp and renamed)
( for i in $(seq 1 30); do "$ex/prometheus/orchfs-metrics.sh" "$M" "$tf" || exit 1; done; touch "$T/prom.done" ) &
writer=$!
reads=0
while [ ! -e "$T/prom.done" ]; do
  text=$(cat "$tf/orchfs.prom")
  [ "${text##*$'\n'}" = 'orchfs_up 1' ] \
    || fail "a reader saw a partial orchfs.prom (ends: '${text: -40}')"
  case $text in '# HELP orchfs_'*) ;; *) fail "a reader saw orchfs.prom begin with: ${text:0:40}" ;; esac
  reads=$((reads + 1))
  kill -0 "$writer" 2>/dev/null || [ -e "$T/prom.done" ] || fail "the writer loop failed"
done
wait "$writer" || fail "orchfs-metrics.sh failed in the loop"
[ "$(ls -A "$tf")" = orchfs.prom ] || fail "left behind: $(ls -A "$tf")"
note "$reads reads of orchfs.prom while it was rewritten 30 times"

stop_fs
"$ex/prometheus/orchfs-metrics.sh" "$M" "$tf" 2>"$T/prom.err" || fail "orchfs-metrics.sh with orchfs down exited $?"
[ "$(grep -v '^#' "$tf/orchfs.prom")" = 'orchfs_up 0' ] || fail "with orchfs down: $(cat "$tf/orchfs.prom")"
grep -q 'cannot read' "$T/prom.err" || fail "with orchfs down it said nothing on stderr"
[ "$(ls -A "$tf")" = orchfs.prom ] || fail "left behind: $(ls -A "$tf")"
exit 0
