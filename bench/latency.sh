#!/usr/bin/env bash
# latency.sh: ban latency of edgeban serve and fail2ban-server, and edgeban's
# start-up with many bans to restore.
#
# It builds edgeban and the measuring program (bench/latency), writes one
# temporary configuration that both daemons run: a jail "latency" with a
# one-line failregex, maxretry = 1 (each line with a new address is one
# ban), and a one-line shell actionban that appends the address to a file,
#
#   actionban = printf '%s\n' <ip> >> BANS        (builtins only)
#
# Then, for edgeban serve and for fail2ban-server in turn (each with its own
# socket, pidfile, database and log in the temporary directory; nothing in
# /etc or /var is touched), it appends LINES lines, one at a time, and
# measures for each the time from the write to the address appearing in
# BANS (watched with inotify, no polling). It reports p50, p90, p99 and max
# side by side.
#
# Then it seeds edgeban's database with BANS_RESTORED active bans and starts
# edgeban serve over it: the time until `edgeban status latency --json`
# lists them all (ready), the ban latency of new lines meanwhile, the time
# until the action has run again for every restored ban, and the daemon's
# RSS.
#
# It fails when edgeban misses a target (see the environment below). When
# fail2ban-server is missing it runs apt-get update and installs Debian's
# fail2ban (and python3-pyinotify for BACKEND=pyinotify); that needs root or
# sudo. Results: bench/out/latency-results.txt (also printed); the per-line
# figures and the daemons' logs stay in bench/out. See bench/README.md.
#
# Usage: bench/latency.sh [--quick] [--help]
set -euo pipefail
export LC_ALL=C

usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
	cat <<'EOF'

Environment (--quick: LINES=50, BANS_RESTORED=10000, DURING=20):
  LINES=200             lines (bans) measured per daemon
  PAUSE_MS=50           mean pause between a ban and the next line (jittered +-50%)
  BACKEND=pyinotify     the jail's backend (fail2ban: pyinotify or auto; edgeban
                        reads the log with inotify whatever the name, except polling)
  BANS_RESTORED=100000  active bans seeded for the start-up measurement (0: skip it)
  DURING=50             new bans measured while the restored ones are applied again
  MAX_P50_MS=2          fail if edgeban's p50 ban latency is this or more
  MAX_MS=10             fail if edgeban's max ban latency is this or more
  MAX_READY_S=2         fail if edgeban is not ready within this, with the restored bans
  MAX_RSS_MB=150        fail if edgeban's peak RSS reaches this, with the restored bans
  MAX_DURING_MS=10      fail if a new ban takes this or more while restored bans are applied
  SKIP_FAIL2BAN=0       1: measure edgeban only
  OUT_DIR=bench/out     where the results go
  KEEP_WORK=0           1: keep the temporary directory (configurations, databases)
EOF
}

QUICK=0
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "latency.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
if ((QUICK)); then
	: "${LINES:=50}" "${BANS_RESTORED:=10000}" "${DURING:=20}"
fi
: "${LINES:=200}" "${PAUSE_MS:=50}" "${BACKEND:=pyinotify}" "${BANS_RESTORED:=100000}" "${DURING:=50}"
: "${MAX_P50_MS:=2}" "${MAX_MS:=10}" "${MAX_READY_S:=2}" "${MAX_RSS_MB:=150}" "${MAX_DURING_MS:=10}"
: "${SKIP_FAIL2BAN:=0}"
for v in LINES PAUSE_MS BANS_RESTORED DURING; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "latency.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((LINES > 0)) || { echo "latency.sh: LINES must be at least 1" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT_DIR:-$HERE/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/latency-results.txt
RUNLOG=$OUT/latency-run.log
T_START=$SECONDS
# The sockets live here: a Unix socket's path must stay short.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgeban-latency.XXXXXX")
STOP_WAIT=30
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
bench_traps

# wait_for WHAT SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "$what: not within $secs s"
}

