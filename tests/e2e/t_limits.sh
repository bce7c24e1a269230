#!/usr/bin/env bash
# Per-user limits (issue 12, finding 7; README "Limits"): one user cannot
# take what all users share. Past each limit of --config's "limits" a
# request of that user fails with EDQUOT ("Disk quota exceeded"): mkdir of a
# sandbox, a plan's submission (NAME.error names the user, the count, the
# limit and the setting), an append to messages, a write or a new file in
# plans/. The refusal is in the daemon's log; another user is not touched;
# root is exempt unless "apply_to_root"; the counts survive a restart and
# come back when things go away. A bad "limits" setting stops the start.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2

EDQ='Disk quota exceeded'
cat >"$T/cfg.json" <<'EOF'
{"limits": {"sandboxes": 2, "ports": 3, "active_runs": 2, "active_steps": 5,
            "queued_messages": 4, "plan_files": 6, "plan_bytes": 4096}}
EOF
start_fs -o allow_other,default_permissions --config "$T/cfg.json"

# refused CMD...: CMD fails with EDQUOT (its stderr in $T/err)
refused() { ! "$@" 2>"$T/err" && grep -q "$EDQ" "$T/err"; }
# logged TEXT: the daemon's log says TEXT
logged() { grep -qF -- "$1" "$T/daemon.log"; }
# psub USER NAME JSON: USER drops the plan NAME.json (stderr in $T/err)
psub() {
  printf '%s\n' "$3" >"$T/$2.src"; chmod 0644 "$T/$2.src"
  as "$1" cp "$T/$2.src" "$M/plans/$2.json" 2>"$T/err"
}
sleeper() { plan "{\"sandbox\": {\"id\": \"$1\"}}" "$(step a 'sleep 600')"; }

# ---- sandboxes (and so ports): mkdir past the limit
as $U1 mkdir "$M/sandboxes/a1" "$M/sandboxes/a2" || fail "$U1 could not make 2 sandboxes"
refused as $U1 mkdir "$M/sandboxes/a3" || fail "a third sandbox of $U1: want EDQUOT, got: $(cat "$T/err")"
[ ! -e "$M/sandboxes/a3" ] || fail "the refused sandbox exists"
logged "refused: user \"$U1\" has 2 sandboxes; 1 more would pass the limit of 2 (limits.sandboxes in --config)" \
  || fail "no log line for the refused mkdir: $(tail -3 "$T/daemon.log")"
as $U2 mkdir "$M/sandboxes/b1" || fail "$U2 could not make a sandbox while $U1 is at the limit"
mkdir "$M/sandboxes/r1" "$M/sandboxes/r2" "$M/sandboxes/r3" || fail "root is limited"
# a plan's own new sandbox counts too, with its ports
psub $U2 ports "$(plan '{"sandbox": {"id": "b2", "ports": 3}}' "$(step a true)")" \
  && fail "a sandbox of 3 ports beside one of 1: want EDQUOT (limits.ports 3)"
grep -q "$EDQ" "$T/err" || fail "ports: cp said: $(cat "$T/err")"
grep -qx "user \"$U2\" has 1 port; 3 more would pass the limit of 3 (limits.ports in --config)" "$M/plans/ports.error" \
  || fail "ports.error: $(cat "$M/plans/ports.error")"
[ ! -e "$M/sandboxes/b2" ] || fail "the refused plan made its sandbox"

# ---- active runs and their steps
psub $U1 r "$(sleeper a1)" || fail "$U1's first run: $(cat "$T/err")"
psub $U1 r "$(sleeper a1)" || fail "$U1's second run: $(cat "$T/err")"
psub $U1 r "$(sleeper a1)" && fail "a third active run of $U1 was accepted"
grep -q "$EDQ" "$T/err" || fail "active runs: cp said: $(cat "$T/err")"
grep -qx "user \"$U1\" has 2 active runs; 1 more would pass the limit of 2 (limits.active_runs in --config)" "$M/plans/r.error" \
  || fail "r.error: $(cat "$M/plans/r.error")"
