/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * scx_goro - a sched_ext scheduler that knows about goro's Ms and Ps.
 *
 * The base: weighted vtime on one shared queue
 * --------------------------------------------
 * Every task on the machine (a full switch by default; -p switches only
 * SCHED_EXT tasks) is scheduled by virtual time on ONE shared dispatch
 * queue, GORO_SHARED_DSQ:
 *
 *   - A task's vtime (p->scx.dsq_vtime) advances while it runs, by the
 *     time it used scaled by 100/weight ("Charging" below). Over time each
 *     runnable task gets CPU in proportion to its weight.
 *   - The queue is ordered by vtime; a CPU that runs out of work takes the
 *     task with the smallest vtime (goro_dispatch).
 *   - The virtual clock (vclock) follows the smallest vtime of the work
 *     in progress; new tasks start at it.
 *   - Starvation bound: a queued task's vtime is lowered to at most
 *     MAX_DEBT_SLICES slices ahead of vclock (khugepaged, weight 1,
 *     starved for 5.2 s under stress-ng before this existed), fewer when
 *     many tasks are queued (debt_bound); and in real time, a task
 *     queued longer than starve_ns runs out of turn (starve_rescue), since
 *     how fast vclock moves in real time is not ours to bound.
 *   - Idle fast path: a waking task for which select_cpu finds an idle CPU
 *     goes straight to that CPU's local DSQ.
 *   - Wakeup preemption: only for goro Ms woken to start work by default
 *     (policy e below; --wake-preempt all extends it to every task).
 *
 * Lag, not sleep time
 * -------------------
 * When a task goes to sleep we keep its lag, vclock - vtime, if positive:
 * what it is owed, at most max_lag_ns. When it wakes it is placed at
 * vclock - lag, or at its own vtime if that is later. So sleeping earns
 * nothing: a task is owed CPU only for time it spent runnable and not
 * running, as in EEVDF. A task that had more than its share (vtime ahead
 * of vclock) pays that debt while it sleeps, as vclock passes its vtime
 * (EEVDF's delayed dequeue does the same): debt kept across sleeps made
 * a service thread that once spun or burst wait for every hog's slice.
 * The first version raised a waking task to "one slice behind the largest
 * vtime running" instead; that credits sleep, so a pair of tasks that wake
 * each other (pipe ping-pong: one runnable at a time) got two shares, and
 * CPU hogs next to them about two thirds of what EEVDF gives them
 * (stress-ng --cpu/--switch/--pipe mix in vmtest/compare: cpu 0.69x).
 * And "the largest vtime running" let one task far ahead (a low-weight
 * task at the starvation bound) move every waking task's placement.
 *
 * Queue order
 * -----------
 * The shared queue is ordered by vtime plus the task's run time since it
 * last woke up (at most a slice, weighted): of two tasks equally owed, the
 * one that runs briefly between sleeps -- a request handler, a load
 * generator's thread, an M woken by the netpoller -- goes before a CPU
 * hog. Shares do not change (vtime alone is charged and placed); only the
 * order among tasks within a slice of each other does, and the run time
 * is the kernel's measure, so nothing a process exports moves it. (As in
 * scx_bpfland's deadline, which this follows.) While a task is
 * queued its dsq_vtime holds that key; key_restore() takes the offset off
 * again whenever it leaves the queue.
 *
 * Charging measures, it does not count down
 * -----------------------------------------
 * Run time is measured: ops.stopping (and goro_dispatch when it keeps a
 * task running) charges the growth of the kernel's p->se.sum_exec_runtime
 * since the last charge. The first version read it off the remaining
 * slice, which made a yield cost a whole slice -- and Go-style runtimes
 * yield in their spin loops.
 *
 * What the runtime tells us (scx_goro.h, "The runtime export")
 * --------------------------------------------------------------
 * An attached goro process has one block of shared memory, an inner map of
 * `goro_procs`, in which each M publishes its state (RUNNING with a P,
 * SPINNING, IDLE, in a SYSCALL, STARTING with a P handed to it, ...) and
 * whether it holds sched.lock; the runtime also publishes its P table and
 * scheduler counters. The loader records which process owns which slot in
 * two maps only it writes (`goro_slot_owner`, `goro_tgid_slot`).
 *
 * Resolving a task to its M ("Resolution"): a task's tgid leads to a slot
 * through goro_tgid_slot; the slot's owner record must name the same tgid;
 * then the block's M table is scanned for the task's pid. The result is
 * cached in task storage (slot, generation, record index) and re-checked
 * cheaply on every use: record tid == p->pid, slot owner == p->tgid, owner
 * generation unchanged. Scans that find nothing are retried at most every
 * SCAN_RETRY_NS per task (a new M fills its tid in as the first thing it
 * does, so a miss is usually a thread that is not an M).
 *
 * We never trust the block: every index is bounds-checked, every state
 * checked against its enum, counters are read under their sequence count,
 * and a block whose heartbeat is older than GORO_STALE_NS (or absurdly in
 * the future) gives no boosts at all. Whatever it says, we only reorder
 * work inside the task's fair share; see "Why lying gains nothing".
 *
 * The runtime-aware policy
 * ------------------------
 * For Ms of attached processes, with a fresh block:
 *
 *   e. Wakeups that the runtime makes to get work started (startm/wakep:
 *      the woken M is STARTING, SPINNING or NETPOLL) go to an idle CPU at
 *      once; if none is idle and the woken M is owed CPU -- its vtime at
 *      least wake_preempt_lag_ns below the (estimated, current) vtime of a
 *      task running somewhere, which has been on its CPU for at least
 *      wake_victim_min_run_ns -- that CPU is preempted. A per-CPU record
 *      of what runs where (vtime at start, start time, weight) makes the
 *      estimate. Either way the M is inserted straight into that CPU's
 *      local DSQ (SCX_DSQ_LOCAL_ON, with SCX_ENQ_PREEMPT for a busy CPU):
 *      a CPU merely kicked to take "the head of the shared queue" may take
 *      somebody else and leave the woken M waiting for the next slice end
 *      -- the first version did that, and the contended service's slow
 *      requests were mostly that wait. The preempted task goes back to the
 *      queue. The victim's minimum stint keeps the woken M off threads
 *      that run for microseconds between sleeps: without it the victim was
 *      often the load generator's thread that had just sent the request
 *      (it is busy, so its vtime can be ahead), which then went back to
 *      the queue and waited behind the hogs for its own answer -- policy e
 *      took the contended service's p50 from 1.6 to 5 ms (leave-one-out,
 *      2 interleaved rounds: e off 0.35x [0.34, 0.36] of e on). An M
 *      the netpoller woke does not preempt by default
 *      (wake_preempt_netpoll): that cost every service its median. With
 *      --wake-preempt all every other waking task that is owed CPU
 *      preempts the same way, goro or not; under TCG that made the
 *      contended service worse (the load generator's threads then displace
 *      the server's Ms). --wake-preempt off, or --policies none, turns
 *      policy e off.
 *
 *      The letter is e for history: --policies takes 'e' or 'none'.
 *
 * Policies that did not pay, and were removed
 * -------------------------------------------
 * Five more policies were measured against the control with a
 * leave-one-out (vmtest/compare, each policy off in turn, interleaved in
 * one VM; the paced service, a fan-out/fan-in job and a spawn/park churn,
 * each beside 2N CPU hogs). None showed a contribution beyond its spread
 * on any of them, and most cost p50 on all three; they are gone, and so
 * is the code that served only them (the spin queue, the per-P CPU table,
 * the jiffy measurement):
 *   a. An M RUNNING with a P kept its CPU at slice expiry while within a
 *      slice of the queue's head. It only moved the wait onto everybody
 *      else (the load generator's threads, the hogs) and let Ms run up to
 *      a slice into debt, paid back later as a wait behind the hogs.
 *   b. Spinning Ms waited on a queue of their own, served only when the
 *      shared queue was empty or after 20 ms. Under hogs the shared queue
 *      is never empty, and in Go's scheduler a spinning M holds the
 *      process's one "spinning" token: while it waits nobody wakes another
 *      M for new work (wakep sees nmspinning != 0), so every new goroutine
 *      waited with it. With b off the fan-out's p99 halved (0.50x).
 *   c. An M with a P woke on the idle CPU its P last ran on. There was
 *      nothing to gain under TCG (no cache to be warm), and it often
 *      passed over an idle CPU that select_cpu would have picked anyway
 *      at no cost; p50 0.66-0.83x with c off. It may pay on hardware; it
 *      would have to be measured there.
 *   d. The sched.lock holder got one 100 us extension at slice expiry.
 *      sched.lock sections are microseconds and a preempted holder is
 *      rare; no workload moved beyond its spread.
 *   f. A task that a goro M woke synchronously (the load generator's
 *      thread reading the answer) waited on the M's own CPU. If the M went
 *      on running goroutines instead of blocking, the thread waited up to
 *      the rest of the M's slice while another CPU freed up; with f off
 *      the service's p99 was 0.66x [0.40, 0.91].
 * The measurements (both leave-one-outs, every run's value) are in
 * tests/bench/RESULTS.md.
 *
 * Why lying gains nothing. Policy e is bounded by vtime: only an M owed
 * CPU against the task it displaces preempts, and every nanosecond on a
 * CPU is charged to the task's vtime, which is what orders the shared
 * queue. So a process claiming that all its threads are Ms woken to start
 * work gets the same CPU over time as a process with the same number of
 * plain CPU hogs: it can only be placed earlier within its share.
 * Measured in the VM (2 CPUs, 2 threads a side, 2 x 8 s, each side started
 * first once; the workers' CPU time, tests/vm/scx_goro_fairness) with the
 * earlier set of policies: liar/plain 0.992, garbage/plain 0.978,
 * honest/plain 1.011 (run time is the kernel's sum_exec_runtime, not
 * timestamps that also counted context switches: ~1.08 for any process
 * kept running before that).
 *
 * The kernel view
 * ---------------
 * From ops.runnable/running/stopping/quiescent we keep, per slot, our own
 * record of which Ms are runnable and running and on which CPU
 * (struct slot_priv, BPF-private), and mirror it into the block's
 * goro_kernel_view for the runtime. We never read the view back: the
 * process can write over it.
 *
 * In-kernel checkdead
 * -------------------
 * A BPF timer (checkdead_period_ns) walks the attached slots. A process is
 * stalled when it has runnable Gs (sum of its P run queues plus the global
 * run queue, from a consistent snapshot of the counters) while none of its
 * Ms (sysmon excluded) is runnable or running in the kernel's eyes and
 * none is in a system call. That is a lost wake-up: work exists and
 * nobody will ever pick it up. If the condition holds for
 * stall_threshold_ns we emit one GORO_EV_STALL into the `events` ring
 * buffer (one per episode), with a snapshot of the block for the loader
 * to print. Not reported: a process that is stopped (SIGSTOP; its group
 * leader's SIGNAL_STOP_STOPPED), a process whose block is stale (its
 * runtime is frozen or dead: we cannot trust a snapshot nobody refreshes),
 * and a process with a runnable thread not yet matched to a record while
 * some record is being born (tid still 0): that is an M starting up; nor
 * one with more Ms than the block has records (mcount > GORO_MAX_M: an
 * undescribed M may be running its Gs), nor one whose M holding a P is in
 * an uninterruptible sleep (the task lookups behind that are made once per
 * would-be report, and only of the owner's own threads: a block naming
 * another process's thread learns nothing about it). Events are rate
 * limited (stall_rate_ok): a process's first event in 10 s always goes out,
 * repeats share a budget of 8 plus 4 a second among all processes.
 *
 * Where it falls short
 * --------------------
 *   - One shared queue for all CPUs: one lock; fine for our 2-CPU VMs,
 *     known to collapse on big machines and pipe ping-pong.
 *   - No topology beyond scx_bpf_select_cpu_dfl's.
 *   - Direct-to-idle dispatch ignores vtime.
 *   - Preemption on wakeup only for goro Ms by default; others wait for a
 *     slice end (--wake-preempt all: see policy e).
 *   - A woken M inserted into a CPU's local DSQ (policy e) waits there even
 *     if another CPU frees up first; it is at most one slice, and only
 *     when the victim CPU changed task between choice and insert.
 *   - Weights honoured only within the starvation bound.
 *   - Fair shares are per thread, not per process or session: beside
 *     four CPU hogs, a goro process with two Ms gets a third of the
 *     machine where EEVDF's autogroup would give its session half. A
 *     goro job whose demand nears that share builds a backlog, and its
 *     latency is then hundreds of ms (see tests/bench/RESULTS.md, "The
 *     tail mode").
 *   - A user task pinned to one CPU waits on the shared queue until that
 *     CPU finds it first; while it heads the queue vclock cannot pass it,
 *     so a steady stream of wakeups can keep it waiting (per-CPU kthreads
 *     bypass the queue for this reason). Seen at --cpus 8: stress-ng's
 *     pinned switch worker waited 6.8 s behind three pinned yielders on
 *     its CPU, each charged microseconds per (under TCG, millisecond-long)
 *     stint. The real-time bound (starve_ns) now runs such a task on its
 *     own CPU after 500 ms; per-CPU queues for pinned tasks, and per-LLC
 *     queues (above), are the better answer.
 *   - The stall check trusts the process's counters for "runnable Gs" and
 *     its M words for "in a syscall": a process can hide its own stall,
 *     or invent one (only an event line; nothing is acted on).
 *   - Hotplug: not handled; the kernel asks for a restart and the loader
 *     restarts.
 */
#include "goro_common.bpf.h"
#include "scx_goro.h"

char _license[] SEC("license") = "GPL";

/*
 * How long a task may run before it goes back to the queue. Shorter slices
 * mean lower wakeup latency for queued tasks and more context switches.
 * Ticks decide when a slice actually ends (HZ=250: 4 ms), so a 7 ms slice
 * ends 7-11 ms after it starts; Go's sysmon preempts a goroutine after
 * 10 ms. 7 ms, not the 5 ms of before: in two vmtest/variants runs (4
 * interleaved rounds each) 7 ms measured better on both ends -- the
 * stress-ng mix's cpu row 0.98/0.97 of EEVDF against 0.90/0.91, the
 * contended service's p99 8.4/10.8 ms against 12.2/12.8 (EEVDF 39/29 ms);
 * 6 ms fell in between (0.96, 10.7 ms), 8 ms was like 7 (0.97, 9.3 ms),
 * and 3 ms was worse on p99 (17.7 against 13.0 ms). Fewer hog switches,
 * and a woken M finds a hog it may preempt (policy e) more often.
 * Loader: -s.
 */
const volatile __u64 slice_ns = 7ULL * 1000 * 1000; /* __u64: the skeleton shows it to C++ */

/*
 * Slice of a spinning M (part of the base: the control has it too). A
 * spinning M looks for work for a few microseconds and then parks (Go:
 * about 4 rounds of stealing); a short slice gives the CPU back quickly
 * if it keeps spinning. Without it, a spinning M that policy e had put on
 * a preempted CPU could spin there for a whole slice while the M holding
 * the goroutines it was looking for waited for a CPU: the spawn/park
 * churn's p50 went from 11 ms (control) to 0.9-1.5 s with e on. Loader:
 * --spin-slice-us.
 */
const volatile __u64 spin_slice_ns = 200ULL * 1000;

/*
 * A woken M preempts a running task only if that task's vtime is at
 * least this much ahead of the M's: less thrashes CPUs between tasks of
 * nearly equal vtime, more makes Ms wait for slices to end.
 */
const volatile __u64 wake_preempt_lag_ns = 1ULL * 1000 * 1000;

/*
 * ... and only if that task has been on its CPU for at least this long in
 * its current stint: a CPU hog, not a thread that runs for microseconds
 * between sleeps. Without it the woken M's victim was often the load
 * generator's thread that had just sent the request (its vtime can be
 * ahead: it is busy): preempted before it blocked in its read, it went
 * back to the shared queue and waited behind the hogs for the answer it
 * was about to receive -- the contended service's p50 was 4-5 ms with
 * policy e and 1.5-1.7 ms without it (leave-one-out, 2 rounds).
 * Loader: --wake-victim-us (0: any stint).
 */
const volatile __u64 wake_victim_min_run_ns = 1ULL * 1000 * 1000;

/*
 * Whether an M the netpoller woke may preempt (policy e). Off: with it on,
 * every goro service beside hogs paid its median for it -- 8 interleaved
 * repeats, the paced service's p50 2.7 ms on, 1.0 ms off (the control's
 * 1.0), with a goro client 4.4 vs 0.9 ms -- while the goroutine-only jobs
 * kept e's gain with it off (fan-out p50 2.6 ms, churn 2.7 ms; control
 * 3.7 and 4.1). Why it costs the services is not measured; the likely
 * path is the request's reader, a client thread due on the CPU the woken
 * server M preempted. Numbers: tests/bench/RESULTS.md. Loader:
 * --wake-preempt-netpoll.
 */
const volatile bool wake_preempt_netpoll = false;

/*
 * Placement of a waking task ("Lag, not sleep time" above): the most a
 * task can be owed when it goes to sleep, i.e. how far below the virtual
 * clock it may wake. More favours tasks that sleep often (latency), less
 * favours CPU hogs (throughput); EEVDF's bound is about two of its slices.
 * 2 ms: in two vmtest/variants runs (9 rounds, 2 vCPUs) against 3 ms it
 * measured no worse on the stress-ng mix's cpu row (0.94/0.96 vs
 * 0.93/0.92 of EEVDF) nor on the contended service's p99 (0.35/0.36 vs
 * 0.40/0.38), 1.5 ms about the same again; differences within noise.
 * Loader: --lag-us.
 */
const volatile __u64 max_lag_ns = 2ULL * 1000 * 1000;

/*
 * Which wakeups may preempt a running task (policy e): GORO_WAKE_PREEMPT_ALL
 * -- every waking task owed at least wake_preempt_lag_ns; _GORO -- only
 * Ms the runtime wakes to start work; _OFF -- none (waking tasks wait for
 * a slice to end). Loader: --wake-preempt.
 */
const volatile __u32 wake_preempt_mode = GORO_WAKE_PREEMPT_GORO;

/*
 * Which runtime-aware policies (e above) are on: GORO_POLICY_* bits, all
 * by default; none is the control of vmtest/compare. Loader: --policies.
 */
const volatile __u32 policies = GORO_POLICY_ALL;

/*
 * In-kernel checkdead: the timer period, and how long "runnable Gs but no
 * M to run them" must hold before we report it. Loader: --stall-ms. Below
 * about 20 ms a busy process's brief hand-offs (an M woken but not yet on
 * a CPU counts as runnable, so those are fine; a G made runnable just
 * before the runtime publishes the M that will take it is not) could be
 * reported.
 */
const volatile __u64 checkdead_period_ns = 10ULL * 1000 * 1000;
const volatile __u64 stall_threshold_ns = 100ULL * 1000 * 1000;

/*
 * How many processes can be attached at once: the number of slots, i.e. the
 * max_entries of goro_procs, goro_slot_owner and slot_privs (the loader
 * sets both; 2x for goro_tgid_slot). Loader: --max-procs.
 */
const volatile __u32 nr_slots = GORO_MAX_PROCS;

/* Starvation bound of the shared queue: see "Starvation bound" above and debt_bound(). */
enum { MAX_DEBT_SLICES = 4 };
#define MAX_DEBT_WAIT_NS (1000ULL * 1000 * 1000)

/*
 * The real-time starvation bound: a task queued this long is run out of
 * turn (goro_dispatch's rescue), at most RESCUE_SCAN_NS apart, looking at
 * the RESCUE_SCAN tasks at the queue's tail (the largest keys: those the
 * vtime bound still lets wait longest). The vtime bound alone is not
 * enough: how fast the queue's head moves in real time falls with every
 * task queued and every cost the kernel does not charge to a task (under
 * TCG a context switch took 7 ms of a busy host), and khugepaged (weight
 * 1) waited 5.6-8.8 s behind stress-ng and 128 plain threads -- past the
 * watchdog. Far below timeout_ms, far above any fair wait of a normal run.
 */
const volatile __u64 starve_ns = 500ULL * 1000 * 1000;
#define RESCUE_SCAN_NS (20ULL * 1000 * 1000)
#define RESCUE_SCAN 8
static u64 rescue_scan_at;

/* A failed M-table scan is retried at most this often per task. */
#define SCAN_RETRY_NS (1ULL * 1000 * 1000)
/* include/linux/sched/signal.h: the group stop is complete. Not in BTF. */
#define SIGNAL_STOP_STOPPED 0x00000001
/* include/linux/sched.h: __TASK_STOPPED in task_struct::__state. */
#define TASK_STOPPED_BIT 0x00000004
#define TASK_UNINTERRUPTIBLE_BIT 0x00000002
/* include/linux/sched.h: task_struct::flags, the task is exiting. */
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000
/* include/uapi/linux/time.h; a #define, so not in vmlinux.h. */
#define CLOCK_MONOTONIC 1
#define NSEC_PER_SEC 1000000000ULL

/*
 * Fault injection, for tests only: if non-zero, the scheduler aborts
 * itself with scx_bpf_error() at the fail_after_enqueues-th enqueue.
 * Loader: --fail-after-enqueues.
 */
const volatile __u64 fail_after_enqueues = 0;
static u64 nr_enqueues_total;

/*
 * The virtual clock V: never decreases, and follows the smallest vtime of
 * the work in progress -- at every ops.running and every kept slice it
 * moves up to min(vtime of the task starting, vtime of the shared queue's
 * head), like CFS's min_vruntime. Waking tasks are placed relative to it,
 * new tasks start at it, and the starvation bound is measured from it.
 * Racy (CPUs update it without a lock and may move it back a little);
 * that shifts placements by a fraction of a slice for a moment.
 */
static u64 vclock;

/*
 * Bumped by the loader (through the skeleton's .bss) after every attach
 * and detach of a process. A task that resolved to "no attached process"
 * skips the tgid lookup until this changes.
 */
volatile __u64 attach_seq; /* __u64: the skeleton shows it to C++ */

/* Filled in by goro_exit(); see "Exit info" in scx_goro.h. */
struct goro_exit_info goro_uei;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u64));
	__uint(max_entries, GORO_NR_STATS);
} stats SEC(".maps");

/* Wake-to-run latency; see "Wake-to-run latency histograms" in scx_goro.h. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u64));
	__uint(max_entries, GORO_HIST_NR_CLASSES * GORO_HIST_BUCKETS);
} hist SEC(".maps");

/*
 * The runtime export. The inner map template must match the maps the
 * loader creates exactly (type, key/value size, entries, flags).
 */
struct goro_proc_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct goro_proc_export);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, GORO_MAX_PROCS);
	__type(key, u32);
	__array(values, struct goro_proc_map);
} goro_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GORO_MAX_PROCS);
	__type(key, u32);
	__type(value, struct goro_slot_owner);
} goro_slot_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GORO_MAX_PROCS * 2);
	__type(key, u32);
	__type(value, struct goro_tgid_slot);
} goro_tgid_slot SEC(".maps");

