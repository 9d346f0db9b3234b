# bench/lib.sh: the shell helpers the bench scripts share. A script sets
# RUNLOG (the file its log lines and apt-get's output go to) and T_START
# (the $SECONDS it started at); one that starts processes also sets WORK
# (its temporary directory, removed at exit unless KEEP_WORK=1) and
# STOP_WAIT (the seconds stop waits after SIGTERM, default 5), then
# sources this file and calls bench_traps. Bash only.

PIDS=() # the processes the script started and has not stopped

log() { printf '[%4ds] %s\n' $((SECONDS - T_START)) "$*" | tee -a "$RUNLOG" >&2; }
die() { log "FATAL: $*"; exit 1; }

# now_us prints the time in microseconds since the epoch.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# alive reports whether pid runs (a zombie child does not count).
alive() {
	[[ -r /proc/$1/stat ]] || return 1
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ $st != Z && -n $st ]]
}

# stop PID stops a process the script started: SIGTERM, up to STOP_WAIT
# seconds, then SIGKILL; and forgets it.
stop() {
	local pid=$1 i keep=()
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < ${STOP_WAIT:-5} * 10; i++)); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	wait "$pid" 2>/dev/null || true
	for i in "${PIDS[@]}"; do [[ $i == "$pid" ]] || keep+=("$i"); done
	PIDS=("${keep[@]}")
}

# cleanup stops what runs and removes WORK, keeping the exit status.
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop "$pid"; done
	if [[ ${KEEP_WORK:-0} == 1 ]]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}

# bench_traps runs cleanup at exit, and exits on an interrupt.
bench_traps() {
	trap cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT TERM
}

# as_root CMD...: runs CMD as root, through sudo when not root already.
as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root or sudo to run: $*"
	fi
}

APT_UPDATED=0

# apt_install PKG...: installs Debian packages, after one apt-get update.
apt_install() {
	command -v apt-get >/dev/null || die "apt-get not found: install $* by hand (this script knows Debian and Ubuntu)"
	if ((!APT_UPDATED)); then
		log "apt-get update"
		as_root apt-get update -qq >>"$RUNLOG" 2>&1 || die "apt-get update failed (see $RUNLOG)"
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
		>>"$RUNLOG" 2>&1 || die "apt-get install $* failed (see $RUNLOG)"
}
