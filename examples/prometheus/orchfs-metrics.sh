#!/bin/sh
# orchfs-metrics.sh [MOUNT [DIR]]: copy MOUNT/metrics (Prometheus text
# format) into node_exporter's textfile collector directory, atomically.
#
#   MOUNT  the orchfs mount (default /srv/orchfs)
#   DIR    node_exporter's --collector.textfile.directory (default
#          /var/lib/prometheus/node-exporter, Debian's prometheus-node-exporter)
#
# The collector reads DIR/*.prom at every scrape. The text goes to a file
# named orchfs.prom.PID.tmp in DIR first, which the collector ignores, and is
# renamed onto DIR/orchfs.prom: a rename within one directory is atomic, so a
# scrape sees the old file or the new one, never half of one. When MOUNT/metrics
# cannot be read (orchfs is down), orchfs.prom says only orchfs_up 0, so that an
# alert fires instead of the last numbers staying on.
#
# Run it every 15 seconds with orchfs-metrics.timer, or every minute from
# cron (orchfs-metrics.cron); install it as /usr/local/sbin/orchfs-metrics.
set -eu
mnt=${1:-/srv/orchfs}
dir=${2:-/var/lib/prometheus/node-exporter}
tmp=$dir/orchfs.prom.$$.tmp
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

up() {
	printf '# HELP orchfs_up Whether the metrics file of the orchfs mount could be read.\n'
	printf '# TYPE orchfs_up gauge\norchfs_up %d\n' "$1"
}
if timeout 10 cat "$mnt/metrics" >"$tmp" 2>/dev/null && grep -q '^orchfs_' "$tmp"; then
	up 1 >>"$tmp"
else
	echo "orchfs-metrics: cannot read $mnt/metrics: writing orchfs_up 0" >&2
	up 0 >"$tmp"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$dir/orchfs.prom"
