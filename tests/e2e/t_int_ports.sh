#!/usr/bin/env bash
# Named ports (SPEC 11): "ports": ["api", "web"] takes one port per name;
# steps get PORT_API, PORT_WEB and PORT0, PORT1 in that order, in their
# environment and as ${PORT_API}; status shows ports as an object and their
# urls; a service listening on $PORT_API answers at urls.api; the names
# survive a restart; a plan naming the sandbox must give the same names;
# bad names are refused with their message; "ports": 2 is as it was.
. "$(dirname "$0")/lib.sh"
LO=$(( 40000 + RANDOM % 9000 / 20 * 20 )) HI=$(( LO + 19 ))
start_fs --port-range "$LO-$HI"

st() { cat "$M/sandboxes/$1/status"; }

# ---- a service on $PORT_API, its ports and urls
srv='echo "PORT_API=$PORT_API PORT_WEB=$PORT_WEB PORT0=$PORT0 PORT1=$PORT1" >env.txt
echo "${PORT_API} ${PORT_WEB} ${PORT0} ${PORT1}" >subst.txt
mkdir -p www; echo "hello from api" >www/hello.txt; cd www
exec python3 -m http.server "$PORT_API" --bind 127.0.0.1'
must_submit svc "$(plan '{"sandbox": {"id": "svc", "ports": ["api", "web"]}}' "$(step serve "$srv")")"
jq -e '(.ports | type) == "object" and (.ports | keys) == ["api", "web"]' "$M/sandboxes/svc/status" >/dev/null \
  || fail "ports is not the object of the names: $(st svc | jq -c .ports)"
API=$(sb_field svc ports.api) WEB=$(sb_field svc ports.web)
[ "$API" -ge "$LO" ] && [ "$API" -le "$HI" ] && [ "$WEB" -ge "$LO" ] && [ "$WEB" -le "$HI" ] && [ "$API" != "$WEB" ] \
  || fail "ports api $API and web $WEB: not two ports of $LO-$HI"
[ "$(st svc | jq -c .urls)" = "{\"api\":\"http://127.0.0.1:$API/\",\"web\":\"http://127.0.0.1:$WEB/\"}" ] \
  || fail "urls: $(st svc | jq -c .urls)"
W=$(ws svc)
wait_for 20 test -s "$W/subst.txt" || fail "the step wrote no subst.txt"
file_is "$W/env.txt" "PORT_API=$API PORT_WEB=$WEB PORT0=$API PORT1=$WEB" || fail "environment: $(cat "$W/env.txt")"
file_is "$W/subst.txt" "$API $WEB $API $WEB" || fail "\${PORT_API} \${PORT_WEB} \${PORT0} \${PORT1} became: $(cat "$W/subst.txt")"
get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
url=$(sb_field svc urls.api)hello.txt
wait_for 20 get "$url" || fail "nothing answers at $url: $(cat "$M/runs/svc-1/steps/serve/log")"
[ "$(get "$url")" = "hello from api" ] || fail "$url gave: $(get "$url" 2>&1)"
echo cancel >"$M/runs/svc-1/ctl"
expect_run svc-1 cancelled

# ---- the plan as run names them too, and they survive a restart
jq -e '.sandbox.ports == ["api", "web"]' "$M/runs/svc-1/plan.json" >/dev/null || fail "plan.json: $(jq -c .sandbox "$M/runs/svc-1/plan.json")"
stop_fs
start_fs --port-range "$LO-$HI"
[ "$(sb_field svc ports.api) $(sb_field svc ports.web)" = "$API $WEB" ] || fail "after a restart: $(st svc | jq -c .ports)"

# ---- a plan naming the sandbox: the same names in the same order, or a number of as many
must_submit again "$(plan '{"sandbox": {"id": "svc", "ports": ["api", "web"]}}' \
  "$(step s 'echo "$PORT_WEB ${PORT_API}" >again.txt')")"
expect_run again-1 succeeded
file_is "$W/again.txt" "$WEB $API" || fail "again.txt: $(cat "$W/again.txt")"
must_submit count "$(plan '{"sandbox": {"id": "svc", "ports": 2}}' "$(step s 'echo ${PORT_WEB} >count.txt')")"
expect_run count-1 succeeded
file_is "$W/count.txt" "$WEB" || fail "count.txt: $(cat "$W/count.txt")"
refused() { # NAME JSON LINE: refused with EINVAL and LINE in NAME.error
  if submit "$1" "$2"; then fail "plan $1 was accepted: $2"; fi
  grep -q 'Invalid argument' "$T/cp.err" || fail "plan $1: cp said $(cat "$T/cp.err")"
  grep -qxF -- "$3" "$M/plans/$1.error" || fail "plan $1: want '$3' in its error, got: $(cat "$M/plans/$1.error")"
}
refused order "$(plan '{"sandbox": {"id": "svc", "ports": ["web", "api"]}}' "$(step s true)")" \
  'sandbox "svc": has ports ["api", "web"], the plan asks for ports ["web", "api"]'
refused three "$(plan '{"sandbox": {"id": "svc", "ports": 3}}' "$(step s true)")" \
  'sandbox "svc": has ports ["api", "web"], the plan asks for 3'
refused bad "$(plan '{"sandbox": {"ports": ["api", "Web", "api"]}}' "$(step s 'echo ${PORT_DB}')")" \
  'sandbox: invalid port name "Web" in ports[1] (use 1 to 32 of a-z 0-9 _, starting with a-z)'
grep -qxF 'sandbox: duplicate port name "api" in ports[2] (first in ports[0])' "$M/plans/bad.error" || fail "bad.error: $(cat "$M/plans/bad.error")"
grep -qxF 'step "s": unknown variable "${PORT_DB}" in args[1]' "$M/plans/bad.error" || fail "bad.error: $(cat "$M/plans/bad.error")"
[ ! -e "$M/sandboxes/bad-1" ] || fail "a refused plan made a sandbox"

# ---- "ports": 2 as before: an array, PORT0 PORT1, no names, no urls
must_submit two "$(plan '{"sandbox": {"ports": 2}}' "$(step s 'env | grep "^PORT" | sort >env.txt')")"
expect_run two-1 succeeded
jq -e '(.ports | type) == "array" and (.ports | length) == 2 and .urls == {}' "$M/sandboxes/two-1/status" >/dev/null \
  || fail "\"ports\": 2: $(st two-1 | jq -c '{ports, urls}')"
file_is "$(ws two-1)/env.txt" "$(jq -r '.ports | "PORT0=\(.[0])\nPORT1=\(.[1])"' "$M/sandboxes/two-1/status")" \
  || fail "\"ports\": 2 environment: $(cat "$(ws two-1)/env.txt")"

# ---- rmdir frees named ports
rmdir "$M/sandboxes/svc" || fail "rmdir svc failed"
mkdir "$M/sandboxes/n1" && mkdir "$M/sandboxes/n2" || fail "mkdir failed"
for s in n1 n2 two-1; do jq -r '.ports[]' "$M/sandboxes/$s/status"; done | sort | uniq -d | grep -q . \
  && fail "two sandboxes share a port"
[ "$(sb_field n1 'ports | type')" = array ] || fail "n1: $(st n1 | jq -c .ports)"
stop_fs
