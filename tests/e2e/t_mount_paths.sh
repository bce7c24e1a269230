#!/usr/bin/env bash
# A step whose command or PATH lie inside orchfs's own mount (its cwd, beneath
# the workspace, never does): the engine must never touch such a path itself
# (it would wait on a FUSE request only it can answer). The steps run, and
# the mount stays responsive.
. "$(dirname "$0")/lib.sh"
start_fs

# an unconfined sandbox (a bwrap one sees no mount but its own directory)
must_submit mk '{"sandbox": {"id": "box", "isolation": "none"}, "steps": [{"id": "s", "command": "true"}]}'
expect_run mk-1 succeeded
W=$(sb_field box workspace)
printf '#!/bin/sh\necho "script ran in $(pwd)"\n' >"$W/x.sh"
chmod +x "$W/x.sh"
mkdir -p "$W/sub"
p=$(jq -cn '{sandbox: {id: "box"}, steps: [
  {id: "cmd", command: "${MOUNT}/sandboxes/box/workspace/x.sh"},
  {id: "cwd", command: "${MOUNT}/sandboxes/box/workspace/x.sh", cwd: "sub", depends_on: ["cmd"]},
  {id: "path", command: "x.sh", env: {PATH: "${MOUNT}/sandboxes/box/workspace:/usr/bin:/bin"}, depends_on: ["cwd"]}
]}')
must_submit mp "$p"
# the mount answers while the steps start (timeout: a hung engine fails here)
for _ in 1 2 3 4 5; do
  timeout 5 cat "$M/runs/mp-1/status" >/dev/null || fail "the mount stopped answering"
  sleep 0.1
done
expect_run mp-1 succeeded 20
grep -q 'script ran in' "$M/runs/mp-1/steps/cmd/log" || fail "cmd log: $(cat "$M/runs/mp-1/steps/cmd/log")"
grep -q "script ran in .*/workspace/sub$" "$M/runs/mp-1/steps/cwd/log" || fail "cwd log: $(cat "$M/runs/mp-1/steps/cwd/log")"
grep -q 'script ran in' "$M/runs/mp-1/steps/path/log" || fail "path log: $(cat "$M/runs/mp-1/steps/path/log")"

# a command that does not exist (inside the mount or not) is a failed attempt
p=$(jq -cn '{sandbox: {id: "box"}, steps: [{id: "nx", command: "${MOUNT}/sandboxes/box/workspace/missing"}]}')
must_submit nx "$p"
expect_run nx-1 failed 20
expect_field nx-1 nx '.exit_code == 127 and .reason == "spawn_failed"'
grep -q 'cannot run' "$M/runs/nx-1/steps/nx/log" || fail "no reason in the log: $(cat "$M/runs/nx-1/steps/nx/log")"
stop_fs
