#!/usr/bin/env bash
# regex-vs-fail2ban.sh: `edgeban regex` against Debian's fail2ban-regex.
#
# It generates a synthetic auth.log (bench/gen-authlog, LOG_LINES lines), then
# runs, on that log and the same filter file (/etc/fail2ban/filter.d/sshd.conf):
#
#   fail2ban-regex LOG FILTER
#   edgeban regex LOG FILTER
#
# each under /usr/bin/time -v. Both print fail2ban-regex's summary line
# ("Lines: N lines, I ignored, M matched, X missed"). The script fails when the
# counts differ, when edgeban is less than MIN_SPEEDUP times faster, or when its
# peak RSS reaches MAX_RSS_MB. Then it runs edgeban with our own filter
# (config/filter.d/sshd.conf, when it exists) and reports its speed.
#
# On a fresh Debian or Ubuntu machine it installs fail2ban and GNU time with
# apt-get when they are missing; that step needs root or sudo. Nothing else does.
# Results: bench/out/regex-results.txt (also printed); the tools' outputs and
# time -v reports stay in bench/out. See bench/README.md.
#
# Usage: bench/regex-vs-fail2ban.sh [--lines N] [--help]
set -euo pipefail
export LC_ALL=C

usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
	cat <<'EOF'

Environment:
  LOG_LINES=1000000     lines in the synthetic log (--lines N does the same)
  SEED=20251125         the generator's seed (same seed and size, same log)
  MIN_SPEEDUP=30        fail if fail2ban wall / edgeban wall is below this
  MAX_RSS_MB=30         fail if edgeban's peak RSS is this many MB or more
  EDGEBAN_RUNS=3        edgeban runs per filter; the median wall time counts
  FILTER=/etc/fail2ban/filter.d/sshd.conf    the filter both tools run
  OWN_FILTER=config/filter.d/sshd.conf       edgeban's own filter (skipped if absent)
  OUT_DIR=bench/out     where the log, the binaries and the results go
EOF
}