[ ! -e "$M/runs/r-3" ] || fail "the refused run exists"
psub $U2 big "$(plan '{"sandbox": {"id": "b1"}}' $(for i in 1 2 3 4 5 6; do step "s$i" true; done))" \
  && fail "6 steps past limits.active_steps 5 were accepted"
grep -qx "user \"$U2\" has 0 steps in active runs; 6 more would pass the limit of 5 (limits.active_steps in --config)" \
  "$M/plans/big.error" || fail "big.error: $(cat "$M/plans/big.error")"
psub $U2 ok "$(sleeper b1)" || fail "$U2 could not submit while $U1 is at the limit: $(cat "$T/err")"
for i in 1 2 3; do must_submit "root$i" "$(sleeper r1)"; done
# a finished run gives back
echo cancel >"$M/runs/r-1/ctl" || fail "cancel r-1"
wait_for 20 is_run_state r-1 cancelled || fail "r-1 was not cancelled"
psub $U1 r "$(sleeper a1)" || fail "$U1 could not submit after a run finished: $(cat "$T/err")"
[ ! -e "$M/plans/r.error" ] || fail "r.error stayed after an accepted submission"

# ---- queued messages
for i in 1 2 3 4; do as $U1 bash -c "echo m$i >>'$M/sandboxes/a2/messages'" || fail "message $i of $U1 refused"; done
refused as $U1 bash -c "echo m5 >>'$M/sandboxes/a2/messages'" || fail "a 5th queued message: want EDQUOT, got: $(cat "$T/err")"
logged "refused: user \"$U1\" has 4 queued messages; 1 more would pass the limit of 4 (limits.queued_messages in --config)" \
  || fail "no log line for the refused message"
# all or nothing: a write of 2 lines beside 3 queued
as $U2 bash -c "printf 'x\ny\nz\n' >>'$M/sandboxes/b1/messages'" || fail "$U2's messages refused"
refused as $U2 bash -c "/usr/bin/printf 'p\\nq\\n' >>'$M/sandboxes/b1/messages'" \
  || fail "a write of 2 messages beside 3 queued: want EDQUOT, got: $(cat "$T/err")"
[ "$(jq .messages.queued "$M/sandboxes/b1/status")" -eq 3 ] || fail "a refused write of 2 lines queued some of them"
for i in 1 2 3 4 5 6; do echo "root $i" >>"$M/sandboxes/r2/messages" || fail "root's message $i refused"; done
# delivered, they no longer count
as $U1 cat "$M/sandboxes/a2/inbox" >/dev/null || fail "$U1 could not read its inbox"
as $U1 bash -c "echo m5 >>'$M/sandboxes/a2/messages'" || fail "$U1 could not queue a message after delivery"

# ---- files and bytes in plans/
head -c 3000 /dev/zero | tr '\0' x >"$T/3k"; chmod 0644 "$T/3k"
as $U1 cp "$T/3k" "$M/plans/f1.txt" || fail "$U1 could not write 3000 bytes"
refused as $U1 cp "$T/3k" "$M/plans/f2.txt" || fail "6000 bytes past limits.plan_bytes 4096: want EDQUOT, got: $(cat "$T/err")"
grep -qE "refused: user \"$U1\" has [0-9]+ bytes in plans/; 3000 more would pass the limit of 4096 \(limits.plan_bytes in --config\)" \
  "$T/daemon.log" || fail "no log line for the refused write: $(tail -3 "$T/daemon.log")"
