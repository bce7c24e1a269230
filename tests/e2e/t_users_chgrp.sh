#!/usr/bin/env bash
# chgrp of a plan file (issue 12: the same rules as the kernel's when mounted
# without default_permissions): its owner may give it only a group they are
# in, as in any file system. Without default_permissions the kernel leaves
# the check to orchfs, which let the owner give it any group (root's, say),
# whose members the file's mode then let in, and whose name it showed.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2
gid1=$(id -g "$U1")
gid2=$(id -g "$U2")

for opts in allow_other,default_permissions allow_other; do
  note "--- -o $opts"
  start_fs -o "$opts"
  as "$U1" sh -c "printf '{}' >'$M/plans/g.txt'" || fail "$opts: $U1 could not make a file in plans/"
  [ "$(stat -c %g "$M/plans/g.txt")" = "$gid1" ] || fail "$opts: plans/g.txt is not in $U1's group: $(stat -c "%u %g %a" "$M/plans/g.txt") (want $gid1)"
  as "$U1" chgrp "$gid2" "$M/plans/g.txt" 2>"$T/err" && fail "$opts: $U1 gave its file group $gid2, which it is not in"
  grep -q 'Operation not permitted' "$T/err" || fail "$opts: want EPERM, got: $(cat "$T/err")"
  as "$U1" chgrp 0 "$M/plans/g.txt" 2>/dev/null && fail "$opts: $U1 gave its file root's group"
  [ "$(stat -c %g "$M/plans/g.txt")" = "$gid1" ] || fail "$opts: plans/g.txt is now in group $(stat -c %g "$M/plans/g.txt")"
  as "$U1" chgrp "$gid1" "$M/plans/g.txt" || fail "$opts: $U1 could not give its file its own group"
  chgrp "$gid2" "$M/plans/g.txt" || fail "$opts: root could not give the file another group"
  [ "$(stat -c %g "$M/plans/g.txt")" = "$gid2" ] || fail "$opts: root's chgrp did not take"
  as "$U2" chgrp "$gid2" "$M/plans/g.txt" 2>/dev/null && fail "$opts: $U2 could chgrp $U1's file"
  # a group U1 is in besides its own
  chgrp "$gid1" "$M/plans/g.txt"
  usermod -a -G "$(id -gn "$U2")" "$U1" || fail "cannot put $U1 in $U2's group"
  as "$U1" chgrp "$gid2" "$M/plans/g.txt" || fail "$opts: $U1 could not give its file a group it is in"
  [ "$(stat -c %g "$M/plans/g.txt")" = "$gid2" ] || fail "$opts: $U1's chgrp to a group it is in did not take"
  gpasswd -d "$U1" "$(id -gn "$U2")" >/dev/null || fail "cannot take $U1 out of $U2's group"
  as "$U1" rm -f "$M/plans/g.txt" || fail "$opts: $U1 could not remove its file"
  stop_fs
done