# field KEY LINE: the value of KEY=value in LINE.
field() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }' <<<"$2"; }

# below VALUE LIMIT: VALUE < LIMIT, as numbers.
below() { awk -v v="$1" -v l="$2" 'BEGIN { exit !(v + 0 < l + 0) }'; }

CHECKS=()
FAILED=0
# check FIGURE VALUE TARGET OK: one row of the checks, OK being 0 or 1.
check() {
	local v=ok
	if (($4 != 1)); then v=FAIL; FAILED=1; fi
	CHECKS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$v")
}

table() {
	awk -F'\t' '
		{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
		END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] + 2 "s", c[r, i]); sub(/ +$/, "", line); print line } }'
}

# ---------------------------------------------------------------- setup

: >"$RUNLOG"
log "ban latency: edgeban serve vs fail2ban-server; work in $WORK, results in $OUT"

command -v go >/dev/null || die "go is not on PATH (edgeban needs Go; see go.mod for the version)"
if ((!SKIP_FAIL2BAN)); then
	if ! command -v fail2ban-server >/dev/null || ! command -v fail2ban-client >/dev/null; then
		apt_install fail2ban
		command -v fail2ban-client >/dev/null || die "fail2ban is installed but fail2ban-client is not on PATH"
	fi
	F2B_PY=$(head -n1 "$(command -v fail2ban-server)" | sed 's/^#! *//; s/ .*//')
	if [[ $BACKEND == pyinotify ]] && ! "$F2B_PY" -c 'import pyinotify' 2>/dev/null; then
		apt_install python3-pyinotify
		"$F2B_PY" -c 'import pyinotify' 2>/dev/null || die "python3-pyinotify is installed but $F2B_PY cannot import pyinotify"
	fi
	F2B_VERSION="fail2ban $(fail2ban-server --version 2>/dev/null | awk '{ sub(/^v/, "", $NF); print $NF; exit }')"
fi

(cd "$ROOT" && go build -o "$OUT/edgeban" ./cmd/edgeban && go build -o "$OUT/latency" ./bench/latency) || die "go build failed"
EDGEBAN=$OUT/edgeban
MEASURE=$OUT/latency
BUILT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
BUILT_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=all -- '*.go' 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ' || true)
log "built edgeban and bench/latency ($(go version | awk '{ print $3 }'))"

# The configuration both daemons read.
CONF=$WORK/conf
LOGF=$WORK/app.log
BANS=$WORK/bans
mkdir -p "$CONF/filter.d" "$CONF/action.d"
cat >"$CONF/fail2ban.conf" <<EOF
[Definition]
loglevel = INFO
logtarget = $WORK/fail2ban.log
socket = $WORK/f2b.sock
pidfile = $WORK/f2b.pid
dbfile = $WORK/f2b.sqlite3
dbpurgeage = 1d
EOF
cat >"$CONF/edgeban.conf" <<EOF
[Definition]
logtarget = $WORK/edgeban.log
socket = $WORK/edgeban.sock
dbfile = $WORK/edgeban.db
EOF
cat >"$CONF/jail.conf" <<EOF
[DEFAULT]
backend = $BACKEND
maxretry = 1
findtime = 10m
bantime = 1d
usedns = no
ignoreself = false
ignoreip =

[latency]
enabled = true
filter = latency
logpath = $LOGF
action = latency
EOF
cat >"$CONF/filter.d/latency.conf" <<'EOF'
[Definition]
failregex = ^\s*login failed for \S+ from <HOST>$
EOF
cat >"$CONF/action.d/latency.conf" <<EOF
[Definition]
actionban = printf '%%s\n' <ip> >> $BANS
EOF
# fresh: an empty log and bans file, no database.
fresh() {
	rm -f "$WORK"/edgeban.db* "$WORK"/f2b.sqlite3* "$LOGF" "$BANS"
	: >"$LOGF"
	: >"$BANS"
}
fresh
"$EDGEBAN" check -c "$CONF" >>"$RUNLOG" 2>&1 || die "edgeban check -c $CONF failed (see $RUNLOG)"