while (($#)); do
	case $1 in
	--lines) [[ $# -ge 2 ]] || { echo "regex-vs-fail2ban.sh: --lines needs a number" >&2; exit 2; }
		LOG_LINES=$2; shift ;;
	--lines=*) LOG_LINES=${1#--lines=} ;;
	-h | --help) usage; exit 0 ;;
	*) echo "regex-vs-fail2ban.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

: "${LOG_LINES:=1000000}" "${SEED:=20251125}" "${MIN_SPEEDUP:=30}" "${MAX_RSS_MB:=30}" "${EDGEBAN_RUNS:=3}"
: "${FILTER:=/etc/fail2ban/filter.d/sshd.conf}" "${OWN_FILTER:=config/filter.d/sshd.conf}"
[[ $EDGEBAN_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "regex-vs-fail2ban.sh: EDGEBAN_RUNS must be a positive integer" >&2; exit 2; }
[[ $LOG_LINES =~ ^[1-9][0-9]*$ ]] || { echo "regex-vs-fail2ban.sh: LOG_LINES must be a positive integer, not '$LOG_LINES'" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT_DIR:-$HERE/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[[ $OWN_FILTER == /* ]] || OWN_FILTER=$ROOT/$OWN_FILTER
LOG=$OUT/auth-$LOG_LINES.log
RESULTS=$OUT/regex-results.txt
T_START=$SECONDS

RUNLOG=$OUT/regex-run.log
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- runs

# timed NAME CMD...: runs CMD under /usr/bin/time -v, stdout to NAME.out,
# stderr to NAME.err, the time report to NAME.time. Sets RC, WALL_US (taken
# with $EPOCHREALTIME around the process: finer than time's 10 ms) and RSS_KB.
timed() {
	local name=$1 t0 t1
	shift
	RC=0
	t0=$(now_us)
	/usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || RC=$?
	t1=$(now_us)
	WALL_US=$((t1 - t0))
	RSS_KB=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$OUT/$name.time" 2>/dev/null || true)
	[[ -n $RSS_KB ]] || RSS_KB=0
}

# counts NAME: "tested ignored matched missed" from NAME.out's Lines: line.
counts() {
	awk '/^Lines: [0-9]+ lines, [0-9]+ ignored, [0-9]+ matched, [0-9]+ missed/ {
		gsub(/,/, ""); print $2, $4, $6, $8; found = 1; exit }
		END { if (!found) exit 1 }' "$OUT/$1.out"
}

ROWS=()
# row TOOL: a table row from the last timed run and its counts.
row() {
	local tool=$1 tested=$2 ignored=$3 matched=$4 missed=$5
	ROWS+=("$(awk -v t="$tool" -v us="$WALL_US" -v kb="$RSS_KB" -v n="$tested" -v i="$ignored" -v m="$matched" -v x="$missed" \
		'BEGIN { printf "%s\t%.2f\t%.0f\t%.1f\t%s\t%s\t%s", t, us / 1e6, n / (us / 1e6), kb / 1024, m, i, x }')")
}

# run TOOL NAME CMD...: EDGEBAN_RUNS timed runs for edgeban (one for
# fail2ban-regex, whose 20 s hardly vary) that must exit 0, print a Lines:
# line and agree on it. Sets WALL_US to the median wall time, RSS_KB to the
# largest peak RSS and C (the counts) on success.
run() {
	local tool=$1 name=$2 runs=1 i first="" walls=() rss=0
	shift 2
	[[ $tool == edgeban* ]] && runs=$EDGEBAN_RUNS
	log "$tool: $*$( ((runs == 1)) || echo " (median of $runs runs)")"
	for ((i = 0; i < runs; i++)); do
		timed "$name" "$@"
		if ((RC != 0)); then
			log "$tool exited $RC; the last lines of its stderr ($OUT/$name.err):"
			tail -n 5 "$OUT/$name.err" | sed 's/^/    /' >&2
			return 1
		fi
		C=$(counts "$name") || { log "$tool printed no 'Lines: N lines, I ignored, M matched, X missed' line (see $OUT/$name.out)"; return 1; }
		[[ -z $first || $first == "$C" ]] || { log "$tool counted '$C', then '$first' on the same log"; return 1; }
		first=$C walls+=("$WALL_US")
		((RSS_KB > rss)) && rss=$RSS_KB
	done
	WALL_US=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	RSS_KB=$rss
	local -a c
	read -ra c <<<"$C"
	row "$tool" "${c[@]}"
	log "   $(awk '/^Lines: / { print; exit }' "$OUT/$name.out"); wall $(awk -v us="$WALL_US" 'BEGIN { printf "%.2f", us / 1e6 }') s$( ((runs == 1)) || echo " (runs: $(printf '%s\n' "${walls[@]}" | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / 1e6 }'))"), peak RSS $((RSS_KB / 1024)) MB"
}

# report: the table, the checks and the verdicts, to RESULTS and stdout.
CHECKS=()
check() { CHECKS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4"); } # FIGURE VALUE TARGET VERDICT
report() {
	{
		echo "edgeban regex vs fail2ban-regex, $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "built from commit $BUILT_REV$([[ -z $BUILT_DIRTY ]] || echo ' plus uncommitted changes'), $(go version | awk '{ print $3 }')," \
			"$F2B_VERSION, $(nproc) CPUs, total $((SECONDS - T_START)) s"
		[[ -z $BUILT_DIRTY ]] || echo "uncommitted changes built in: $BUILT_DIRTY"
		echo "log: $LOG ($LOG_LINES lines, seed $SEED, $(du -m "$LOG" | cut -f1) MB); filter: $FILTER"
		echo
		{
			printf 'TOOL\tWALL s\tLINES/s\tPEAK RSS MB\tMATCHED\tIGNORED\tMISSED\n'
			printf '%s\n' "${ROWS[@]}"
		} | awk -F'\t' '
			{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
			END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf(i == 1 ? "%-" w[i] + 2 "s" : "%" w[i] "s  ", c[r, i]); sub(/ +$/, "", line); print line } }'
		if ((${#CHECKS[@]})); then
			echo
			{
				printf 'CHECK\tVALUE\tTARGET\tVERDICT\n'
				printf '%s\n' "${CHECKS[@]}"
			} | awk -F'\t' '
				{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR }
				END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= 4; i++) line = line sprintf("%-" w[i] + 2 "s", c[r, i]); sub(/ +$/, "", line); print line } }'
		fi
		if ((${#NOTES[@]})); then
			echo
			printf '%s\n' "${NOTES[@]}"
		fi
	} >"$RESULTS"
	echo
	cat "$RESULTS"
}
NOTES=()

# ================================================================ main

: >"$OUT/regex-run.log"
log "edgeban regex vs fail2ban-regex: $LOG_LINES lines, results in $OUT"

command -v go >/dev/null || die "go is not on PATH (edgeban needs Go; see go.mod for the version)"
if ! command -v fail2ban-regex >/dev/null; then
	apt_install fail2ban
	command -v fail2ban-regex >/dev/null || die "fail2ban is installed but fail2ban-regex is not on PATH"
fi
[[ -x /usr/bin/time ]] || apt_install time
[[ -x /usr/bin/time ]] || die "/usr/bin/time is still missing"
[[ -r $FILTER ]] || die "filter $FILTER not found (it comes with Debian's fail2ban package)"
F2B_VERSION="fail2ban $(fail2ban-regex --version 2>/dev/null | awk '{ print $NF; exit }')"

(cd "$ROOT" && go build -o "$OUT/edgeban" ./cmd/edgeban && go build -o "$OUT/gen-authlog" ./bench/gen-authlog) ||
	die "go build failed"
BUILT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
BUILT_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no -- '*.go' 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ' || true)
log "built edgeban and gen-authlog ($(go version | awk '{ print $3 }')); $F2B_VERSION"

log "generating $LOG"
"$OUT/gen-authlog" -n "$LOG_LINES" -seed "$SEED" -o "$LOG" -stats 2>&1 | tee -a "$OUT/regex-run.log" >&2
[[ $(wc -l <"$LOG") -eq $LOG_LINES ]] || die "the generator wrote $(wc -l <"$LOG") lines, not $LOG_LINES"

FAILED=0

# 1. fail2ban-regex: the reference.
run fail2ban-regex regex-fail2ban fail2ban-regex "$LOG" "$FILTER" || die "fail2ban-regex failed"
read -r F_N F_I F_M F_X <<<"$C"
F_US=$WALL_US
((F_N == LOG_LINES)) || die "fail2ban-regex counted $F_N lines, the log has $LOG_LINES"

# 2. edgeban regex on the same log and the same filter.
if ! run "edgeban regex" regex-edgeban "$OUT/edgeban" regex "$LOG" "$FILTER"; then
	report
	die "'edgeban regex LOG FILTER' did not work: is the regex subcommand in cmd/edgeban yet? (fail2ban-regex's figures are above)"
fi
read -r E_N E_I E_M E_X <<<"$C"
E_US=$WALL_US E_RSS=$RSS_KB

if [[ "$E_N $E_I $E_M $E_X" == "$F_N $F_I $F_M $F_X" ]]; then
	check "counts (lines ignored matched missed)" "identical: $E_N $E_I $E_M $E_X" "identical" ok
else
	check "counts (lines ignored matched missed)" "edgeban $E_N $E_I $E_M $E_X, fail2ban $F_N $F_I $F_M $F_X" "identical" FAIL
	NOTES+=("The counts differ: compare the matched lines with 'fail2ban-regex --print-all-matched $LOG $FILTER'.")
	FAILED=1
fi
SPEEDUP=$(awk -v f="$F_US" -v e="$E_US" 'BEGIN { printf "%.1f", f / (e > 0 ? e : 1) }')
if awk -v s="$SPEEDUP" -v m="$MIN_SPEEDUP" 'BEGIN { exit !(s >= m) }'; then v=ok; else v=FAIL; FAILED=1; fi
check "speed-up (fail2ban wall / edgeban wall)" "${SPEEDUP}x" ">= ${MIN_SPEEDUP}x" "$v"
RSS_MB=$(awk -v kb="$E_RSS" 'BEGIN { printf "%.1f", kb / 1024 }')
if awk -v r="$RSS_MB" -v m="$MAX_RSS_MB" 'BEGIN { exit !(r < m) }'; then v=ok; else v=FAIL; FAILED=1; fi
check "edgeban peak RSS" "$RSS_MB MB" "< $MAX_RSS_MB MB" "$v"

# 3. edgeban regex with our own filter: speed only.
if [[ -r $OWN_FILTER ]]; then
	if run "edgeban regex, own filter" regex-edgeban-own "$OUT/edgeban" regex "$LOG" "$OWN_FILTER"; then
		read -r O_N O_I O_M O_X <<<"$C"
		check "own filter ${OWN_FILTER#"$ROOT"/}: lines/s" \
			"$(awk -v n="$O_N" -v us="$WALL_US" 'BEGIN { printf "%.0f", n / (us / 1e6) }')" "-" "-"
		[[ "$O_I $O_M $O_X" == "$F_I $F_M $F_X" ]] ||
			NOTES+=("The own filter counts $O_M matched, $O_I ignored, $O_X missed; Debian's sshd.conf in fail2ban-regex: $F_M, $F_I, $F_X (reported, not checked).")
	else
		check "own filter ${OWN_FILTER#"$ROOT"/}" "edgeban regex failed (see $OUT/regex-edgeban-own.err)" "runs" FAIL
		FAILED=1
	fi
else
	log "skipping the own-filter run: $OWN_FILTER does not exist"
	check "own filter" "skipped: ${OWN_FILTER#"$ROOT"/} not found" "-" "-"
fi

report
((FAILED == 0)) || die "at least one check FAILED (see the table above)"
log "all checks passed"