/* In-kernel checkdead reports; the loader polls it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/*
 * Our own truth about an attached slot. Reset whenever the slot's owner
 * generation changes (a new process in the slot).
 */
struct slot_priv {
	u64 gen;		/* owner generation this state belongs to */
	s32 nr_runnable;	/* matched Ms, sysmon excluded, runnable now */
	s32 nr_unmatched_runnable; /* threads of the owner not matched to a record */
	u64 stall_since_ns;	/* 0: the stall condition does not hold */
	u64 stall_reported;	/* the current episode has been reported */
	u64 stall_events;
	u64 last_event_ns;	/* when this owner's last event went out (stall_rate_ok) */
	u64 km[GORO_MAX_M];	/* what we mirror into kv.km */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GORO_MAX_PROCS);
	__type(key, u32);
	__type(value, struct slot_priv);
} slot_privs SEC(".maps");

/* What the task counts as in its slot's nr_* (so quiescent undoes exactly that). */
enum { CNT_NONE = 0, CNT_MATCHED, CNT_SYSMON, CNT_UNMATCHED };

struct task_ctx {
	s32 slot;		/* slot of the task's process; -1: not attached */
	s32 midx;		/* M record; -1: not matched */
	u64 gen;		/* the owner generation slot/midx belong to */
	u64 seen_attach_seq;	/* attach_seq when we last found "not attached" */
	u64 next_scan_ns;	/* no new M-table scan before this */
	u64 charged_sum;	/* p->se.sum_exec_runtime when last charged */
	u64 woke_at;		/* ops.runnable time until the task runs; 0: none */
	u64 queued_at;		/* when enqueue put it on the shared queue (starve_ns) */
	u64 cnt_gen;		/* what we counted the task in: see CNT_* */
	s32 cnt_slot;
	s32 cnt_midx;
	u64 lag;		/* what it was owed when it last went to sleep: 0..max_lag_ns */
	u64 exec_run;		/* run time since it last woke up (ns, unweighted) */
	u64 key_off;		/* queue key - vtime while queued; see "Queue order" */
	u8 counted;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/*
 * What runs on each CPU, for the wake-preemption decision (policy e).
 * Written by ops.running/stopping of the task on that CPU, read racily
 * from any CPU: a stale entry at worst costs one unneeded preemption or
 * misses one. A per-CPU array of one entry, read for any CPU with
 * bpf_map_lookup_percpu_elem(): the kernel sizes it for every possible
 * CPU, so no CPU count is built in.
 */
struct cpu_ctx {
	u64 vtime;	/* the running task's vtime when it started */
	u64 started_at;
	u32 weight;
	u32 tgid;	/* 0: nothing of ours running */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctxs SEC(".maps");

struct checkdead_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct checkdead_timer);
} checkdead_timers SEC(".maps");