ROWS=()
# measure NAME FILE: runs the measuring program against the daemon now
# running; the per-line figures go to bench/out/latency-FILE.csv.
measure() {
	local name=$1 file=$2 line
	log "$name: $LINES lines, one ban each, pause ${PAUSE_MS} ms"
	line=$("$MEASURE" lines -log "$LOGF" -out "$BANS" -n "$LINES" -pause "${PAUSE_MS}ms" \
		-csv "$OUT/latency-$file.csv" 2>>"$RUNLOG") || die "$name: the measurement failed (see $RUNLOG)"
	log "   $line"
	ROWS+=("$name"$'\t'"$(field n "$line")"$'\t'"$(field missed "$line")"$'\t'"$(field p50_ms "$line")"$'\t'"$(field p90_ms "$line")"$'\t'"$(field p99_ms "$line")"$'\t'"$(field max_ms "$line")"$'\t'"$(field mean_ms "$line")")
	RESULT=$line
}

# ---------------------------------------------------------------- 1. edgeban

fresh
"$EDGEBAN" serve -c "$CONF" >"$OUT/latency-edgeban.out" 2>&1 &
PIDS+=($!)
EPID=$!
wait_for "edgeban serve answering on $WORK/edgeban.sock" 30 "$EDGEBAN" ping --socket "$WORK/edgeban.sock"
wait_for "edgeban's jail running" 30 "$EDGEBAN" status latency --socket "$WORK/edgeban.sock"
measure edgeban edgeban
E_RESULT=$RESULT
stop "$EPID"
cp "$WORK/edgeban.log" "$OUT/latency-edgeban.log"

# ---------------------------------------------------------------- 2. fail2ban

if ((!SKIP_FAIL2BAN)); then
	fresh
	fail2ban-client -c "$CONF" -s "$WORK/f2b.sock" -p "$WORK/f2b.pid" -x -f start >"$OUT/latency-fail2ban.out" 2>&1 &
	PIDS+=($!)
	FPID=$!
	wait_for "fail2ban-server answering on $WORK/f2b.sock" 60 fail2ban-client -s "$WORK/f2b.sock" ping
	wait_for "fail2ban's jail running" 60 fail2ban-client -s "$WORK/f2b.sock" status latency
	F2B_BACKEND=$(grep -o "Jail 'latency' uses [A-Za-z]*" "$WORK/fail2ban.log" | awk '{ print $NF; exit }' || true)
	measure "$F2B_VERSION" fail2ban
	fail2ban-client -s "$WORK/f2b.sock" stop >>"$RUNLOG" 2>&1 || true
	stop "$FPID"
	cp "$WORK/fail2ban.log" "$OUT/latency-fail2ban.log"
fi

P50=$(field p50_ms "$E_RESULT") MAXL=$(field max_ms "$E_RESULT") MISSED=$(field missed "$E_RESULT")
check "edgeban: bans missing" "$MISSED" "0" "$( ((MISSED == 0)) && echo 1 || echo 0)"
check "edgeban: p50 ban latency" "$P50 ms" "< $MAX_P50_MS ms" "$(below "$P50" "$MAX_P50_MS" && echo 1 || echo 0)"
check "edgeban: max ban latency" "$MAXL ms" "< $MAX_MS ms" "$(below "$MAXL" "$MAX_MS" && echo 1 || echo 0)"

# ---------------------------------------------------------------- 3. start-up

