#!/usr/bin/env bash
# Sandbox isolation (SPEC 5): by default (bubblewrap works here) a step runs
# under bwrap and sees the system read-only, its workspace read-write at its
# own path, a private /tmp, the state directory and the mount hidden except its
# own workspace and MOUNT/sandboxes/ID ($ORCHFS_SANDBOX); "network": false
# leaves only loopback; "isolation": "none" runs unsandboxed.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/other" || fail "mkdir sandboxes/other failed"
OW=$(ws other)
[ -d "$OW" ] || fail "the workspace of sandbox other ($OW) does not exist"
[ "$(readlink "$M/sandboxes/other/workspace")" = "$OW" ] || fail "sandboxes/other/workspace links to $(readlink "$M/sandboxes/other/workspace"), want $OW"
if mkdir "$M/sandboxes/other" 2>/dev/null; then fail "mkdir of an existing sandbox succeeded"; fi
for bad in 'a.b' 'sp ace' "$(printf 'x%.0s' $(seq 81))"; do
  if mkdir "$M/sandboxes/$bad" 2>/dev/null; then fail "mkdir of a sandbox with the bad id '$bad' succeeded"; fi
done
[ "$(ls "$M/sandboxes")" = other ] || fail "sandboxes/ holds: $(ls "$M/sandboxes")"
is_sb_field other isolation bwrap || fail "default isolation is '$(sb_field other isolation)', want bwrap (bubblewrap works here)"

[ -e "/proc/$DPID/cmdline" ] || fail "cannot see the daemon's /proc entry from the test"
PRIV=/tmp/orchfs-e2e-sbpriv.$(basename "$T")
rm -f "$PRIV" /etc/orchfs-e2e-evil

# each probe prints NAME=yes when its command succeeds, NAME=no when it fails
PROBES='probe() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=yes"; else echo "$n=no"; fi; }'
ISO=$PROBES'
{
  probe etc      sh -c "echo x >/etc/orchfs-e2e-evil"
  probe state    sh -c "echo x >\"\$S/evil\""
  probe otherws  sh -c "echo x >\"\$OW/evil\""
  probe plans    sh -c "echo \"{\\\"steps\\\": [{\\\"id\\\": \\\"x\\\", \\\"command\\\": \\\"true\\\"}]}\" >\"\$M/plans/evil.json\""
  probe ws       sh -c "echo inside >\"\$ORCHFS_WORKSPACE/ws.txt\""
  probe pwd      test "$(pwd)" = "$ORCHFS_WORKSPACE"
  probe tmp      sh -c "echo private >\"\$PRIV\" && test -s \"\$PRIV\""
  probe hosttmp  test -e "$T/daemon.log"
  probe hostpid  test -e "/proc/$DAEMON/cmdline"
  probe sbvar    test "$ORCHFS_SANDBOX" = "$M/sandboxes/iso-1"
  probe status   sh -c "jq -e \".id == \\\"iso-1\\\"\" \"\$ORCHFS_SANDBOX/status\""
  probe post     sh -c "echo \"{\\\"event_type\\\": \\\"iso.posted\\\"}\" >>\"\$ORCHFS_SANDBOX/events\""
  probe runs     ls "$M/runs"
  probe runstat  cat "$M/runs/iso-1/status"
  probe othersb  cat "$M/sandboxes/other/status"
} >report'
ENV=$(jq -cn --arg S "$S" --arg M "$M" --arg OW "$OW" --arg T "$T" --arg PRIV "$PRIV" --arg D "$DPID" \
  '{env: {S: $S, M: $M, OW: $OW, T: $T, PRIV: $PRIV, DAEMON: $D}}')
must_submit iso "$(plan "$ENV" "$(step probe "$ISO")")"
expect_run iso-1 succeeded 20
is_sb_field iso-1 isolation bwrap || fail "iso-1: isolation is '$(sb_field iso-1 isolation)', want bwrap"
W=$(ws iso-1)
[ -s "$W/report" ] || fail "the probe step wrote no report to its workspace ($W)"

want="etc=no state=no otherws=no plans=no ws=yes pwd=yes tmp=yes hosttmp=no hostpid=no sbvar=yes status=yes post=yes runs=no runstat=no othersb=no"
got=$(tr '\n' ' ' <"$W/report" | sed 's/ $//')
leaked=""
[ ! -e /etc/orchfs-e2e-evil ] || { rm -f /etc/orchfs-e2e-evil; leaked+=" /etc/orchfs-e2e-evil"; }
[ ! -e "$PRIV" ] || { rm -f "$PRIV"; leaked+=" $PRIV (the step's /tmp is not private)"; }
[ ! -e "$S/evil" ] || leaked+=" \$S/evil"
[ ! -e "$OW/evil" ] || leaked+=" the other sandbox's workspace"
[ ! -e "$M/plans/evil.json" ] && [ ! -e "$M/runs/evil-1" ] || leaked+=" a plan submitted from inside"
[ -z "$leaked" ] || fail "a bwrap step wrote outside its workspace:$leaked"
[ "$(cat "$W/ws.txt" 2>/dev/null)" = inside ] || fail "what the step wrote to its workspace is not there outside"
# (the probes are compared at the end, after the network and isolation none checks)
[ "$(count_events "$M/sandboxes/iso-1/events" iso.posted '.run_id == "iso-1" and .step_id == "probe" and .sandbox == "iso-1"')" -eq 1 ] \
  || fail "the event posted from inside is missing or not attributed to its step: $(grep iso.posted "$M/sandboxes/iso-1/events")"