static void stat_inc(enum goro_stat idx)
{
	u32 key = idx;
	u64 *cnt = bpf_map_lookup_elem(&stats, &key);

	/* The map is an array of GORO_NR_STATS; lookups of valid keys cannot fail. */
	if (cnt)
		(*cnt)++;
}

static void hist_add(u32 cls, u64 ns)
{
	u32 key = cls * GORO_HIST_BUCKETS + goro_hist_bucket(ns);
	u64 *cnt = bpf_map_lookup_elem(&hist, &key);

	if (cnt)
		(*cnt)++;
}

/* Keep the userspace copies of kernel constants honest. */
_Static_assert((int)GORO_EXIT_NONE == (int)SCX_EXIT_NONE, "exit kind NONE");
_Static_assert((int)GORO_EXIT_DONE == (int)SCX_EXIT_DONE, "exit kind DONE");
_Static_assert((int)GORO_EXIT_UNREG == (int)SCX_EXIT_UNREG, "exit kind UNREG");
_Static_assert((int)GORO_EXIT_UNREG_BPF == (int)SCX_EXIT_UNREG_BPF, "exit kind UNREG_BPF");
_Static_assert((int)GORO_EXIT_UNREG_KERN == (int)SCX_EXIT_UNREG_KERN, "exit kind UNREG_KERN");
_Static_assert((int)GORO_EXIT_SYSRQ == (int)SCX_EXIT_SYSRQ, "exit kind SYSRQ");
_Static_assert((int)GORO_EXIT_PARENT == (int)SCX_EXIT_PARENT, "exit kind PARENT");
_Static_assert((int)GORO_EXIT_PARENT_KILL == (int)SCX_EXIT_PARENT_KILL, "exit kind PARENT_KILL");
_Static_assert((int)GORO_EXIT_ERROR == (int)SCX_EXIT_ERROR, "exit kind ERROR");
_Static_assert((int)GORO_EXIT_ERROR_BPF == (int)SCX_EXIT_ERROR_BPF, "exit kind ERROR_BPF");
_Static_assert((int)GORO_EXIT_ERROR_STALL == (int)SCX_EXIT_ERROR_STALL, "exit kind ERROR_STALL");
_Static_assert((int)GORO_EXIT_ERROR_REENQ == (int)SCX_EXIT_ERROR_REENQ, "exit kind ERROR_REENQ");
_Static_assert((int)GORO_EXIT_ERROR_RESCUE == (int)SCX_EXIT_ERROR_RESCUE, "exit kind ERROR_RESCUE");
_Static_assert((int)GORO_EXIT_MSG_LEN == (int)SCX_EXIT_MSG_LEN, "exit message length");
_Static_assert(GORO_ECODE_ACT_RESTART == SCX_ECODE_ACT_RESTART, "restart exit code bit");
_Static_assert(GORO_OPS_SWITCH_PARTIAL == SCX_OPS_SWITCH_PARTIAL, "partial switch flag");