if ((BANS_RESTORED > 0)); then
	fresh
	log "seeding edgeban's database with $BANS_RESTORED active bans"
	SEED=$("$MEASURE" seed -db "$WORK/edgeban.db" -jail latency -n "$BANS_RESTORED" 2>>"$RUNLOG") || die "seeding failed (see $RUNLOG)"
	log "   $SEED"
	log "starting edgeban serve over them"
	S=$("$MEASURE" startup -bin "$EDGEBAN" -conf "$CONF" -socket "$WORK/edgeban.sock" -jail latency \
		-log "$LOGF" -out "$BANS" -n "$BANS_RESTORED" -during "$DURING" -daemon-log "$OUT/latency-startup.out" 2>>"$RUNLOG") ||
		die "the start-up measurement failed (see $RUNLOG and $OUT/latency-startup.out)"
	log "   $S"
	cp "$WORK/edgeban.log" "$OUT/latency-startup.log"
	READY=$(field ready_s "$S") PEAK=$(field peak_rss_mb "$S") DMAX=$(field during_max_ms "$S") DMISSED=$(field during_missed "$S")
	check "start-up, $BANS_RESTORED bans: ready" "$READY s" "< $MAX_READY_S s" "$(below "$READY" "$MAX_READY_S" && echo 1 || echo 0)"
	check "start-up, $BANS_RESTORED bans: peak RSS" "$PEAK MB" "< $MAX_RSS_MB MB" "$(below "$PEAK" "$MAX_RSS_MB" && echo 1 || echo 0)"
	check "new bans while restoring: max latency" "$DMAX ms ($DMISSED missing)" "< $MAX_DURING_MS ms" \
		"$( below "$DMAX" "$MAX_DURING_MS" && ((DMISSED == 0)) && echo 1 || echo 0)"
fi

# ---------------------------------------------------------------- report

{
	echo "ban latency, edgeban serve vs fail2ban-server, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "built from commit $BUILT_REV$([[ -z $BUILT_DIRTY ]] || echo ' plus uncommitted changes'), $(go version | awk '{ print $3 }')," \
		"$(nproc) CPUs, total $((SECONDS - T_START)) s"
	[[ -z $BUILT_DIRTY ]] || echo "uncommitted changes built in: $BUILT_DIRTY"
	echo "$LINES lines per daemon, mean pause $PAUSE_MS ms, backend = $BACKEND${F2B_BACKEND:+ (fail2ban used $F2B_BACKEND)}"
	echo
	{
		printf 'DAEMON\tBANS\tMISSING\tP50 ms\tP90 ms\tP99 ms\tMAX ms\tMEAN ms\n'
		printf '%s\n' "${ROWS[@]}"
	} | table
	if ((BANS_RESTORED > 0)); then
		echo
		echo "edgeban serve over $BANS_RESTORED restored bans (seeded in $(field seed_s "$SEED") s, database $(field db_mb "$SEED") MB):"
		{
			printf 'FIGURE\tVALUE\n'
			printf 'socket answers\t%s s\n' "$(field socket_s "$S")"
			printf 'ready (status lists every ban)\t%s s\n' "$READY"
			printf 'RSS at ready\t%s MB\n' "$(field rss_ready_mb "$S")"
			printf 'every restored ban applied again\t%s s\n' "$(field applied_s "$S")"
			printf 'peak RSS (VmHWM)\t%s MB\n' "$PEAK"
			printf 'new bans meanwhile (%s): p50 / p90 / max\t%s / %s / %s ms\n' "$(field during_n "$S")" \
				"$(field during_p50_ms "$S")" "$(field during_p90_ms "$S")" "$DMAX"
			printf 'restored bans applied when those were done\t%s\n' "$(field applied_after_during "$S")"
			printf 'stop (SIGTERM to exit)\t%s s\n' "$(field stop_s "$S")"
		} | table
	fi
	echo
	{
		printf 'CHECK\tVALUE\tTARGET\tVERDICT\n'
		printf '%s\n' "${CHECKS[@]}"
	} | table
} >"$RESULTS"
echo
cat "$RESULTS"
((FAILED == 0)) || die "at least one check FAILED (see the table above)"
log "all checks passed"