jq -e '.ports | length == 1 and all(. >= 20000 and . <= 29999)' "$M/sandboxes/iso-1/status" >/dev/null \
  || fail "ports $(sb_field iso-1 ports | tr -d ' \n') are not one port of the default range 20000-29999"


# ---- network: false leaves only loopback
HOSTIP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
LPORT=0
if [ -n "$HOSTIP" ]; then
  python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(16)
open(sys.argv[2] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
while True:
    c, _ = s.accept(); c.close()
' "$HOSTIP" "$T/lport" &
  wait_for 20 test -s "$T/lport" || fail "the test's TCP listener did not start"
  LPORT=$(cat "$T/lport")
else
  note "no global IPv4 address on this machine: the host connection probe is skipped"
fi
NET=$PROBES'
{
  if [ "$LPORT" != 0 ]; then
    probe host python3 -c "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()" "$HOSTIP" "$LPORT"
  else echo host=skip; fi
  probe loop python3 -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(1); socket.create_connection(s.getsockname(), timeout=2).close()"
  if command -v ip >/dev/null; then echo "links=$(ip -o link | awk -F": " "{ print \$2 }" | sed "s/@.*//" | sort | tr "\n" "," )"; else echo links=skip; fi
} >report'
NENV=$(jq -cn --arg H "$HOSTIP" --arg P "$LPORT" '{HOSTIP: $H, LPORT: $P}')
must_submit netoff "$(plan "$(jq -cn --argjson e "$NENV" '{env: $e, sandbox: {network: false}}')" "$(step probe "$NET")")"
must_submit neton "$(plan "$(jq -cn --argjson e "$NENV" '{env: $e}')" "$(step probe "$NET")")"
expect_run netoff-1 succeeded 20
expect_run neton-1 succeeded 20
off=$(tr '\n' ' ' <"$(ws netoff-1)/report") on=$(tr '\n' ' ' <"$(ws neton-1)/report")
[ "$(sb_field netoff-1 network)" = false ] || note "status of netoff-1 does not say network false: $(cat "$M/sandboxes/netoff-1/status" | tr -d ' \n')"
case $on in *host=skip*) ;; *host=yes*) ;; *) fail "with the network on, a step could not reach $HOSTIP:$LPORT (so the check below means nothing): $on" ;; esac
case $off in *host=yes*) fail "network false: a step reached the host's address $HOSTIP:$LPORT: $off" ;; esac
case $off in *loop=yes*) ;; *) fail "network false: loopback does not work inside: $off" ;; esac
case $off in *links=skip*|*"links=lo, "*) ;; *) fail "network false: interfaces other than lo inside: $off" ;; esac
case $on in *links=skip*|*"links=lo, "*) fail "with the network on the step sees only lo: $on" ;; esac

# ---- isolation none: the step runs unsandboxed
must_submit open "$(plan "$(jq -cn --arg T "$T" '{env: {T: $T}, sandbox: {isolation: "none"}}')" \
  "$(step s 'echo outside >"$T/none.mark"; test -e "$T/daemon.log" && echo seen >seen')")"
expect_run open-1 succeeded 20
is_sb_field open-1 isolation none || fail "a plan asking isolation none got '$(sb_field open-1 isolation)'"
[ "$(cat "$T/none.mark" 2>/dev/null)" = outside ] || fail "an isolation none step could not write outside its workspace"
[ -e "$(ws open-1)/seen" ] || fail "an isolation none step does not see the host's /tmp"
# an explicit "bwrap" is accepted where bubblewrap works
must_submit boxed "$(plan '{"sandbox": {"isolation": "bwrap"}}' "$(step s 'test ! -e "$T/none.mark"' "$(jq -cn --arg T "$T" '{env: {T: $T}}')")")"
expect_run boxed-1 succeeded 20
is_sb_field boxed-1 isolation bwrap || fail "isolation bwrap asked for, status says $(sb_field boxed-1 isolation)"

# ---- what the bwrap step could and could not do (each write outside its
# workspace must fail, not just vanish into a throwaway tmpfs)
[ "$got" = "$want" ] || fail "bwrap step probes (NAME=yes: the command succeeded inside):
   got:  $got
   want: $want"