/* ===========================================================================
 * Resolution: which M of which attached process is this task?
 * ======================================================================== */

/*
 * Everything one decision needs about a task, looked up once. word is
 * the M's word if the block is fresh and the word valid, else 0 ("no
 * boosts"); raw_word is the valid word regardless of freshness (the
 * kernel view is kept even for frozen processes).
 */
struct goro_ref {
	struct goro_proc_export *blk;
	struct slot_priv *sp;
	u64 gen;
	s32 slot;	/* -1: not a thread of an attached process */
	s32 midx;	/* -1: not matched to a record */
	u32 tid;
	u64 raw_word;
	u64 word;
};

static struct goro_proc_export *proc_block(u32 slot)
{
	u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&goro_procs, &slot);

	if (!inner)
		return NULL;
	return bpf_map_lookup_elem(inner, &zero);
}

static void slot_priv_clear_tables(struct slot_priv *sp)
{
	int i;

	/* Too big for a memset the BPF backend would inline. */
	goro_for(i, 0, GORO_MAX_M) {
		if (i < 0 || i >= GORO_MAX_M)
			break;
		sp->km[i] = 0;
	}
}

/*
 * The BPF-private state of @slot for owner generation @gen, reset if it
 * belonged to a previous owner. Two CPUs may both see the old generation;
 * the compare-and-swap lets one of them reset.
 */
static struct slot_priv *slot_priv_get(u32 slot, u64 gen)
{
	struct slot_priv *sp = bpf_map_lookup_elem(&slot_privs, &slot);
	u64 old;

	if (!sp)
		return NULL;
	old = sp->gen;
	if (old != gen && __sync_val_compare_and_swap(&sp->gen, old, gen) == old) {
		sp->nr_runnable = 0;
		sp->nr_unmatched_runnable = 0;
		sp->stall_since_ns = 0;
		sp->stall_reported = 0;
		sp->stall_events = 0;
		sp->last_event_ns = 0;
		slot_priv_clear_tables(sp);
	}
	return sp;
}

/*
 * A heartbeat older than GORO_STALE_NS means the runtime stopped
 * publishing (frozen, stopped, dying): nothing in the block is current.
 * One far in the future is garbage. Either way: no boosts.
 */
static bool block_fresh(struct goro_proc_export *blk, u64 now)
{
	u64 hb = *(volatile u64 *)&blk->hdr.heartbeat_ns;

	if (!hb || time_before(hb + GORO_STALE_NS, now) || time_before(now + GORO_STALE_NS, hb))
		return false;
	return true;
}

/* @w if it is a well-formed M word, else 0. */
static u64 m_word_valid(u64 w)
{
	u32 st = GORO_MW_STATE(w);

	if (st == GORO_M_FREE || st >= GORO_M_NR_STATES)
		return 0;
	if (GORO_MW_P(w) >= GORO_MAX_P)
		return 0;
	return w;
}

/* Woken by the runtime to get work started: startm, wakep, netpoll. */
static bool m_word_woken(u64 w)
{
	u32 st = GORO_MW_STATE(w);

	return st == GORO_M_STARTING || st == GORO_M_SPINNING || st == GORO_M_NETPOLL;
}

/* The first record of @blk whose tid is @pid, or -1. */
static s32 m_scan(struct goro_proc_export *blk, u32 pid)
{
	s32 found = -1;
	int i;

	goro_for(i, 0, GORO_MAX_M) {
		if (i < 0 || i >= GORO_MAX_M)
			break;
		if (blk->m[i].tid == pid) {
			found = i;
			break;
		}
	}
	return found;
}

/*
 * Resolve @p into @r. May scan the M table (at most once per
 * SCAN_RETRY_NS) if @may_scan. Returns false if @p is not a thread of an
 * attached process (r->slot == -1).
 */
static bool goro_resolve(struct task_struct *p, struct task_ctx *tctx, struct goro_ref *r,
			 bool may_scan, u64 now)
{
	struct goro_slot_owner *own;
	struct goro_tgid_slot *ts;
	u32 tgid = p->tgid, pid = p->pid, slot;
	u64 seq = attach_seq;
	s32 midx;

	r->slot = -1;
	r->midx = -1;
	r->raw_word = 0;
	r->word = 0;
	r->blk = NULL;
	r->sp = NULL;

	if (tctx->slot < 0) {
		if (tctx->seen_attach_seq == seq)
			return false;
		ts = bpf_map_lookup_elem(&goro_tgid_slot, &tgid);
		if (!ts) {
			tctx->seen_attach_seq = seq;
			return false;
		}
		slot = ts->slot;
	} else {
		slot = tctx->slot;
	}
	if (slot >= nr_slots)
		goto not_attached;
	own = bpf_map_lookup_elem(&goro_slot_owner, &slot);
	if (!own || own->tgid != tgid || !own->gen)
		goto not_attached;
	if (tctx->slot != (s32)slot || tctx->gen != own->gen) {
		tctx->slot = slot;
		tctx->gen = own->gen;
		tctx->midx = -1;
		tctx->next_scan_ns = 0;
	}
	r->blk = proc_block(slot);
	r->sp = slot_priv_get(slot, own->gen);
	if (!r->blk || !r->sp)
		goto not_attached;
	r->slot = slot;
	r->gen = own->gen;
	r->tid = pid;

	midx = tctx->midx;
	if (midx >= 0 && midx < GORO_MAX_M && r->blk->m[midx].tid != pid) {
		/* The record was reused or the M exited: look again. */
		midx = -1;
		tctx->next_scan_ns = 0;
	}
	if ((midx < 0 || midx >= GORO_MAX_M) && may_scan && !time_before(now, tctx->next_scan_ns)) {
		midx = m_scan(r->blk, pid);
		if (midx < 0) {
			tctx->next_scan_ns = now + SCAN_RETRY_NS;
			stat_inc(GORO_STAT_M_SCAN_MISS);
		} else {
			stat_inc(GORO_STAT_M_MATCHED);
		}
	}
	if (midx < 0 || midx >= GORO_MAX_M) {
		tctx->midx = -1;
		return true;
	}
	tctx->midx = midx;
	r->midx = midx;
	r->raw_word = m_word_valid(*(volatile u64 *)&r->blk->m[midx].word);
	if (r->raw_word) {
		if (block_fresh(r->blk, now))
			r->word = r->raw_word;
		else
			stat_inc(GORO_STAT_STALE_BLOCK);
	}
	return true;

not_attached:
	tctx->slot = -1;
	tctx->midx = -1;
	tctx->seen_attach_seq = seq;
	return false;
}

/* ===========================================================================
 * The kernel view: our truth in slot_priv, mirrored into the block.
 * ======================================================================== */

static void kv_publish(struct goro_ref *r, s32 midx, u64 km, u64 now)
{
	struct goro_kernel_view *kv = &r->blk->kv;
	s32 n;

	if (midx >= 0 && midx < GORO_MAX_M) {
		r->sp->km[midx] = km;
		kv->km[midx] = km;
	}
	kv->gen = r->gen;
	kv->updated_ns = now;
	n = r->sp->nr_runnable;
	kv->nr_runnable = n > 0 ? n : 0;
	n = r->sp->nr_unmatched_runnable;
	kv->nr_unmatched_runnable = n > 0 ? n : 0;
}

static u64 km_make(u64 flags, s32 cpu, u32 tid)
{
	return flags | ((u64)(cpu & 0xffff) << 8) | ((u64)tid << 32);
}

/* @p became runnable: count it in its slot (once). */
static void account_runnable(struct task_struct *p, struct task_ctx *tctx, struct goro_ref *r,
			     u64 now)
{
	if (r->slot < 0 || tctx->counted != CNT_NONE)
		return;
	tctx->cnt_slot = r->slot;
	tctx->cnt_gen = r->gen;
	tctx->cnt_midx = r->midx;
	if (r->midx >= 0) {
		if (GORO_MW_STATE(r->raw_word) == GORO_M_SYSMON) {
			tctx->counted = CNT_SYSMON;
		} else {
			tctx->counted = CNT_MATCHED;
			__sync_fetch_and_add(&r->sp->nr_runnable, 1);
		}
		kv_publish(r, r->midx, km_make(GORO_KM_RUNNABLE, scx_bpf_task_cpu(p), r->tid), now);
	} else {
		tctx->counted = CNT_UNMATCHED;
		__sync_fetch_and_add(&r->sp->nr_unmatched_runnable, 1);
		kv_publish(r, -1, 0, now);
	}
}

