#!/usr/bin/env bash
# cloudflare-wave.sh: edgeban's Cloudflare ban-wave benchmark against cfsim.
#
# It builds edgeban and cfsim, starts cfsim on a free loopback port (one fresh
# instance per scenario), and runs five scenarios:
#
#   1  list mode, Free plan: WAVE bans, one CLI call per IP from CALLERS callers
#   2  list mode, Enterprise: ENTERPRISE_WAVE bans in batched CLI calls, plus a
#      one-call-per-IP sample of PER_IP_SAMPLE to extrapolate from
#   3  past capacity: CAPACITY+OVER bans, --policy keep-oldest, evict-oldest, then aggregate
#   4  access-rule mode (account scope): RULES_WAVE bans, watched for RULES_WATCH s
#   5  the seed's shell action (curl | python | xargs) pushing the same wave
#
# Everything talks to 127.0.0.1 only, needs no root, and stops by itself.
# Results: bench/out/results.txt (also printed); logs, status outputs and the
# worker logs stay in bench/out. See bench/README.md for what each figure means.
#
# Usage: bench/cloudflare-wave.sh [--quick] [--help]
set -euo pipefail
export LC_ALL=C

usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
	cat <<'EOF'

Environment (defaults for a full run; --quick makes them small):
  WAVE=10000            scenario 1 wave, and scenario 5's (SHELL_WAVE)
  ENTERPRISE_WAVE=100000 ENTERPRISE_BATCH=500 PER_IP_SAMPLE=10000
  CAPACITY=             scenario 3's list capacity; empty = the Free plan's 10,000
  OVER=1000             bans beyond capacity in scenario 3
  RULES_WAVE=1500 RULES_WATCH=90 RULES_LIMIT=1200   scenario 4
  SHELL_WAVE=$WAVE UNBAN_SAMPLE=100 SHELL_LIMIT=1200 scenario 5
  CALLERS=8             concurrent callers (xargs -P)
  V6_EVERY=50           every Nth address is IPv6 (0: IPv4 only)
  POLL=0.2 POLL_BIG=1   seconds between cfsim state polls (POLL_BIG above 20,000 items)
  SCENARIOS="1 2 3 4 5" which scenarios to run
  OUT_DIR=bench/out     where results and logs go
  PYTHON2=              a Python 2 interpreter for scenario 5's control run (auto-detected)
  KEEP_WORK=1           keep the temporary directory (databases, IP files)
EOF
}

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "cloudflare-wave.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
	esac
done

if ((QUICK)); then
	: "${WAVE:=300}" "${ENTERPRISE_WAVE:=3000}" "${ENTERPRISE_BATCH:=100}" "${PER_IP_SAMPLE:=300}"
	: "${CAPACITY:=200}" "${OVER:=20}"
	: "${RULES_WAVE:=150}" "${RULES_WATCH:=10}" "${RULES_LIMIT:=120}"
	: "${SHELL_LIMIT:=120}" "${UNBAN_SAMPLE:=10}"
fi
: "${WAVE:=10000}" "${ENTERPRISE_WAVE:=100000}" "${ENTERPRISE_BATCH:=500}" "${PER_IP_SAMPLE:=10000}"
: "${CAPACITY:=}" "${OVER:=1000}"
: "${RULES_WAVE:=1500}" "${RULES_WATCH:=90}" "${RULES_LIMIT:=1200}"
: "${SHELL_WAVE:=$WAVE}" "${UNBAN_SAMPLE:=100}" "${SHELL_LIMIT:=1200}"
: "${CALLERS:=8}" "${V6_EVERY:=50}" "${POLL:=0.2}" "${POLL_BIG:=1}"
: "${SCENARIOS:=1 2 3 4 5}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT_DIR:-$HERE/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgeban-wave.XXXXXX")
BIN=$WORK/bin
ACCOUNT=a1b2c3d4e5f60718293a4b5c6d7e8f90 # cfsim's default account
TOKEN=bench-token-$RANDOM$RANDOM
CFUSER=admin@example.com
CFKEY=bench-global-key-$RANDOM$RANDOM
T_START=$SECONDS

# ---------------------------------------------------------------- processes

RUNLOG=$OUT/run.log
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
bench_traps

# ---------------------------------------------------------------- results

ROWS=()
NOTES=()
# note TEXT: a line printed under the table (long texts that would widen it).
note() { NOTES+=("$*"); }
# row SCENARIO FIGURE VALUE [TARGET [VERDICT]]
row() { ROWS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"${4:-}"$'\t'"${5:-}"); }
verdict() { if eval "$1"; then echo ok; else echo MISSED; fi; }
secs() { awk -v us="$1" 'BEGIN { printf "%.1f s", us / 1e6 }'; }

# ---------------------------------------------------------------- addresses

# ips FROM COUNT prints distinct addresses number FROM.. FROM+COUNT-1: IPv4
# from 100.64.0.0/10, and every V6_EVERY-th one an IPv6 address, each in a
# /64 of its own inside 2001:db8::/32.
ips() {
	awk -v from="$1" -v n="$2" -v every="$V6_EVERY" 'BEGIN {
		for (i = from; i < from + n; i++) {
			if (every > 0 && i % every == every - 1)
				printf "2001:db8:%x:%x::1\n", int(i / 65534) + 1, i % 65534 + 1
			else
				printf "100.%d.%d.%d\n", 64 + int(i / 65536), int(i / 256) % 256, i % 256
		}
	}'
}

# items turns addresses into the list items Cloudflare stores (IPv6 as /64).
items() { sed -E 's/^(2001:db8:[0-9a-f]+:[0-9a-f]+)::1$/\1::\/64/'; }

# ---------------------------------------------------------------- cfsim

CF_API=
CF_ADMIN=
CFSIM_PID=