as $U2 cp "$T/3k" "$M/plans/g1.txt" || fail "$U2 could not write while $U1 is at the limit"
cp "$T/3k" "$M/plans/h1.txt" && cp "$T/3k" "$M/plans/h2.txt" || fail "root is limited in plans/"
as $U1 rm -f "$M/plans/f1.txt" "$M/plans/f2.txt"
as $U1 cp "$T/3k" "$M/plans/f3.txt" || fail "$U1 could not write after removing its files"
# O_TRUNC gives back too
as $U1 sh -c ": >'$M/plans/f3.txt'" && as $U1 cp "$T/3k" "$M/plans/f4.txt" || fail "truncating did not give bytes back"
# files: r.json, r.error is not a file; f3, f4 and up to 6
n=$(find "$M/plans" -maxdepth 1 -user "$U1" -type f | wc -l)
for i in $(seq $((n + 1)) 6); do as $U1 touch "$M/plans/e$i" || fail "file $i of $U1 refused"; done
refused as $U1 touch "$M/plans/e7" || fail "a 7th file: want EDQUOT, got: $(cat "$T/err")"

# ---- the counts come back at start
stop_fs
start_fs -o allow_other,default_permissions --config "$T/cfg.json"
refused as $U1 mkdir "$M/sandboxes/a3" || fail "after a restart: a third sandbox of $U1 was made"
for i in 2 3 4; do as $U1 bash -c "echo m >>'$M/sandboxes/a2/messages'" || fail "after a restart: $U1's message $i refused"; done
refused as $U1 bash -c "echo m >>'$M/sandboxes/a2/messages'" || fail "after a restart: a 5th message was queued"
psub $U1 r "$(sleeper a1)" && fail "after a restart: a third active run of $U1 was accepted"
# a finished run made unfinished again by retry counts too
refused as $U1 bash -c "echo retry >'$M/runs/r-1/ctl'" || fail "retry past limits.active_runs: want EDQUOT, got: $(cat "$T/err")"
is_run_state r-1 cancelled || fail "the refused retry changed r-1: $(run_state r-1)"
refused as $U1 touch "$M/plans/e8" || fail "after a restart: a 7th file was made"
as $U2 mkdir "$M/sandboxes/b3" || fail "after a restart: $U2 could not make a second sandbox"
# a removed sandbox gives back (with its queued messages)
as $U1 rmdir "$M/sandboxes/a2" || fail "$U1 could not remove a2"
as $U1 mkdir "$M/sandboxes/a3" || fail "$U1 could not make a sandbox after removing one"
as $U1 bash -c "echo m >>'$M/sandboxes/a3/messages'" || fail "the messages of a removed sandbox still count"

# ---- root too, when the config says so
stop_fs
cat >"$T/cfg2.json" <<'EOF'
{"limits": {"sandboxes": 2, "apply_to_root": true}}
EOF
start_fs --config "$T/cfg2.json"
refused mkdir "$M/sandboxes/r4" || fail "apply_to_root: root's 4th sandbox: want EDQUOT, got: $(cat "$T/err")"
logged 'refused: user "root" has 3 sandboxes' || fail "no log line for root's refused mkdir"
stop_fs

# ---- bad settings stop the start, with one clear line
bad() { # JSON WANT
  printf '%s\n' "$1" >"$T/bad.json"
  "$ORCHFS" -f --state "$S" --config "$T/bad.json" "$M" >"$T/out" 2>&1 && fail "orchfs started with $1"
  grep -qF -- "$2" "$T/out" || fail "with $1: want '$2', got: $(cat "$T/out")"
  ! mounted "$M" || fail "with $1 orchfs left a mount"
}
bad '{"limits": {"sandboxez": 3}}' "config $T/bad.json: unknown limit \"sandboxez\" in \"limits\" (known: sandboxes, ports, active_runs, active_steps, queued_messages, plan_files, plan_bytes, open_files, apply_to_root)"
bad '{"limits": {"sandboxes": "3"}}' 'limits.sandboxes must be a whole number (0: no limit), not a string'
bad '{"limits": {"plan_bytes": -1}}' 'limits.plan_bytes must be a whole number (0: no limit), not a negative one'
bad '{"limits": {"active_runs": 1.5}}' 'limits.active_runs must be a whole number (0: no limit), not a fraction'
bad '{"limits": {"apply_to_root": 1}}' 'limits.apply_to_root must be true or false'
bad '{"limits": [1]}' '"limits" must be an object such as {"sandboxes": 256}, not an array'
exit 0