/* Undo account_runnable; @r may be for a later resolution (or none). */
static void account_quiescent(struct task_ctx *tctx, u64 now)
{
	struct goro_ref r = {};
	struct goro_slot_owner *own;
	u32 slot = tctx->cnt_slot;
	u8 counted = tctx->counted;

	tctx->counted = CNT_NONE;
	if (counted == CNT_NONE || slot >= nr_slots)
		return;
	own = bpf_map_lookup_elem(&goro_slot_owner, &slot);
	if (!own || own->gen != tctx->cnt_gen)
		return; /* the slot was freed or reused: its counts were reset */
	r.blk = proc_block(slot);
	r.sp = slot_priv_get(slot, own->gen);
	if (!r.blk || !r.sp)
		return;
	r.gen = own->gen;
	if (counted == CNT_MATCHED)
		__sync_fetch_and_sub(&r.sp->nr_runnable, 1);
	else if (counted == CNT_UNMATCHED)
		__sync_fetch_and_sub(&r.sp->nr_unmatched_runnable, 1);
	if (counted == CNT_UNMATCHED) {
		kv_publish(&r, -1, 0, now);
		return;
	}
	s32 midx = tctx->cnt_midx;

	if (midx < 0 || midx >= GORO_MAX_M)
		return;
	/* Keep the tid and last CPU; drop the runnable/running bits. */
	kv_publish(&r, midx, r.sp->km[midx] & ~(GORO_KM_RUNNABLE | GORO_KM_RUNNING), now);
}

/* ===========================================================================
 * Charging and the per-CPU record.
 * ======================================================================== */

/*
 * Charge @p for the CPU time it used since it was last charged. "Used" is
 * the kernel's own count, p->se.sum_exec_runtime (sched_ext keeps it up to
 * date at every tick and when a task stops), not timestamps of our own:
 * timestamps at ops.running/stopping also count the context switch around
 * the stint, which costs milliseconds under TCG, and made tasks that
 * switch often pay for CPU they never had (a task kept running -- the
 * removed policies a and d did that -- switches less: it got ~5-10% more
 * than its share in the VM).
 */
static void charge(struct task_struct *p, struct task_ctx *tctx)
{
	u64 sum = p->se.sum_exec_runtime;
	u64 used = sum - tctx->charged_sum;

	tctx->charged_sum = sum;
	if ((s64)used <= 0)
		return;
	tctx->exec_run += used;
	/* Weight 100 is nice 0; the kernel keeps it in 1..10000, never 0. */
	scx_bpf_task_set_dsq_vtime(p, p->scx.dsq_vtime + used * 100 / p->scx.weight);
}

/*
 * A queued task's dsq_vtime is its queue key, vtime + key_off (see "Queue
 * order"); everywhere else it is the vtime itself. Called wherever a task
 * leaves a queue (ops.running, ops.quiescent) or is queued again.
 */
static void key_restore(struct task_struct *p, struct task_ctx *tctx)
{
	if (tctx->key_off) {
		scx_bpf_task_set_dsq_vtime(p, p->scx.dsq_vtime - tctx->key_off);
		tctx->key_off = 0;
	}
}

/*
 * The queue key's offset: run time since the last wakeup, at most a slice,
 * weighted -- and at most a slice after weighting: a weight-1 task
 * (khugepaged) would otherwise sort 700 ms of vtime behind its vtime, a
 * wait of minutes behind 100 CPU hogs.
 */
static u64 key_offset(struct task_struct *p, struct task_ctx *tctx)
{
	u64 run = tctx->exec_run < slice_ns ? tctx->exec_run : slice_ns;
	u64 off = run * 100 / p->scx.weight;

	return off < slice_ns ? off : slice_ns;
}

/*
 * The starvation bound's reach ahead of vclock (see MAX_DEBT_SLICES). A
 * task that far ahead waits until vclock passes it, and vclock moves at
 * about nr_cpus / nr_queued of real time: so with many tasks queued the
 * bound shrinks, to keep that wait near MAX_DEBT_WAIT_NS, but never below a
 * slice (what a task of full weight may be ahead after its slice anyway).
 * With 130 CPU-bound threads on 2 CPUs the fixed 4 slices made khugepaged
 * (weight 1, always at the bound) wait 5.6 s: the watchdog ejected us.
 */
static u64 debt_bound(void)
{
	u64 n = scx_bpf_dsq_nr_queued(GORO_SHARED_DSQ) + 1;
	u64 b = MAX_DEBT_WAIT_NS * scx_bpf_nr_cpu_ids() / n;

	if (b > MAX_DEBT_SLICES * slice_ns)
		return MAX_DEBT_SLICES * slice_ns;
	return b < slice_ns ? slice_ns : b;
}

static struct cpu_ctx *cpu_ctx_of(s32 cpu)
{
	u32 zero = 0;

	/* NULL for a CPU id at or beyond nr_cpu_ids (or negative). */
	if (cpu < 0)
		return NULL;
	return bpf_map_lookup_percpu_elem(&cpu_ctxs, &zero, cpu);
}

/*
 * The CPU running the task with the largest estimated current vtime, if
 * that is more than wake_preempt_lag_ns ahead of @vtime and has run for at
 * least wake_victim_min_run_ns since it got the CPU; -1 otherwise.
 * Tasks of @p's own process are never the victim: the woken M would only
 * take the CPU of an M of its own process, which the runtime decided to
 * keep running.
 */
static s32 find_victim(struct task_struct *p, u64 vtime, u64 now)
{
	u64 best_v = vtime + wake_preempt_lag_ns;
	u32 tgid = p->tgid, n = scx_bpf_nr_cpu_ids();
	s32 best = -1;
	int cpu;

	/* Every CPU: O(nr_cpu_ids) per such wakeup (see "Beyond a few dozen CPUs"). */
	goro_for(cpu, 0, n) {
		struct cpu_ctx *cc = cpu_ctx_of(cpu);
		u64 est, w;

		if (!cc)
			break;
		if (!cc->tgid || cc->tgid == tgid)
			continue;
		if (now - cc->started_at < wake_victim_min_run_ns)
			continue;
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		w = cc->weight ? cc->weight : 100;
		est = cc->vtime + (now - cc->started_at) * 100 / w;
		if (time_before(best_v, est)) {
			best_v = est;
			best = cpu;
		}
	}
	return best;
}

/* Move the virtual clock up to @v (never down); see vclock. */
static void vclock_advance(u64 v)
{
	if (time_before(vclock, v))
		vclock = v;
}

/* min(@v, vtime of the shared queue's head): what vclock may move up to. */
static u64 vclock_candidate(u64 v)
{
	struct task_struct *head = scx_bpf_dsq_peek(GORO_SHARED_DSQ);

	if (head && time_before(head->scx.dsq_vtime, v))
		return head->scx.dsq_vtime;
	return v;
}

static u64 slice_for(u64 w)
{
	return (w && GORO_MW_STATE(w) == GORO_M_SPINNING) ? spin_slice_ns : slice_ns;
}

/* Is @w an M woken to start work that policy e places (goro_enqueue)? */
static bool e_places(u64 w)
{
	return w && m_word_woken(w) && (policies & GORO_POLICY_WAKE) && wake_preempt_mode != GORO_WAKE_PREEMPT_OFF;
}

/*
 * Where goro_runnable places a waking @p (see "Lag, not sleep time"):
 * the virtual clock minus what it was owed when it went to sleep, or its
 * own vtime if that is later.
 */
static u64 placed_vtime(struct task_struct *p, struct task_ctx *tctx)
{
	u64 v = vclock - tctx->lag;

	return time_before(p->scx.dsq_vtime, v) ? v : p->scx.dsq_vtime;
}

/* ===========================================================================
 * The ops.
 * ======================================================================== */

/*
 * select_cpu is a hint on wakeup; inserting into SCX_DSQ_LOCAL here puts
 * @p on the local DSQ of the CPU we return, skipping goro_enqueue, and the
 * kernel kicks that CPU if it is idle.
 */
s32 GORO_STRUCT_OPS(goro_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct goro_ref r = {};
	bool is_idle = false;
	u64 now = bpf_ktime_get_ns();
	u64 w = 0;
	s32 cpu;

	if (tctx && goro_resolve(p, tctx, &r, false, now))
		w = r.word;

	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		stat_inc(GORO_STAT_DIRECT_IDLE);
		if (w && m_word_woken(w))
			stat_inc(GORO_STAT_WAKE_IDLE);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_for(w), 0);
		return cpu;
	}
	return cpu;
}

/*
 * enqueue must put @p somewhere: a task the scheduler neither inserts nor
 * keeps track of never runs again, and the watchdog ejects us.
 */