# start_cfsim NAME FLAGS...: a fresh cfsim on a free loopback port.
start_cfsim() {
	local name=$1 i
	shift
	local logf=$OUT/$name-cfsim.log
	"$BIN/cfsim" -listen 127.0.0.1:0 "$@" >"$logf" 2>&1 &
	CFSIM_PID=$!
	PIDS+=("$CFSIM_PID")
	CF_API=
	for ((i = 0; i < 100; i++)); do
		CF_API=$(grep -o 'url=http://127\.0\.0\.1:[0-9]*/client/v4' "$logf" | head -1 | cut -d= -f2 || true)
		[[ -n $CF_API ]] && break
		alive "$CFSIM_PID" || break
		sleep 0.1
	done
	[[ -n $CF_API ]] || die "cfsim did not start: $(cat "$logf")"
	CF_ADMIN=${CF_API%/client/v4}/__cfsim
	log "cfsim ($name) at $CF_API: $*"
}

stats() { curl -sf --max-time 60 "$CF_ADMIN/stats"; }
state() { curl -sf --max-time 120 "$CF_ADMIN/state"; }
# statn FILTER: a number from the current stats (0 when absent).
statn() { stats | jq -r "$1 // 0"; }

# list_count: items in cfsim's lists. The state is indented JSON; list items'
# fields, and only theirs, sit at ten spaces. Cheaper than jq at 100,000 items.
list_count() { state | grep -c '^          "value": ' || true; }
# rule_count SCOPE: access rules of one scope ("user", "account:<id>").
rule_count() { state | jq --arg s "$1" '.access_rules[$s] | length'; }

# poller TARGET FILE TIMEOUT INTERVAL: polls list_count into FILE ("us count"
# lines, the time taken after each answer) until TARGET or TIMEOUT seconds.
POLLER_PID=
poller() {
	(
		end=$((SECONDS + $3))
		while ((SECONDS < end)); do
			n=$(list_count)
			echo "$(now_us) $n" >>"$2"
			((n >= $1)) && exit 0
			sleep "$4"
		done
		exit 1
	) &
	POLLER_PID=$!
	PIDS+=("$POLLER_PID")
}

# reached FILE TARGET: the time (us) of the first poll that saw TARGET items.
reached() { awk -v t="$2" '$2 >= t { print $1; exit }' "$1"; }

# ---------------------------------------------------------------- edgeban

WORKER_PID=

start_worker() { # NAME DB [FLAGS...]
	local name=$1 db=$2
	shift 2
	"$BIN/edgeban" cloudflare serve --db "$db" --log-level info "$@" >"$OUT/$name-worker.log" 2>&1 &
	WORKER_PID=$!
	PIDS+=("$WORKER_PID")
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q 'worker started' "$OUT/$name-worker.log" && return 0
		alive "$WORKER_PID" || break
		sleep 0.1
	done
	die "the worker did not start: $(cat "$OUT/$name-worker.log")"
}

status() { "$BIN/edgeban" cloudflare status --db "$1" "${@:2}"; }

# col FILE COLUMN: the value under COLUMN on the first destination line of a
# status output (tabwriter aligns values under their header).
col() {
	awk -v c="$2" '
		/^DESTINATION/ { i = index($0, c); getline; s = substr($0, i); sub(/  +.*/, "", s); print s; exit }' "$1"
}

# settle DB TIMEOUT CONDITION: re-reads the status into $WORK/st until
# CONDITION (evaluated with $live $wanted $pban $punban $failing) holds.
settle() {
	local db=$1 end=$((SECONDS + $2))
	while :; do
		status "$db" "${STATUS_FLAGS[@]}" >"$WORK/st" 2>&1 || true
		live=$(col "$WORK/st" LIVE) wanted=$(col "$WORK/st" WANTED)
		pban=$(col "$WORK/st" "PENDING BAN") punban=$(col "$WORK/st" "PENDING UNBAN")
		failing=$(col "$WORK/st" FAILING)
		: "${live:=0}" "${wanted:=0}" "${pban:=0}" "${punban:=0}" "${failing:=0}"
		eval "$3" && return 0
		((SECONDS < end)) || return 1
		sleep 0.5
	done
}
STATUS_FLAGS=()

# The caller: one xargs process runs it per chunk of addresses. In "one" mode
# it makes one CLI call per address, in "batch" mode one call for the chunk,
# and it appends "start_us end_us exit_code" per call to $LAT.
CALL=$WORK/call.sh
write_caller() {
	cat >"$CALL" <<'EOF'
mode=$1
shift
mapfile -t args <"$ARGS"
run() {
	local s e rc=0 t
	t=$EPOCHREALTIME; s=${t/./}
	"$EDGEBAN" "${args[@]}" "$@" 2>>"$ERRS" || rc=$?
	t=$EPOCHREALTIME; e=${t/./}
	printf '%s %s %s\n' "$s" "$e" "$rc" >>"$LAT"
}
if [[ $mode == one ]]; then
	for ip in "$@"; do run "$ip"; done
else
	run "$@"
fi
exit 0
EOF
}

# wave NAME MODE CHUNK IPFILE EDGEBAN-ARGS...: CALLERS concurrent callers.
wave() {
	local name=$1 mode=$2 chunk=$3 ipf=$4
	shift 4
	printf '%s\n' "$@" >"$WORK/$name.args"
	: >"$WORK/$name.lat"
	ARGS=$WORK/$name.args LAT=$WORK/$name.lat ERRS=$OUT/$name-cli.err EDGEBAN=$BIN/edgeban \
		xargs -P "$CALLERS" -n "$chunk" bash "$CALL" "$mode" <"$ipf" ||
		log "xargs ($name) exited $?"
}

