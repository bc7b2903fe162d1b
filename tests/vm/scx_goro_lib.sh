# SPDX-License-Identifier: BSD-3-Clause
# Shared by the scx_goro vm test scripts (sourced, not run).
# The caller sets NAME before sourcing; LOADER is the path of scx_goro and
# WRITER, for the tests that use it, of goro_export_writer. A vm test never
# skips: off a sched_ext kernel, or not root, it fails with the reason.
SYS=/sys/kernel/sched_ext
ATTACH_TIMEOUT_S=${ATTACH_TIMEOUT_S:-60}

say() { printf '%s: %s\n' "$NAME" "$*"; }
fail() { say "FAIL: $*"; [[ -n ${log:-} && -f $log ]] && { say "loader output:"; sed 's/^/    /' "$log"; }; exit 1; }
check() { say "ok: $*"; }

require_vm() {
	[[ $(id -u) -eq 0 ]] || fail "must run as root; run it inside vmtest/run"
	[[ -d $SYS ]] || fail "$SYS is missing: this kernel ($(uname -r)) has no sched_ext; run it inside vmtest/run"
	[[ -x $LOADER ]] || fail "loader '$LOADER' is not executable"
	[[ -z ${WRITER+x} || -x $WRITER ]] || fail "writer '$WRITER' is not executable"
	local state
	state=$(<"$SYS/state")
	[[ $state == disabled ]] || fail "a sched_ext scheduler is already loaded (state '$state')"
}

work=$(mktemp -d)
kmsg_before=$(dmesg | wc -l)
log=$work/loader.log
loader_pid=
cleanup() {
	if [[ -n $loader_pid ]] && kill -0 "$loader_pid" 2>/dev/null; then
		kill -INT "$loader_pid"
		wait "$loader_pid" 2>/dev/null
	fi
	local pids
	pids=$(jobs -p)
	[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# start_loader ARGS...: starts scx_goro, waits until it is enabled and its
# attach socket exists.
start_loader() {
	"$LOADER" "$@" >"$log" 2>&1 &
	loader_pid=$!
	local deadline=$((SECONDS + ATTACH_TIMEOUT_S))
	while :; do
		[[ $(<"$SYS/state") == enabled && -S /run/scx_goro.sock ]] && break
		kill -0 "$loader_pid" 2>/dev/null || { wait "$loader_pid"; loader_pid=; fail "loader exited before it was enabled"; }
		((SECONDS < deadline)) || fail "not enabled after ${ATTACH_TIMEOUT_S}s"
		sleep 0.2
	done
	check "loader enabled (scx_goro $*)"
}

# stop_loader: SIGINT, expect exit 0 and an orderly UNREG exit.
stop_loader() {
	kill -INT "$loader_pid"
	wait "$loader_pid"
	local rc=$?
	loader_pid=
	((rc == 0)) || fail "loader exited with status $rc after SIGINT, want 0"
	grep -q 'EXIT: kind UNREG' "$log" || fail "loader did not report an orderly UNREG exit"
	[[ $(<"$SYS/state") == disabled ]] || fail "state not 'disabled' after the loader exited"
	check "loader exited 0 with an UNREG exit; state disabled"
}

# last_stats: the loader's last stats line; field NAME LINE: a number in it,
# e.g. field procs "$line", field run "$line" (Ms RUNNING).
last_stats() { grep '^scx_goro: stats' "$log" | tail -1; }
field() { sed -n "s/.*[ \[]$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# calibrate SERVICE: sets iters_per_s, how many work-loop iterations of
# goro_scx_service make one second here (fails the test if it cannot say).
calibrate() {
	iters_per_s=$("$1" calibrate 1000000 | sed -n 's/.* iters=\([0-9]*\).*/\1/p')
	[[ -n $iters_per_s ]] || fail "goro_scx_service calibrate printed no iters="
}

# cpu_ms_of FILE: the cpu_ms field of a writer's last line.
cpu_ms_of() { sed -n 's/.* cpu_ms \([0-9]*\) .*/\1/p' "$1" | tail -1; }
# workers_cpu_ms_of FILE: the CPU time of a writer's NTHREADS workers only.
workers_cpu_ms_of() { sed -n 's/.* workers_cpu_ms \([0-9]*\).*/\1/p' "$1" | tail -1; }
pid_of_writer() { sed -n 's/.* pid \([0-9]*\) .*/\1/p' "$1" | tail -1; }

# show_file TITLE FILE: a file's content, indented, in the test's output.
show_file() {
	say "$1:"
	sed 's/^/    /' "$2"
}

# loader_alive: the scheduler was not ejected and the loader still runs.
loader_alive() {
	kill -0 "$loader_pid" 2>/dev/null && [[ $(<"$SYS/state") == enabled ]] ||
		fail "scx_goro is no longer enabled (state '$(<"$SYS/state")'): ejected, or the loader died"
}

# kmsg_clean: no sched_ext error, BUG or WARNING since the lib was sourced.
kmsg_clean() {
	local bad
	bad=$(dmesg | tail -n +$((kmsg_before + 1)) |
		grep -E 'BUG:|WARNING:|Oops|Call Trace:|sched_ext: .*(error|stall|failed to run|watchdog)' || true)
	[[ -z $bad ]] || fail "kernel log has errors:"$'\n'"$bad"
	check "kernel log: no sched_ext errors, BUGs or WARNINGs"
}

# run_workloads_for SECS WHEN WORKLOADS "name args" ...: run goro_workloads
# (GORO_MAXPROCS=2) through the given list, round and round, until SECS
# have passed; fail on the first failure ("... failed WHEN"). Sets nrun.
run_workloads_for() {
	local secs=$1 when=$2 bin=$3 end w rc
	shift 3
	end=$((SECONDS + secs))
	nrun=0
	while ((SECONDS < end)); do
		for w in "$@"; do
			GORO_MAXPROCS=2 timeout 120 "$bin" $w >"$work/w.out" 2>&1 || {
				rc=$?
				show_file "$w output (exit status $rc; 124: timed out)" "$work/w.out"
				fail "goro workload '$w' failed $when"
			}
			nrun=$((nrun + 1))
			((SECONDS < end)) || break
		done
	done
}

# as_nobody CMD ARGS...: runs CMD as the unprivileged uid/gid 65534 with no
# supplementary groups (the attacker of the hostile-process tests).
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }

# ci_stress SECS: the scx CI recipe -- stress-ng --aggressive (CPU hogs,
# context-switch ping-pong, yielders) for SECS seconds in the foreground;
# fails unless stress-ng exits 0 and scx_goro is still enabled afterwards.
ci_stress() {
	stress-ng --cpu 0 --switch 2 --yield 2 --aggressive --timeout "${1}s" --metrics-brief >"$work/stress.out" 2>&1
	local st=$?
	sed 's/^/    /' "$work/stress.out"
	((st == 0)) || fail "stress-ng --aggressive exited $st"
	loader_alive
}