void GORO_STRUCT_OPS(goro_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct goro_ref r = {};
	u64 vtime, key_off = 0, debt;
	u64 now = bpf_ktime_get_ns();
	u64 w = 0;

	if (tctx) {
		key_restore(p, tctx);
		if (goro_resolve(p, tctx, &r, false, now))
			w = r.word;
	}
	vtime = p->scx.dsq_vtime;

	/*
	 * A per-CPU kthread (ksoftirqd/N, a bound kworker) can run on one CPU
	 * only. On the shared queue it waited until that CPU found it first
	 * in vtime order -- but while it heads the queue the virtual clock
	 * cannot pass it, so every task that wakes is placed ahead of it: at
	 * --cpus 8, with a stream of wakeups, ksoftirqd/7 waited 5.3 s and the
	 * watchdog ejected us (tests/vm/scx_goro_stress_attached). It goes
	 * straight to its CPU's local DSQ instead, as scx_bpfland does: such
	 * kthreads run briefly, and the rest of the system waits on them.
	 * (A user task pinned to one CPU still takes the shared queue: let
	 * into the local DSQ, a pinned hog would own its CPU. See "Where it
	 * falls short".)
	 */
	if ((p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1) {
		s32 cpu = scx_bpf_task_cpu(p);

		stat_inc(GORO_STAT_ENQUEUE);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns, enq_flags);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	/*
	 * Starvation bound: see MAX_DEBT_SLICES. (Wakeups were placed in
	 * goro_runnable.) The insert stores the clamped vtime.
	 */
	debt = debt_bound();
	if (time_before(vclock + debt, vtime)) {
		vtime = vclock + debt;
		stat_inc(GORO_STAT_DEBT_CLAMPED);
	}

	stat_inc(GORO_STAT_ENQUEUE);

	/*
	 * Queue order: see "Queue order". The key obeys the starvation bound
	 * too: the offset is scaled by 100/weight, so for a nice-19 task
	 * (weight 1) it reached 100 slices -- khugepaged queued up to 700 ms
	 * of vtime ahead of the clock, and in a slow VM (four guests on two
	 * host cores) it failed to run for 6.2 s and the watchdog ejected us.
	 */
	if (tctx) {
		u64 bound = vclock + MAX_DEBT_SLICES * slice_ns;

		key_off = key_offset(p, tctx);
		if (time_before(bound, vtime + key_off))
			key_off = time_before(vtime, bound) ? bound - vtime : 0;
		tctx->key_off = key_off;
		tctx->queued_at = now;
	}
	if (fail_after_enqueues &&
	    __sync_fetch_and_add(&nr_enqueues_total, 1) + 1 == fail_after_enqueues)
		goro_error("fault injection: enqueue %llu", fail_after_enqueues);

	/*
	 * Policy e: an M woken to start work gets an idle CPU at once, or,
	 * if it is owed CPU, a preempted one; under GORO_WAKE_PREEMPT_ALL
	 * so does any other waking task owed CPU (it found no idle CPU in
	 * select_cpu). The task goes straight to that CPU's local DSQ: kicked
	 * to take "the shared queue's head", the CPU could take somebody
	 * else and leave the woken task waiting for the next slice end. No
	 * unfairness is added: a preemption needs the task to be owed CPU
	 * against the task it displaces (find_victim). A task that cannot
	 * migrate right now cannot be put on another CPU's local DSQ (the
	 * kernel would abort us): it is left to the shared queue; a waking
	 * task practically never is one.
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && wake_preempt_mode != GORO_WAKE_PREEMPT_OFF &&
	    !p->migration_disabled) {
		bool woken = e_places(w);
		s32 cpu = -1;

		if (woken)
			cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
		if (cpu >= 0) {
			stat_inc(GORO_STAT_WAKE_KICK);
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_for(w), enq_flags);
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
			return;
		}
		/*
		 * An M the netpoller woke (I/O from another process, often a
		 * writer about to block in its read) preempts only with
		 * wake_preempt_netpoll; one the runtime woke to run more
		 * goroutines in parallel (startm/wakep) always may.
		 */
		if (woken && GORO_MW_STATE(w) == GORO_M_NETPOLL && !wake_preempt_netpoll)
			woken = false;
		else if (woken || wake_preempt_mode == GORO_WAKE_PREEMPT_ALL) {
			cpu = find_victim(p, vtime, now);
			if (cpu >= 0) {
				scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_for(w), enq_flags | SCX_ENQ_PREEMPT);
				stat_inc(woken ? GORO_STAT_WAKE_PREEMPT : GORO_STAT_WAKE_PREEMPT_OTHER);
				return;
			}
		}
	}

	struct scx_bpf_dsq_insert_vtime_args args = {
		.dsq_id = GORO_SHARED_DSQ,
		.slice = slice_for(w),
		.vtime = vtime + key_off,
		.enq_flags = enq_flags,
	};
	/* On the root scheduler a failed insert aborts us; nothing to check. */
	__scx_bpf_dsq_insert_vtime(p, &args);
	/*
	 * An idle CPU does not look at the queues until something kicks it
	 * (no tick while idle): a task queued by a busy CPU (a yield, a
	 * preemption) would wait for that CPU, however long it stays busy.
	 * Seen under stress-ng --aggressive: one CPU idle for 8.8 s next to
	 * 13 queued tasks, and the watchdog ejected us.
	 */
	{
		s32 idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

		if (idle >= 0)
			scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
	}
}

/*
 * dispatch is called when @cpu's local DSQ is empty and the task that ran
 * last, @prev (NULL if the CPU was idle), has no slice left or stopped.
 * If we insert nothing and @prev is still runnable, the kernel keeps
 * running @prev -- with SCX_SLICE_DFL (20 ms) unless we refill its slice
 * ourselves, which we always do.
 */
/*
 * The real-time starvation bound (starve_ns): every RESCUE_SCAN_NS at most,
 * one dispatching CPU looks at the tail of the shared queue and runs the
 * first task there that has waited longer than starve_ns. True if it did.
 */
static bool starve_rescue(s32 cpu, u64 now)
{
	struct bpf_iter_scx_dsq it;
	struct task_struct *p;
	u64 last = rescue_scan_at;
	bool moved = false;
	int i;

	if (now - last < RESCUE_SCAN_NS || !__sync_bool_compare_and_swap(&rescue_scan_at, last, now))
		return false;
	if (bpf_iter_scx_dsq_new(&it, GORO_SHARED_DSQ, SCX_DSQ_ITER_REV) == 0) {
		for (i = 0; i < RESCUE_SCAN; i++) {
			struct task_ctx *tctx;

			p = bpf_iter_scx_dsq_next(&it);
			if (!p)
				break;
			tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
			if (!tctx || !tctx->queued_at || now - tctx->queued_at < starve_ns)
				continue;
			/* Here if it may run here, else on its own CPU (pinned tasks). */
			if (bpf_cpumask_test_cpu(cpu, p->cpus_ptr)) {
				if (goro_compat_dsq_move(&it, p, SCX_DSQ_LOCAL, 0)) {
					stat_inc(GORO_STAT_STARVE_RESCUE);
					moved = true;
					break;
				}
			} else {
				s32 tcpu = scx_bpf_task_cpu(p);

				if (tcpu >= 0 && bpf_cpumask_test_cpu(tcpu, p->cpus_ptr) &&
				    goro_compat_dsq_move(&it, p, SCX_DSQ_LOCAL_ON | tcpu, 0)) {
					stat_inc(GORO_STAT_STARVE_RESCUE);
					scx_bpf_kick_cpu(tcpu, 0);
					break;
				}
			}
		}
	}
	bpf_iter_scx_dsq_destroy(&it);
	return moved;
}

void GORO_STRUCT_OPS(goro_dispatch, s32 cpu, struct task_struct *prev)
{
	bool prev_queued = prev && (prev->scx.flags & SCX_TASK_QUEUED);
	struct goro_ref r = {};
	u64 w = 0;

	if (prev_queued) {
		struct task_ctx *ptctx = bpf_task_storage_get(&task_ctxs, prev, 0, 0);

		/* prev does not pass through goro_stopping if we keep it. */
		if (ptctx) {
			charge(prev, ptctx);
			if (goro_resolve(prev, ptctx, &r, false, bpf_ktime_get_ns()))
				w = r.word;
		}
	}
	if (starve_rescue(cpu, bpf_ktime_get_ns()))
		return;
	if (scx_bpf_dsq_move_to_local(GORO_SHARED_DSQ)) {
		stat_inc(GORO_STAT_DISPATCH);
		return;
	}
	if (prev_queued) {
		scx_bpf_task_set_slice(prev, slice_for(w));
		stat_inc(GORO_STAT_KEEP_RUNNING);
		vclock_advance(prev->scx.dsq_vtime);
		return;
	}
	stat_inc(GORO_STAT_DISPATCH_IDLE);
}

/*
 * runnable/running/stopping/quiescent bracket a task's life on a run
 * queue: runnable -> (running -> stopping)* -> quiescent. running and
 * stopping may be called on another CPU than the task's: the task's CPU
 * is scx_bpf_task_cpu(p).
 */