# latency LATFILE: "calls failed first_start_us last_end_us p50_ms p99_ms max_ms".
latency() {
	awk '{ d = ($2 - $1) / 1000; print d, $1, $2, $3 }' "$1" | sort -n | awk '
		function rank(p,  r) { r = int(p * NR / 100); if (r < p * NR / 100) r++; return r < 1 ? 1 : r }
		{ d[NR] = $1; if (NR == 1 || $2 < s) s = $2; if ($3 > e) e = $3; if ($4 != 0) f++ }
		END { printf "%d %d %.0f %.0f %.1f %.1f %.1f\n", NR, f, s, e, d[rank(50)], d[rank(99)], d[NR] }'
}

# ================================================================ scenario 1

scenario1() {
	log "== 1: list mode, Free plan, $WAVE IPs, one CLI call per IP from $CALLERS callers"
	local db=$WORK/s1.db tok=$WORK/token
	start_cfsim s1 -plan free -token "$TOKEN"
	"$BIN/edgeban" cloudflare setup-list --api "$CF_API" --account "$ACCOUNT" --zone example.com \
		--list edgeban --token-file "$tok" --db "$db" | tee "$OUT/s1-setup.txt" >&2
	local r0 q0
	r0=$(statn .requests) q0=$(statn .rate_limited)
	start_worker s1 "$db"
	ips 0 "$WAVE" >"$WORK/s1.ips"
	: >"$WORK/s1.poll"
	poller "$WAVE" "$WORK/s1.poll" 300 "$POLL"
	wave s1 one 25 "$WORK/s1.ips" cloudflare ban --db "$db" --api "$CF_API" --account "$ACCOUNT" \
		--list edgeban --jail sshd --token-file "$tok"
	read -r calls failed t0 t1 p50 p99 pmax < <(latency "$WORK/s1.lat")
	log "   enqueued: $calls calls ($failed failed) in $(secs $((t1 - t0))); p50 $p50 ms, p99 $p99 ms"
	wait "$POLLER_PID" || log "   cfsim's list did not reach $WAVE items in time"
	stop "$POLLER_PID"
	local tl
	tl=$(reached "$WORK/s1.poll" "$WAVE")
	settle "$db" 60 '((pban == 0 && punban == 0))' || log "   the outbox did not drain in 60 s"
	cp "$WORK/st" "$OUT/s1-status.txt"
	local r1 q1 st429
	r1=$(statn .requests) q1=$(statn .rate_limited) st429=$(statn '.by_status["429"]')
	stats >"$OUT/s1-stats.json"
	local req=$((r1 - r0)) rl=$((q1 - q0)) have
	have=$(list_count)
	stop "$WORKER_PID"
	stop "$CFSIM_PID"

	local live_s="not reached" ok_live=false
	if [[ -n $tl ]]; then
		live_s=$(secs $((tl - t0)))
		((tl - t0 < 60000000)) && ok_live=true
	fi
	log "   live after $live_s; $req API requests, $rl 429s; cfsim holds $have items"
	row 1 "CLI calls (failed)" "$calls ($failed)" "" "$(verdict "((failed == 0 && calls == WAVE))")"
	row 1 "CLI call latency p50 / p99 / max" "$p50 / $p99 / $pmax ms"
	row 1 "enqueue span, first call start to last call end" "$(secs $((t1 - t0)))"
	row 1 "all $WAVE live at cfsim after first call" "$live_s" "< 60 s" "$(verdict $ok_live)"
	row 1 "API requests (setup excluded)" "$req" "< 50" "$(verdict "((req < 50))")"
	row 1 "429 responses" "$rl (by status: $st429)" "0" "$(verdict "((rl == 0))")"
	row 1 "items at cfsim / outbox live" "$have / $live" "$WAVE" "$(verdict "((have == WAVE && live == WAVE))")"
}

# ================================================================ scenario 2