void GORO_STRUCT_OPS(goro_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct goro_ref r = {};
	u64 now = bpf_ktime_get_ns();

	if (!tctx)
		return;
	tctx->woke_at = now;
	/*
	 * Placement (see "Lag, not sleep time"): a waking task comes back
	 * at the virtual clock minus what it was owed when it went to sleep.
	 * Here, not in enqueue: a wakeup that select_cpu sent straight to
	 * an idle CPU never passes through enqueue.
	 */
	if (enq_flags & SCX_ENQ_WAKEUP) {
		u64 v = placed_vtime(p, tctx);

		if (v != p->scx.dsq_vtime)
			scx_bpf_task_set_dsq_vtime(p, v);
	}
	if (goro_resolve(p, tctx, &r, true, now))
		account_runnable(p, tctx, &r, now);
}

void GORO_STRUCT_OPS(goro_running, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	s32 cpu = scx_bpf_task_cpu(p);
	struct cpu_ctx *cc = cpu_ctx_of(cpu);
	struct goro_ref r = {};
	u64 now = bpf_ktime_get_ns();
	bool matched = false;

	if (tctx)
		key_restore(p, tctx);
	vclock_advance(vclock_candidate(p->scx.dsq_vtime));
	if (cc) {
		cc->vtime = p->scx.dsq_vtime;
		cc->started_at = now;
		cc->weight = p->scx.weight;
		cc->tgid = p->tgid;
	}
	if (!tctx)
		return;

	if (goro_resolve(p, tctx, &r, tctx->midx < 0, now)) {
		/* Matched since it became runnable: count it as what it is now. */
		if (tctx->counted == CNT_UNMATCHED && r.midx >= 0) {
			account_quiescent(tctx, now);
			account_runnable(p, tctx, &r, now);
		} else if (tctx->counted == CNT_NONE) {
			account_runnable(p, tctx, &r, now);
		}
		if (r.midx >= 0) {
			matched = true;
			kv_publish(&r, r.midx, km_make(GORO_KM_RUNNABLE | GORO_KM_RUNNING, cpu, r.tid), now);
		}
	}
	if (tctx->woke_at) {
		hist_add(matched ? GORO_HIST_GORO : GORO_HIST_OTHER, now - tctx->woke_at);
		tctx->woke_at = 0;
	}
}

void GORO_STRUCT_OPS(goro_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct cpu_ctx *cc = cpu_ctx_of(scx_bpf_task_cpu(p));
	struct goro_ref r = {};
	u64 now = bpf_ktime_get_ns();

	if (cc && cc->tgid == p->tgid)
		cc->tgid = 0;
	if (!tctx)
		return;
	charge(p, tctx);
	if (tctx->counted == CNT_MATCHED || tctx->counted == CNT_SYSMON) {
		if (goro_resolve(p, tctx, &r, false, now) && r.midx >= 0 && r.midx == tctx->cnt_midx)
			kv_publish(&r, r.midx, r.sp->km[r.midx] & ~GORO_KM_RUNNING, now);
	}
}

/*
 * ops.tick: the running task, at every tick. A thread that has stayed on
 * its CPU since before its process attached, or since before its M record
 * was filled in, passes through no other op while it keeps running, so the
 * kernel view never learned of it. With two CPUs such a thread was soon
 * preempted and seen; with four, a sysmon spinning while it hands a P over
 * ran unseen, and the kernel view told the runtime's checkdead "M0 not
 * runnable" (tests/vm/scx_goro_checkdead at --cpus 4). Here it is matched
 * and published as running. Costs nothing for tasks of processes that are
 * not attached (goro_resolve returns at the first test).
 */
void GORO_STRUCT_OPS(goro_tick, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct goro_ref r = {};
	u64 now;

	if (!tctx || tctx->counted == CNT_MATCHED || tctx->counted == CNT_SYSMON)
		return;
	now = bpf_ktime_get_ns();
	if (!goro_resolve(p, tctx, &r, true, now) || r.midx < 0)
		return;
	if (tctx->counted == CNT_UNMATCHED)
		account_quiescent(tctx, now);
	account_runnable(p, tctx, &r, now);
	kv_publish(&r, r.midx, km_make(GORO_KM_RUNNABLE | GORO_KM_RUNNING, scx_bpf_task_cpu(p), r.tid), now);
}

void GORO_STRUCT_OPS(goro_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (!tctx)
		return;
	key_restore(p, tctx);
	account_quiescent(tctx, bpf_ktime_get_ns());
	/*
	 * Going to sleep: remember what the task is owed, vclock - vtime, at
	 * most max_lag_ns; goro_runnable places it by that. A task ahead of
	 * the clock is owed nothing and keeps its vtime, so it pays its debt
	 * while it sleeps, as the clock passes it.
	 */
	if (deq_flags & SCX_DEQ_SLEEP) {
		s64 lag = (s64)(vclock - p->scx.dsq_vtime);

		if (lag > (s64)max_lag_ns) {
			lag = max_lag_ns;
			stat_inc(GORO_STAT_LAG_CLAMPED);
		} else if (lag < 0) {
			lag = 0;
		}
		tctx->lag = lag;
		tctx->exec_run = 0;
	}
}

/* A task entering sched_ext (at load, or when forked) starts at the present. */
void GORO_STRUCT_OPS(goro_enable, struct task_struct *p)
{
	scx_bpf_task_set_dsq_vtime(p, vclock);
}

s32 GORO_STRUCT_OPS_SLEEPABLE(goro_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -12; /* -ENOMEM: the kernel refuses the fork / the load */
	tctx->slot = -1;
	tctx->midx = -1;
	tctx->cnt_slot = -1;
	tctx->cnt_midx = -1;
	tctx->charged_sum = p->se.sum_exec_runtime;
	/*
	 * "Looked at attach_seq 0": until the first process attaches (the
	 * loader bumps attach_seq), nobody is attached and no lookup is due.
	 */
	tctx->seen_attach_seq = 0;
	return 0;
}

/* ===========================================================================
 * In-kernel checkdead: the timer.
 * ======================================================================== */

/* Is @tgid's thread group stopped (SIGSTOP and friends)? Gone counts as stopped. */
static bool process_stopped(u32 tgid)
{
	struct task_struct *leader = bpf_task_from_pid(tgid);
	bool stopped;

	if (!leader)
		return true;
	/*
	 * The group stop is complete, or at least the leader has stopped (the
	 * flag is set only once every thread has; the leader's state is the
	 * earlier sign).
	 */
	stopped = (leader->signal->flags & SIGNAL_STOP_STOPPED) || (leader->__state & TASK_STOPPED_BIT);
	bpf_task_release(leader);
	return stopped;
}

/*
 * Is an M that holds a P (or sched.lock) blocked in the kernel rather than
 * parked by the runtime? A page fault under memory pressure, reclaim, an
 * mmap_lock wait: TASK_UNINTERRUPTIBLE, and the kernel itself will wake it.
 * Its Gs wait, but nothing was lost. (The runtime parks Ms in futex waits,
 * which sleep interruptibly, so a lost wake-up never looks like this.) Seen
 * in the VM: skynet at the edge of an OOM kill, both P-holding Ms in
 * reclaim for over 100 ms, reported as a stall. Only called when the stall
 * condition otherwise holds, so the task lookups cost nothing normally.
 */
static bool m_blocked_in_kernel(struct goro_proc_export *blk, u32 tgid)
{
	s32 i;

	goro_for(i, 0, GORO_MAX_M) {
		struct task_struct *t;
		u64 w;
		u32 tid;
		bool d;

		if (i < 0 || i >= GORO_MAX_M)
			break;
		tid = blk->m[i].tid;
		w = blk->m[i].word;
		if (!tid || (GORO_MW_P(w) < 0 && !(w & GORO_MF_LOCKHELD)))
			continue;
		t = bpf_task_from_pid(tid);
		if (!t)
			continue;
		/* Another process's thread: none of our business, and no probe of it. */
		d = t->tgid == tgid && (t->__state & TASK_UNINTERRUPTIBLE_BIT);
		bpf_task_release(t);
		if (d)
			return true;
	}
	return false;
}

static __always_inline void stall_emit(u32 slot, u32 tgid, struct goro_proc_export *blk, struct slot_priv *sp,
		       struct goro_sched_counters *sc, u64 now)
{
	struct goro_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(GORO_STAT_EVENTS_DROPPED);
		return;
	}
	ev->kind = GORO_EV_STALL;
	ev->tgid = tgid;
	ev->slot = slot;
	ev->__pad = 0;
	ev->stalled_ns = now - sp->stall_since_ns;
	ev->now_ns = now;
	ev->sc = *sc;
	ev->nm = blk->hdr.nm;
	ev->__pad2 = 0;
	bpf_probe_read_kernel(ev->m, sizeof(ev->m), blk->m);
	bpf_probe_read_kernel(ev->km, sizeof(ev->km), sp->km);
	bpf_probe_read_kernel(ev->p, sizeof(ev->p), blk->p);
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Stall events are lines in root's log: a process must not be able to fill
 * it. A process whose last event is older than STALL_QUIET_NS always gets
 * its event through (a genuine stall is usually a first one); repeats come
 * out of a budget shared by everybody, STALL_BURST events refilled at one
 * per STALL_REFILL_NS. So a flood of repeats costs at most that rate in
 * all, and cannot crowd out anyone's first report.
 */
#define STALL_QUIET_NS (10ULL * NSEC_PER_SEC)
#define STALL_REFILL_NS (NSEC_PER_SEC / 4)
enum { STALL_BURST = 8 };
static u64 stall_budget_at; /* the budget is full at this time; see stall_rate_ok */

static bool stall_rate_ok(struct slot_priv *sp, u64 now)
{
	u64 last = sp->last_event_ns, at = stall_budget_at;

	if (!last || now - last >= STALL_QUIET_NS) {
		sp->last_event_ns = now;
		return true;
	}
	/* Token bucket as one timestamp: full at @at, each event moves it on. */
	if (time_before(at, now - STALL_BURST * STALL_REFILL_NS))
		at = now - STALL_BURST * STALL_REFILL_NS;
	if (time_before(now, at + STALL_REFILL_NS))
		return false;
	stall_budget_at = at + STALL_REFILL_NS;
	sp->last_event_ns = now;
	return true;
}

static void stall_clear(struct slot_priv *sp)
{
	sp->stall_since_ns = 0;
	sp->stall_reported = 0;
}

static void checkdead_slot(u32 slot, u64 now)
{
	struct goro_sched_counters sc;
	struct goro_proc_export *blk;
	struct goro_slot_owner *own;
	struct slot_priv *sp;
	bool active = false, born = false, runnable_gs;
	u64 seq;
	u32 nprocs, tgid;
	int i;

	own = bpf_map_lookup_elem(&goro_slot_owner, &slot);
	if (!own || !own->tgid || !own->gen)
		return;
	tgid = own->tgid;
	blk = proc_block(slot);
	sp = slot_priv_get(slot, own->gen);
	if (!blk || !sp)
		return;
	if (!block_fresh(blk, now)) {
		stall_clear(sp);
		return;
	}

	/*
	 * A consistent copy of the counters: seq even and unchanged across the
	 * copy (the runtime makes it odd while it writes). The barriers keep
	 * the compiler from moving the copy out of the window; the CPU (x86:
	 * loads are not reordered with loads) keeps it in order. A torn read
	 * just skips this tick.
	 */
	seq = *(volatile u64 *)&blk->sc.seq;
	if (seq & 1)
		return;
	asm volatile("" ::: "memory");
	__builtin_memcpy(&sc, &blk->sc, sizeof(sc));
	asm volatile("" ::: "memory");
	if (*(volatile u64 *)&blk->sc.seq != seq)
		return;

	/*
	 * More Ps or Ms than the block describes (GOMAXPROCS above GORO_MAX_P
	 * on a big machine, or over GORO_MAX_M Ms): an M we cannot see may be
	 * running the Gs, so "nobody will pick them up" cannot be concluded.
	 */
	if (sc.gomaxprocs > GORO_MAX_P || sc.mcount > GORO_MAX_M) {
		stall_clear(sp);
		return;
	}

	/*
	 * Whether there are runnable Gs, not how many: a sum that grows every
	 * iteration keeps the verifier from ever seeing two iterations as
	 * the same state ("sequence of jumps is too complex"). The loader
	 * counts them from the event.
	 */
	runnable_gs = sc.runqsize != 0;
	nprocs = sc.gomaxprocs > GORO_MAX_P ? GORO_MAX_P : sc.gomaxprocs;
	goro_for(i, 0, nprocs) {
		u64 pw;

		if (i < 0 || i >= GORO_MAX_P)
			break;
		pw = blk->p[i].word;
		if (GORO_PW_STATUS(pw) < GORO_P_DEAD && GORO_PW_RUNQ(pw)) {
			runnable_gs = true;
			break;
		}
	}
	if (!runnable_gs) {
		stall_clear(sp);
		return;
	}

	goro_for(i, 0, GORO_MAX_M) {
		u32 tid, st;
		u64 km;

		if (i < 0 || i >= GORO_MAX_M)
			break;
		tid = blk->m[i].tid;
		st = GORO_MW_STATE(blk->m[i].word);
		if (!tid) {
			if (st != GORO_M_FREE && st < GORO_M_NR_STATES)
				born = true;
			continue;
		}
		if (st == GORO_M_SYSCALL) {
			active = true;
			break;
		}
		/*
		 * sysmon runs no Gs, so its running proves nothing -- unless it
		 * carries a P to an M (injectglist's startIdle, retake's
		 * handoffp) or is injecting Gs from the netpoller (they are on
		 * the global queue before startIdle takes a P for them; a
		 * sysmon preempted there looked like a stall under load): then
		 * the work is on its way, as in the veto rule.
		 */
		if (st == GORO_M_SYSMON && !(blk->m[i].word & (GORO_MF_CARRYING | GORO_MF_INJECTING)))
			continue;
		km = sp->km[i];
		if ((km & GORO_KM_RUNNABLE) && GORO_KM_TID(km) == tid) {
			active = true;
			break;
		}
	}
	if (!active && born && sp->nr_unmatched_runnable > 0)
		active = true;
	if (active) {
		stall_clear(sp);
		return;
	}

	if (!sp->stall_since_ns) {
		sp->stall_since_ns = now;
		return;
	}
	if (sp->stall_reported || now - sp->stall_since_ns < stall_threshold_ns)
		return;
	if (process_stopped(tgid)) {
		/* Nobody runs a stopped process; start over after SIGCONT. */
		sp->stall_since_ns = now;
		return;
	}
	/*
	 * The task lookups come last, once per would-be report (not every
	 * tick while the condition holds), and only of the owner's threads.
	 * A process with more Ms than the block has records cannot be seen
	 * whole: one of the undescribed Ms may be running its Gs.
	 */
	if (sc.mcount > GORO_MAX_M || m_blocked_in_kernel(blk, tgid)) {
		stall_clear(sp);
		return;
	}
	sp->stall_reported = 1;
	sp->stall_events++;
	blk->kv.stall_events = sp->stall_events;
	stat_inc(GORO_STAT_STALL_EVENTS);
	if (!stall_rate_ok(sp, now)) {
		stat_inc(GORO_STAT_EVENTS_DROPPED);
		return;
	}
	stall_emit(slot, tgid, blk, sp, &sc, now);
}

static int checkdead_timerfn(void *map, int *key, struct checkdead_timer *t)
{
	u64 now = bpf_ktime_get_ns();
	int slot;

	goro_for(slot, 0, nr_slots)
		checkdead_slot(slot, now);
	bpf_timer_start(&t->timer, checkdead_period_ns, 0);
	return 0;
}

s32 GORO_STRUCT_OPS_SLEEPABLE(goro_init)
{
	struct checkdead_timer *t;
	u32 zero = 0;
	s32 ret;

	/* node -1: the queue's memory may come from any NUMA node. */
	ret = scx_bpf_create_dsq(GORO_SHARED_DSQ, -1);
	if (ret) {
		goro_error("failed to create the shared DSQ (%d)", ret);
		return ret;
	}

	t = bpf_map_lookup_elem(&checkdead_timers, &zero);
	if (!t) {
		goro_error("checkdead timer lookup failed");
		return -2;
	}
	ret = bpf_timer_init(&t->timer, &checkdead_timers, CLOCK_MONOTONIC);
	if (ret) {
		goro_error("checkdead timer init failed (%d)", ret);
		return ret;
	}
	bpf_timer_set_callback(&t->timer, checkdead_timerfn);
	ret = bpf_timer_start(&t->timer, checkdead_period_ns, 0);
	if (ret)
		goro_error("checkdead timer start failed (%d)", ret);
	return ret;
}

/*
 * Called once when the scheduler is disabled, for whatever reason, even if
 * goro_init failed. Copy what userspace reports, then publish it by
 * storing kind last: the compare-and-swap is a full barrier, so a loader
 * that sees kind != 0 sees the strings too.
 */
void GORO_STRUCT_OPS(goro_exit, struct scx_exit_info *ei)
{
	bpf_probe_read_kernel_str(goro_uei.reason, sizeof(goro_uei.reason), ei->reason);
	bpf_probe_read_kernel_str(goro_uei.msg, sizeof(goro_uei.msg), ei->msg);
	/* Empty unless the kernel made a dump (error exits); may be NULL. */
	bpf_probe_read_kernel_str(goro_uei.dump, sizeof(goro_uei.dump), ei->dump);
	goro_uei.exit_code = ei->exit_code;
	__sync_val_compare_and_swap(&goro_uei.kind, GORO_EXIT_NONE, ei->kind);
}

SEC(".struct_ops.link")
struct sched_ext_ops goro_ops = {
	.select_cpu = (void *)goro_select_cpu,
	.enqueue = (void *)goro_enqueue,
	.dispatch = (void *)goro_dispatch,
	.runnable = (void *)goro_runnable,
	.running = (void *)goro_running,
	.stopping = (void *)goro_stopping,
	.quiescent = (void *)goro_quiescent,
	.tick = (void *)goro_tick,
	.enable = (void *)goro_enable,
	.init_task = (void *)goro_init_task,
	.init = (void *)goro_init,
	.exit = (void *)goro_exit,
	/*
	 * The watchdog ejects us if a runnable task waits longer than this.
	 * The kernel's default (and maximum) is 30 s; 5 s catches our bugs
	 * quickly in tests while staying far above any legitimate wait.
	 */
	.timeout_ms = 5000,
	.exit_dump_len = GORO_EXIT_DUMP_LEN,
	.name = "goro",
};