scenario2() {
	local total=$((ENTERPRISE_WAVE + PER_IP_SAMPLE))
	log "== 2: list mode, Enterprise, $ENTERPRISE_WAVE IPs in calls of $ENTERPRISE_BATCH from $CALLERS callers"
	local db=$WORK/s2.db tok=$WORK/token
	start_cfsim s2 -plan enterprise -token "$TOKEN"
	"$BIN/edgeban" cloudflare setup-list --api "$CF_API" --account "$ACCOUNT" --zone example.com \
		--list edgeban --token-file "$tok" --db "$db" >"$OUT/s2-setup.txt"
	local r0 q0
	r0=$(statn .requests) q0=$(statn .rate_limited)
	start_worker s2 "$db"
	local -a eb=(cloudflare ban --db "$db" --api "$CF_API" --account "$ACCOUNT" --list edgeban
		--plan enterprise --jail sshd --token-file "$tok")
	ips 0 "$ENTERPRISE_WAVE" >"$WORK/s2.ips"
	: >"$WORK/s2.poll"
	local interval=$POLL
	((ENTERPRISE_WAVE > 20000)) && interval=$POLL_BIG
	poller "$ENTERPRISE_WAVE" "$WORK/s2.poll" 400 "$interval"
	wave s2 batch "$ENTERPRISE_BATCH" "$WORK/s2.ips" "${eb[@]}"
	read -r calls failed t0 t1 p50 p99 pmax < <(latency "$WORK/s2.lat")
	log "   enqueued: $calls calls ($failed failed) in $(secs $((t1 - t0))); p50 $p50 ms, p99 $p99 ms"
	wait "$POLLER_PID" || log "   cfsim's list did not reach $ENTERPRISE_WAVE items in time"
	stop "$POLLER_PID"
	local tl
	tl=$(reached "$WORK/s2.poll" "$ENTERPRISE_WAVE")
	settle "$db" 60 '((pban == 0 && punban == 0))' || log "   the outbox did not drain in 60 s"
	cp "$WORK/st" "$OUT/s2-status.txt"
	local r1 q1
	r1=$(statn .requests) q1=$(statn .rate_limited)
	local live_s="not reached" ok_live=false
	if [[ -n $tl ]]; then
		live_s=$(secs $((tl - t0)))
		((tl - t0 < 120000000)) && ok_live=true
	fi
	log "   live after $live_s; $((r1 - r0)) API requests, $((q1 - q0)) 429s"
	row 2 "CLI calls of $ENTERPRISE_BATCH IPs (failed)" "$calls ($failed)" "" "$(verdict "((failed == 0))")"
	row 2 "CLI call latency p50 / p99 / max" "$p50 / $p99 / $pmax ms"
	row 2 "enqueue span" "$(secs $((t1 - t0)))"
	row 2 "all $ENTERPRISE_WAVE live at cfsim after first call (poll every ${interval}s)" "$live_s" "< 120 s" "$(verdict $ok_live)"
	row 2 "API requests / 429 responses" "$((r1 - r0)) / $((q1 - q0))" "- / 0" "$(verdict "((q1 == q0))")"

	if ((PER_IP_SAMPLE > 0)); then
		log "   one call per IP: a sample of $PER_IP_SAMPLE more IPs into the same outbox"
		settle "$db" 60 '((pban == 0 && punban == 0))' || log "   the outbox did not drain in 60 s"
		local rb0 qb0
		rb0=$(statn .requests) qb0=$(statn .rate_limited)
		ips "$ENTERPRISE_WAVE" "$PER_IP_SAMPLE" >"$WORK/s2b.ips"
		: >"$WORK/s2b.poll"
		poller "$total" "$WORK/s2b.poll" 400 "$interval"
		wave s2b one 25 "$WORK/s2b.ips" "${eb[@]}"
		local c2 f2 u0 u1 q50 q99 qmax
		read -r c2 f2 u0 u1 q50 q99 qmax < <(latency "$WORK/s2b.lat")
		wait "$POLLER_PID" || log "   cfsim's list did not reach $total items in time"
		stop "$POLLER_PID"
		settle "$db" 60 '((pban == 0 && punban == 0))' || log "   the outbox did not drain in 60 s"
		local rb1 qb1
		rb1=$(statn .requests) qb1=$(statn .rate_limited)
		local tl2 span=$((u1 - u0))
		tl2=$(reached "$WORK/s2b.poll" "$total")
		local rate extra
		rate=$(awk -v n="$c2" -v us="$span" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
		extra=$(awk -v n="$ENTERPRISE_WAVE" -v c="$c2" -v us="$span" 'BEGIN { printf "%.0f s", n / c * us / 1e6 }')
		log "   $c2 calls in $(secs "$span") = $rate calls/s -> $ENTERPRISE_WAVE would take ~$extra"
		row 2 "per-IP sample: calls (failed), latency p50 / p99 / max" "$c2 ($f2), $q50 / $q99 / $qmax ms"
		row 2 "per-IP sample: enqueue span, rate" "$(secs "$span"), $rate calls/s"
		row 2 "per-IP sample: live after first call" "$([[ -n $tl2 ]] && secs $((tl2 - u0)) || echo 'not reached')"
		row 2 "per-IP sample: API requests / 429 responses" "$((rb1 - rb0)) / $((qb1 - qb0))" "- / 0" "$(verdict "((qb1 == qb0))")"
		row 2 "per-IP, $ENTERPRISE_WAVE IPs (extrapolated linearly from the sample)" "~$extra to enqueue"
	fi
	settle "$db" 60 '((pban == 0 && punban == 0))' || log "   the outbox did not drain in 60 s"
	cp "$WORK/st" "$OUT/s2-status-final.txt"
	stats >"$OUT/s2-stats.json"
	stop "$WORKER_PID"
	stop "$CFSIM_PID"
}

# ================================================================ scenario 3

# s3_start POLICY TAG CAP DB: a fresh cfsim with the list set up and a
# worker; sets S3_EB (the ban command line) and S3_R0 (cfsim's requests so far).
s3_start() {
	local policy=$1 tag=$2 cap=$3 db=$4 tok=$WORK/token
	log "== 3 ($policy): list mode, Free plan, $((cap + OVER)) IPs into a capacity of $cap"
	local -a simcap=() ebcap=()
	if [[ -n $CAPACITY ]]; then simcap=(-max-list-items "$CAPACITY"); ebcap=(--capacity "$CAPACITY"); fi
	start_cfsim "$tag" -plan free -token "$TOKEN" "${simcap[@]}"
	"$BIN/edgeban" cloudflare setup-list --api "$CF_API" --account "$ACCOUNT" --zone example.com \
		--list edgeban --token-file "$tok" --db "$db" >"$OUT/$tag-setup.txt"
	S3_R0=$(statn .requests)
	start_worker "$tag" "$db"
	S3_EB=(cloudflare ban --db "$db" --api "$CF_API" --account "$ACCOUNT" --list edgeban
		--plan free "${ebcap[@]}" --policy "$policy" --jail sshd --token-file "$tok")
}

scenario3() { # POLICY
	local policy=$1 tag=s3-$1
	local cap=${CAPACITY:-10000} db=$WORK/$tag.db r0
	local -a eb
	s3_start "$policy" "$tag" "$cap" "$db"
	r0=$S3_R0 eb=("${S3_EB[@]}")
	# The oldest OVER first, then the rest up to capacity, then OVER more once
	# those are live: which bans are the oldest is then known exactly.
	ips 0 "$OVER" >"$WORK/$tag.old"
	ips "$OVER" $((cap - OVER)) >"$WORK/$tag.mid"
	ips "$cap" "$OVER" >"$WORK/$tag.new"
	wave "$tag-a" batch 500 "$WORK/$tag.old" "${eb[@]}"
	sleep 0.05
	wave "$tag-b" batch 500 "$WORK/$tag.mid" "${eb[@]}"
	settle "$db" 120 "((live == $cap && pban == 0))" || log "   the first $cap did not go live in 120 s"
	local t0
	t0=$(now_us)
	wave "$tag-c" batch 500 "$WORK/$tag.new" "${eb[@]}"
	# Either policy ends with cap live and OVER pending: held back (keep-oldest)
	# or evicted and parked (evict-oldest), each with its error recorded.
	settle "$db" 60 "((live == $cap && pban == $OVER && failing == $OVER))" ||
		log "   the status did not settle as expected in 60 s"
	sleep 1
	status "$db" >"$OUT/$tag-status.txt" 2>&1 || true
	cp "$OUT/$tag-status.txt" "$WORK/st"
	local settle_s
	settle_s=$(secs $(($(now_us) - t0)))
	state | jq -r '.lists[0].items[].value' | sort >"$WORK/$tag.have"
	local have held hist_held hist_evict failmsg
	have=$(wc -l <"$WORK/$tag.have")
	held=$(col "$WORK/st" "PENDING BAN")
	hist_held=$(awk '$1 == "ban" && $2 == "held-capacity" { print $3 }' "$WORK/st")
	hist_evict=$(awk '$1 == "unban" && $2 == "evicted" { print $3 }' "$WORK/st")
	failmsg=$(awk '/^FAILING/ { i = index($0, "LAST ERROR"); getline; print substr($0, i); exit }' "$WORK/st")
	local q req
	q=$(statn .rate_limited) req=$(($(statn .requests) - r0))
	items <"$WORK/$tag.old" | sort >"$WORK/$tag.old.i"
	items <"$WORK/$tag.new" | sort >"$WORK/$tag.new.i"
	local old_in new_in
	old_in=$(comm -12 "$WORK/$tag.have" "$WORK/$tag.old.i" | wc -l)
	new_in=$(comm -12 "$WORK/$tag.have" "$WORK/$tag.new.i" | wc -l)
	stats >"$OUT/$tag-stats.json"
	stop "$WORKER_PID"
	stop "$CFSIM_PID"
	log "   cfsim holds $have; oldest $OVER: $old_in there; newest $OVER: $new_in there; status: pending ban $held"
	row "3 $policy" "items at cfsim" "$have" "$cap" "$(verdict "((have == cap))")"
	if [[ $policy == keep-oldest ]]; then
		row "3 $policy" "newest $OVER at cfsim / oldest $OVER at cfsim" "$new_in / $old_in" "0 / $OVER" "$(verdict "((new_in == 0 && old_in == OVER))")"
		row "3 $policy" "status: held back (PENDING BAN, FAILING)" "$held, $(col "$WORK/st" FAILING)" "$OVER" "$(verdict "((held == OVER))")"
		row "3 $policy" "status history: ban held-capacity" "${hist_held:-0}"
	else
		row "3 $policy" "oldest $OVER at cfsim / newest $OVER at cfsim" "$old_in / $new_in" "0 / $OVER" "$(verdict "((old_in == 0 && new_in == OVER))")"
		row "3 $policy" "status history: unban evicted" "${hist_evict:-0}" "$OVER" "$(verdict "((${hist_evict:-0} == OVER))")"
		row "3 $policy" "status: PENDING BAN, FAILING (evicted, parked)" "$held, $(col "$WORK/st" FAILING)"
	fi
	row "3 $policy" "status: last error of the $OVER (see notes)" "${failmsg:+shown}"
	note "3 $policy: status shows as last error: ${failmsg:-none}"
	row "3 $policy" "time from extra $OVER to settled status" "$settle_s"
	row "3 $policy" "API requests (setup excluded) / 429 responses" "$req / $q" "- / 0" "$(verdict "((q == 0))")"
}

# scenario3_aggregate: the same wave with --policy aggregate. The addresses
# are dense in 100.64.0.0/10, so merging a few /24s frees the room: every
# banned address stays covered by an item, and none is held back.
scenario3_aggregate() {
	local policy=aggregate tag=s3-aggregate
	local cap=${CAPACITY:-10000} db=$WORK/$tag.db r0
	local -a eb
	s3_start "$policy" "$tag" "$cap" "$db"
	r0=$S3_R0 eb=("${S3_EB[@]}")
	ips 0 "$cap" >"$WORK/$tag.first"
	ips "$cap" "$OVER" >"$WORK/$tag.new"
	wave "$tag-a" batch 500 "$WORK/$tag.first" "${eb[@]}"
	settle "$db" 120 "((live == $cap && pban == 0))" || log "   the first $cap did not go live in 120 s"
	local t0
	t0=$(now_us)
	wave "$tag-c" batch 500 "$WORK/$tag.new" "${eb[@]}"
	settle "$db" 90 "((pban == 0 && punban == 0 && live <= $cap))" ||
		log "   the status did not settle as expected in 90 s"
	sleep 1
	status "$db" >"$OUT/$tag-status.txt" 2>&1 || true
	cp "$OUT/$tag-status.txt" "$WORK/st"
	local settle_s
	settle_s=$(secs $(($(now_us) - t0)))
	state | jq -r '.lists[0].items[].value' | sort >"$WORK/$tag.have"
	local have ranges merged uncovered held
	have=$(wc -l <"$WORK/$tag.have")
	ranges=$(grep -c '^100\..*/24$' "$WORK/$tag.have" || true)
	merged=$(awk '$1 == "ban" && $2 == "aggregated" { print $3 }' "$WORK/st")
	held=$(col "$WORK/st" "PENDING BAN")
	# Every banned address must be an item itself or inside a /24 item.
	cat "$WORK/$tag.first" "$WORK/$tag.new" | items >"$WORK/$tag.want"
	uncovered=$(awk 'NR == FNR { have[$1] = 1; next }
		{ if ($1 in have) next; n = split($1, o, "."); if (n == 4 && ((o[1] "." o[2] "." o[3] ".0/24") in have)) next; miss++ }
		END { print miss + 0 }' "$WORK/$tag.have" "$WORK/$tag.want")
	local q req
	q=$(statn .rate_limited) req=$(($(statn .requests) - r0))
	stats >"$OUT/$tag-stats.json"
	stop "$WORKER_PID"
	stop "$CFSIM_PID"
	log "   cfsim holds $have items, $ranges of them /24 ranges; uncovered addresses: $uncovered"
	row "3 $policy" "items at cfsim (of which /24 ranges)" "$have ($ranges)" "<= $cap" "$(verdict "((have <= cap))")"
	row "3 $policy" "banned addresses not covered by an item" "$uncovered" "0" "$(verdict "((uncovered == 0))")"
	row "3 $policy" "status history: ban aggregated / held back" "${merged:-0} / ${held:-0}" "- / 0" "$(verdict "((${held:-0} == 0))")"
	row "3 $policy" "time from extra $OVER to settled status" "$settle_s"
	row "3 $policy" "API requests (setup excluded) / 429 responses" "$req / $q" "- / 0" "$(verdict "((q == 0))")"
}

# ================================================================ scenario 4

scenario4() {
	local wlimit=$((RULES_LIMIT * 23 / 24))
	log "== 4: access rules (account scope), $RULES_WAVE IPs, cfsim limit $RULES_LIMIT/300 s, watched ${RULES_WATCH}s"
	local db=$WORK/s4.db tok=$WORK/token
	start_cfsim s4 -plan free -token "$TOKEN" -rate-limit "$RULES_LIMIT"
	local -a wflags=()
	[[ $RULES_LIMIT == 1200 ]] || wflags=(--rate-limit "$wlimit")
	STATUS_FLAGS=("${wflags[@]}")
	start_worker s4 "$db" "${wflags[@]}"
	ips 0 "$RULES_WAVE" >"$WORK/s4.ips"
	local t0 end
	t0=$(now_us)
	end=$((SECONDS + RULES_WATCH))
	wave s4 batch 500 "$WORK/s4.ips" cloudflare ban --db "$db" --api "$CF_API" --account "$ACCOUNT" \
		--jail sshd --token-file "$tok"
	read -r calls failed t0 t1 p50 p99 pmax < <(latency "$WORK/s4.lat")
	: >"$OUT/s4-timeline.txt"
	while ((SECONDS < end)); do
		echo "$(( ($(now_us) - t0) / 1000000 ))s requests=$(statn .requests) 429=$(statn .rate_limited)" >>"$OUT/s4-timeline.txt"
		left=$((end - SECONDS))
		((left <= 5)) || left=5
		((left <= 0)) || sleep "$left"
	done
	local req q rules
	req=$(statn .requests) q=$(statn .rate_limited)
	rules=$(rule_count "account:$ACCOUNT")
	echo "$(( ($(now_us) - t0) / 1000000 ))s requests=$req 429=$q (final)" >>"$OUT/s4-timeline.txt"
	status "$db" "${STATUS_FLAGS[@]}" >"$OUT/s4-status.txt" 2>&1 || true
	stats >"$OUT/s4-stats.json"
	local proj live pban
	proj=$(col "$OUT/s4-status.txt" PROJECTED)
	live=$(col "$OUT/s4-status.txt" LIVE) pban=$(col "$OUT/s4-status.txt" "PENDING BAN")
	STATUS_FLAGS=()
	stop "$WORKER_PID"
	stop "$CFSIM_PID"
	log "   after ${RULES_WATCH}s: $req requests, $q 429s, $rules rules; projected: $proj"
	row 4 "API requests in the first ${RULES_WATCH} s" "$req" "<= $RULES_LIMIT"  "$(verdict "((req <= RULES_LIMIT))")"
	row 4 "429 responses in the first ${RULES_WATCH} s" "$q" "0" "$(verdict "((q == 0))")"
	row 4 "rules at cfsim / outbox live / pending ban" "$rules / $live / $pban"
	row 4 "status PROJECTED for the rest" "$proj"
}

# ================================================================ scenario 5

# The seed's cloudflare-restv4 action (API-NOTES §7), its URLs pointed at
# cfsim; fail2ban substitutes the tags and runs the line with sh -c.
ACTIONBAN="curl -s -o /dev/null -X POST -H 'X-Auth-Email: <cfuser>' -H 'X-Auth-Key: <cftoken>' -H 'Content-Type: application/json' -d '{\"mode\":\"block\",\"configuration\":{\"target\":\"ip\",\"value\":\"<ip>\"},\"notes\":\"Banned by Fail2Ban\"}' <api>/user/firewall/access_rules/rules"
ACTIONUNBAN="curl -s -X GET -H 'X-Auth-Email: <cfuser>' -H 'X-Auth-Key: <cftoken>' -H 'Content-Type: application/json' '<api>/user/firewall/access_rules/rules?configuration.value=<ip>&notes=Banned%20by%20Fail2Ban&match=all' | python -c \"import sys, json; print json.load(sys.stdin)['result'][0]['id']\" | xargs -I{} curl -s -o /dev/null -X DELETE -H 'X-Auth-Email: <cfuser>' -H 'X-Auth-Key: <cftoken>' -H 'Content-Type: application/json' <api>/user/firewall/access_rules/rules/{}"

# tags TEMPLATE: the action line with the tags but <ip> filled in.
tags() {
	local s=$1
	s=${s//<cfuser>/$CFUSER}
	s=${s//<cftoken>/$CFKEY}
	s=${s//<api>/$CF_API}
	printf '%s' "$s"
}

SHCALL=$WORK/shcall.sh
write_shcaller() {
	cat >"$SHCALL" <<'EOF'
for ip in "$@"; do
	t=$EPOCHREALTIME; s=${t/./}
	rc=0
	sh -c "${ACTION//<ip>/$ip}" >>"$OUTF" 2>>"$ERRS" || rc=$?
	t=$EPOCHREALTIME; e=${t/./}
	printf '%s %s %s\n' "$s" "$e" "$rc" >>"$LAT"
done
exit 0
EOF
}

# shell_wave NAME TEMPLATE IPFILE PARALLEL
shell_wave() {
	: >"$WORK/$1.lat"
	ACTION=$(tags "$2") LAT=$WORK/$1.lat ERRS=$OUT/$1.err OUTF=$OUT/$1.out \
		xargs -P "$4" -n 25 bash "$SHCALL" <"$3" || log "xargs ($1) exited $?"
}

# find_python2: a Python 2 interpreter for the control run, or nothing.
find_python2() {
	local c
	for c in ${PYTHON2:-} python2 python2.7 $(command -v pyenv >/dev/null && ls -d "$(pyenv root)"/versions/2.7*/bin/python2.7 2>/dev/null); do
		[[ -n $c ]] || continue
		if "$c" -c 'print "ok"' >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	return 0
}

# unban_sample NAME IPFILE PATHDIR: runs the action's unban for each address,
# sequentially, with PATHDIR (or nothing) first on PATH.
unban_sample() {
	local name=$1 ipf=$2 pathdir=$3
	local tmpl
	tmpl=$(tags "$ACTIONUNBAN")
	: >"$OUT/$name.err"
	local ip rc fails=0
	while read -r ip; do
		rc=0
		PATH=${pathdir:+$pathdir:}$PATH sh -c "${tmpl//<ip>/$ip}" >>"$OUT/$name.out" 2>>"$OUT/$name.err" || rc=$?
		((rc == 0)) || fails=$((fails + 1))
	done <"$ipf"
	echo "$fails"
}

scenario5() {
	log "== 5: the seed's shell action, $SHELL_WAVE IPs, one curl per IP from $CALLERS callers"
	write_shcaller
	local pybin pyver
	if command -v python >/dev/null; then
		pybin=python
	else
		pybin=python3
		ACTIONUNBAN=${ACTIONUNBAN//| python -c/| python3 -c}
	fi
	pyver="$("$pybin" --version 2>&1 || true) as '$pybin' ($(command -v "$pybin" || echo missing))"
	log "   the unban one-liner runs under $pyver"
	local py2
	py2=$(find_python2)
	if [[ -n $py2 ]]; then
		mkdir -p "$WORK/py2"
		ln -sf "$py2" "$WORK/py2/python"
		log "   Python 2 for the control runs: $py2"
	fi

	start_cfsim s5 -plan free -email "$CFUSER" -key "$CFKEY" -rate-limit "$SHELL_LIMIT"
	ips 0 "$SHELL_WAVE" >"$WORK/s5.ips"
	shell_wave s5 "$ACTIONBAN" "$WORK/s5.ips" "$CALLERS"
	read -r calls failed t0 t1 p50 p99 pmax < <(latency "$WORK/s5.lat")
	local req q s200 s400 rules
	stats >"$OUT/s5-stats.json"
	req=$(jq .requests "$OUT/s5-stats.json") q=$(jq .rate_limited "$OUT/s5-stats.json")
	s200=$(jq '.by_status["200"] // 0' "$OUT/s5-stats.json") s400=$(jq '.by_status["400"] // 0' "$OUT/s5-stats.json")
	state | jq -r '.access_rules.user[].value' >"$WORK/s5.held"
	rules=$(wc -l <"$WORK/s5.held")
	local rpi
	rpi=$(awk -v r="$req" -v n="$SHELL_WAVE" 'BEGIN { printf "%.2f", r / n }')
	log "   $calls curls in $(secs $((t1 - t0))): $req requests, 200: $s200, 400: $s400, 429: $q; cfsim holds $rules rules"
	row 5 "curl invocations (non-zero exits)" "$calls ($failed)"
	row 5 "API requests per IP" "$rpi ($req requests)"
	row 5 "wave duration (first curl start to last end)" "$(secs $((t1 - t0)))"
	row 5 "curl latency p50 / p99" "$p50 / $p99 ms"
	row 5 "answers 200 / 400 / 429" "$s200 / $s400 / $q"
	((s400 == 0)) || note "5: the $s400 answers 400 are IPv6 addresses: the action always sends target \"ip\""
	row 5 "rules at cfsim at the end (lost)" "$rules ($((SHELL_WAVE - rules)) lost)" "$SHELL_WAVE" "$(verdict "((rules == SHELL_WAVE))")"

	# The unban of a sample of rules cfsim does hold, right after the wave.
	head -n "$UNBAN_SAMPLE" "$WORK/s5.held" >"$WORK/s5.sample"
	local n_sample r0 g0 d0 fails r1 g1 d1 after syntax
	n_sample=$(wc -l <"$WORK/s5.sample")
	r0=$(statn .requests) g0=$(statn '.by_route["GET /user/firewall/access_rules/rules"]')
	d0=$(statn '.by_route["DELETE /user/firewall/access_rules/rules/{rule_id}"]')
	fails=$(unban_sample s5-unban "$WORK/s5.sample" "")
	r1=$(statn .requests) g1=$(statn '.by_route["GET /user/firewall/access_rules/rules"]')
	d1=$(statn '.by_route["DELETE /user/firewall/access_rules/rules/{rule_id}"]')
	after=$(rule_count user)
	syntax=$(grep -c 'SyntaxError' "$OUT/s5-unban.err" || true)
	log "   unban of $n_sample: GETs $((g1 - g0)), DELETEs $((d1 - d0)), rules $rules -> $after, SyntaxErrors $syntax"
	row 5 "unban sample, right after the wave" "$n_sample IPs that cfsim holds"
	note "5: the unban one-liner ran under $pyver"
	row 5 "unban: GETs / DELETEs sent / rules deleted" "$((g1 - g0)) / $((d1 - d0)) / $((rules - after))" "- / - / $n_sample" "$(verdict "((rules - after == n_sample))")"
	row 5 "unban: python SyntaxErrors / pipelines exiting non-zero" "$syntax / $fails"
	if [[ -n $py2 ]]; then
		local b0 b1
		b0=$(rule_count user)
		fails=$(unban_sample s5-unban-py2 "$WORK/s5.sample" "$WORK/py2")
		b1=$(rule_count user)
		row 5 "unban right after the wave under Python 2: rules deleted" "$((b0 - b1))" "$n_sample" "$(verdict "((b0 - b1 == n_sample))")"
	fi
	local lock
	lock=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Email: $CFUSER" -H "X-Auth-Key: $CFKEY" "$CF_API/user/firewall/access_rules/rules?per_page=1")
	row 5 "credential after the wave (a GET now answers)" "HTTP $lock"
	stop "$CFSIM_PID"

	# Control: the same sample on a cfsim that is not locked out, so that
	# only the one-liner decides; then under Python 2 if there is one.
	log "   control: $n_sample bans and their unban on a fresh cfsim (no lockout)"
	start_cfsim s5-control -plan free -email "$CFUSER" -key "$CFKEY"
	shell_wave s5-control-ban "$ACTIONBAN" "$WORK/s5.sample" 1
	local c0 c1
	c0=$(rule_count user)
	fails=$(unban_sample s5-control-unban "$WORK/s5.sample" "")
	c1=$(rule_count user)
	syntax=$(grep -c 'SyntaxError' "$OUT/s5-control-unban.err" || true)
	row 5 "control, no lockout: unban under $pybin: rules deleted" "$((c0 - c1)) of $c0 (SyntaxErrors $syntax)" "$c0" "$(verdict "((c0 - c1 == c0))")"
	if [[ -n $py2 ]]; then
		fails=$(unban_sample s5-control-unban-py2 "$WORK/s5.sample" "$WORK/py2")
		local c2
		c2=$(rule_count user)
		row 5 "control, no lockout: the same under Python 2 ($("$py2" --version 2>&1))" "$((c1 - c2)) of $c1 deleted" "$c1" "$(verdict "((c1 - c2 == c1))")"
	else
		row 5 "control under Python 2" "skipped: no Python 2 interpreter found"
	fi
	stats >"$OUT/s5-control-stats.json"
	stop "$CFSIM_PID"
}

# ================================================================ main

: >"$OUT/run.log"
log "edgeban cloudflare wave benchmark$( ((QUICK)) && echo ' (quick)'); work dir $WORK, results in $OUT"
command -v go >/dev/null || die "go is not on PATH"
for tool in curl jq awk xargs; do command -v "$tool" >/dev/null || die "$tool is not on PATH"; done
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/edgeban" ./cmd/edgeban && go build -o "$BIN/cfsim" ./cmd/cfsim) || die "go build failed"
log "built edgeban and cfsim ($(go version | awk '{ print $3 }'))"
# What was built: the commit, and the Go files that differed from it then.
BUILT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
BUILT_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no -- '*.go' 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ' || true)
printf '%s\n' "$TOKEN" >"$WORK/token"
chmod 600 "$WORK/token"
write_caller
rm -f "$OUT"/*-cli.err "$OUT"/*-worker.log "$OUT"/*-cfsim.log "$OUT"/s5*.err "$OUT"/s5*.out

for s in $SCENARIOS; do
	t=$SECONDS
	case $s in
	1) scenario1 ;;
	2) scenario2 ;;
	3) scenario3 keep-oldest; scenario3 evict-oldest; scenario3_aggregate ;;
	4) scenario4 ;;
	5) scenario5 ;;
	*) die "unknown scenario $s" ;;
	esac
	log "   scenario $s took $((SECONDS - t)) s"
done

{
	echo "edgeban Cloudflare wave benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "built from commit $BUILT_REV$([[ -z $BUILT_DIRTY ]] || echo ' plus uncommitted changes')," \
		"$(go version | awk '{ print $3 }'), $(nproc) CPUs, $CALLERS callers$( ((QUICK)) && echo ', --quick')," \
		"total $((SECONDS - T_START)) s"
	[[ -z $BUILT_DIRTY ]] || echo "uncommitted changes built in: $BUILT_DIRTY"
	echo "sizes: WAVE=$WAVE ENTERPRISE_WAVE=$ENTERPRISE_WAVE ENTERPRISE_BATCH=$ENTERPRISE_BATCH PER_IP_SAMPLE=$PER_IP_SAMPLE" \
		"CAPACITY=${CAPACITY:-10000} OVER=$OVER RULES_WAVE=$RULES_WAVE RULES_WATCH=$RULES_WATCH SHELL_WAVE=$SHELL_WAVE V6_EVERY=$V6_EVERY"
	echo
	{
		printf 'SCENARIO\tFIGURE\tVALUE\tTARGET\tVERDICT\n'
		printf '%s\n' "${ROWS[@]}"
	} | awk -F'\t' '
		{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR }
		END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= 5; i++) line = line sprintf("%-" w[i] + 2 "s", c[r, i]); sub(/ +$/, "", line); print line } }'
	if ((${#NOTES[@]})); then
		echo
		echo "Notes:"
		printf '  %s\n' "${NOTES[@]}"
	fi
} >"$OUT/results.txt"
echo
cat "$OUT/results.txt"
