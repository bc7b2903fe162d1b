/* SPDX-License-Identifier: GPL-2.0-only OR BSD-3-Clause */
/*
 * scx_goro.h - the whole contract between scx_goro's BPF side and userspace.
 *
 * Everything the loader (userspace/scx_goro.cpp) and, later, the goro
 * runtime exchange with the BPF scheduler (bpf/scx_goro.bpf.c) is declared
 * here and nowhere else. It is included from both worlds, so it uses only
 * the kernel's fixed-width __u64/__s32 types: BPF code gets them from
 * vmlinux.h, userspace from <linux/types.h>.
 *
 * What is here:
 *   - GORO_SHARED_DSQ, the id of our dispatch queue;
 *   - enum goro_stat, the indices of the per-CPU counters in the `stats` map,
 *     and the layout of the wake-to-run latency histograms (`hist`);
 *   - struct goro_exit_info and the exit kinds, so userspace can report
 *     why the kernel unloaded us (see "Exit info" below), the restart bit
 *     of exit codes, the partial-switch flag;
 *   - THE RUNTIME EXPORT (ABI GORO_EXPORT_ABI): what a goro process tells the
 *     kernel about its Ms and Ps, what the kernel tells it back, and how a
 *     process attaches (see "The runtime export" below), and the
 *     loader's ownership records (struct goro_slot_owner/goro_tgid_slot);
 *   - struct goro_event, what the BPF side reports to the loader through
 *     the `events` ring buffer (in-kernel checkdead).
 */
#ifndef GORO_SCX_GORO_H
#define GORO_SCX_GORO_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/*
 * The one user dispatch queue. Ids below 2^63 are ours to choose; the
 * built-in queues (SCX_DSQ_LOCAL, SCX_DSQ_GLOBAL, ...) have the top bit set.
 */
#define GORO_SHARED_DSQ 0ULL

/*
 * The runtime-aware policies in scx_goro.bpf.c: the BPF side's `policies`,
 * one bit per letter (bit n = letter 'a' + n). Letters a-d and f named
 * policies that were measured, did not pay and were removed (see "Policies
 * that did not pay" there); e keeps its letter.
 */
enum goro_policy {
	GORO_POLICY_WAKE = 1 << 4,     /* e: Ms woken to start work: idle kick / preempt */
	GORO_POLICY_ALL = GORO_POLICY_WAKE,
};

/* Which wakeups may preempt a running task: the BPF side's wake_preempt_mode. */
enum goro_wake_preempt {
	GORO_WAKE_PREEMPT_OFF = 0,  /* none: a waking task waits for a slice to end */
	GORO_WAKE_PREEMPT_GORO = 1, /* only Ms the runtime wakes to start work */
	GORO_WAKE_PREEMPT_ALL = 2,  /* every waking task that is owed CPU */
};

/*
 * Per-CPU event counters, one __u64 each, in the BPF_MAP_TYPE_PERCPU_ARRAY
 * `stats` (key = enum goro_stat). Userspace sums them over CPUs.
 */
enum goro_stat {
	GORO_STAT_DIRECT_IDLE,	 /* select_cpu found an idle CPU: inserted into its local DSQ */
	GORO_STAT_ENQUEUE,	 /* enqueue: inserted into the shared DSQ by vtime */
	GORO_STAT_LAG_CLAMPED,  /* a sleeper's lag was cut to max_lag_ns when it went to sleep */
	GORO_STAT_DEBT_CLAMPED,	 /* enqueue: a low-weight task's debt was cut (starvation bound) */
	GORO_STAT_DISPATCH,	 /* dispatch: moved a task from the shared DSQ to a local DSQ */
	GORO_STAT_KEEP_RUNNING,	 /* dispatch: shared DSQ empty, the previous task got a new slice */
	GORO_STAT_DISPATCH_IDLE, /* dispatch: shared DSQ empty, nothing to keep running */
	/* The runtime-aware policy (see the top of scx_goro.bpf.c). */
	GORO_STAT_WAKE_IDLE,	 /* a woken M (STARTING/SPINNING/NETPOLL) went to an idle CPU */
	GORO_STAT_WAKE_KICK,	 /* enqueue: a woken M kicked an idle CPU to come and take it */
	GORO_STAT_WAKE_PREEMPT,	 /* enqueue: a woken M owed CPU preempted a CPU (SCX_KICK_PREEMPT) */
	GORO_STAT_M_MATCHED,	 /* a task was matched to an M record (a scan found its tid) */
	GORO_STAT_M_SCAN_MISS,	 /* a scan of an attached process's M table did not find the task */
	GORO_STAT_STALE_BLOCK,	 /* a block was ignored because its heartbeat was stale */
	GORO_STAT_STALL_EVENTS,	 /* in-kernel checkdead reported a stall (one per episode) */
	GORO_STAT_EVENTS_DROPPED, /* the `events` ring buffer was full */
	GORO_STAT_WAKE_PREEMPT_OTHER, /* enqueue: another waking task owed CPU preempted a CPU */
	GORO_STAT_STARVE_RESCUE, /* dispatch: a task queued longer than starve_ns was run out of turn */
	GORO_NR_STATS,
};

/*
 * Wake-to-run latency histograms: the per-CPU array `hist`, one __u64
 * count per (class, bucket), key = class * GORO_HIST_BUCKETS + bucket.
 * Latency is measured from ops.runnable (the wakeup) to ops.running.
 *
 * Buckets are log-linear: values 0..3 ns have one bucket each; above that
 * every power of two [2^k, 2^(k+1)) is cut into 4 equal sub-buckets, so a
 * bucket is at most 25% wide (a percentile read off it is within 25%).
 * Values of 2^(GORO_HIST_MAX_LOG2+1) ns (about 68 s) and more land in the
 * last bucket. goro_hist_bucket() and goro_hist_lower() are the mapping,
 * shared by both sides so they cannot disagree.
 */
enum goro_hist_class {
	GORO_HIST_GORO = 0,  /* threads matched to an M record of an attached process */
	GORO_HIST_OTHER = 1, /* everything else */
	GORO_HIST_NR_CLASSES,
};
#define GORO_HIST_MAX_LOG2 35
#define GORO_HIST_BUCKETS (4 * GORO_HIST_MAX_LOG2 + 4) /* 144 */

static inline __u32 goro_hist_bucket(__u64 v)
{
	__u32 log2 = 0;
	__u64 t = v;

	if (v < 4)
		return (__u32)v;
	/* floor(log2(v)) without a loop (the BPF side has no clz). */
	if (t >> 32) { log2 += 32; t >>= 32; }
	if (t >> 16) { log2 += 16; t >>= 16; }
	if (t >> 8) { log2 += 8; t >>= 8; }
	if (t >> 4) { log2 += 4; t >>= 4; }
	if (t >> 2) { log2 += 2; t >>= 2; }
	if (t >> 1) { log2 += 1; }
	if (log2 > GORO_HIST_MAX_LOG2)
		return GORO_HIST_BUCKETS - 1;
	return 4 * (log2 - 1) + (__u32)((v >> (log2 - 2)) & 3);
}

/* The smallest value that lands in @bucket (userspace: percentiles). */
static inline __u64 goro_hist_lower(__u32 bucket)
{
	__u32 log2;

	if (bucket < 4)
		return bucket;
	log2 = bucket / 4 + 1;
	return (1ULL << log2) + (__u64)(bucket % 4) * (1ULL << (log2 - 2));
}

/*
 * Exit info.
 *
 * When the kernel disables the scheduler -- because userspace closed the
 * link, because the scheduler called scx_bpf_error(), because the watchdog
 * saw a task starve -- it calls ops.exit() with a struct scx_exit_info. The
 * BPF side copies the part we report into `goro_uei` (in .bss, so the
 * skeleton maps it into userspace) and publishes it by storing `kind` last:
 * kind == 0 (SCX_EXIT_NONE) means "still running".
 *
 * The exit kinds mirror the kernel's enum scx_exit_kind. Userspace has no
 * vmlinux.h, so the values are repeated here; scx_goro.bpf.c checks them
 * against the kernel's enum at compile time. Kinds below GORO_EXIT_ERROR
 * are orderly unloads; GORO_EXIT_ERROR and above mean the scheduler was
 * ejected.
 */
enum goro_exit_kind {
	GORO_EXIT_NONE = 0,
	GORO_EXIT_DONE = 1,
	GORO_EXIT_UNREG = 64,	   /* userspace closed the link */
	GORO_EXIT_UNREG_BPF = 65,  /* the BPF scheduler called scx_bpf_exit() */
	GORO_EXIT_UNREG_KERN = 66, /* the kernel asked (e.g. a sub-scheduler parent) */
	GORO_EXIT_SYSRQ = 67,	   /* SysRq-S */
	GORO_EXIT_PARENT = 68,	   /* a sub-scheduler's parent went away */
	GORO_EXIT_PARENT_KILL = 69,
	GORO_EXIT_ERROR = 1024,	   /* runtime error */
	GORO_EXIT_ERROR_BPF = 1025, /* scx_bpf_error() */
	GORO_EXIT_ERROR_STALL = 1026, /* the watchdog saw a runnable task starve */
	GORO_EXIT_ERROR_REENQ = 1027, /* a task was re-enqueued too often without running */
	GORO_EXIT_ERROR_RESCUE = 1028, /* ejected for overloading rescue execution */
};

enum {
	GORO_EXIT_REASON_LEN = 128,
	GORO_EXIT_MSG_LEN = 1024,
	/*
	 * The kernel's debug dump on an error exit: per-CPU and per-task
	 * scheduler state, the first thing to read when the watchdog fired.
	 * Passed to the kernel as ops.exit_dump_len (its default is 32 KiB;
	 * half is plenty for our 2-CPU VMs).
	 */
	GORO_EXIT_DUMP_LEN = 16384,
};

/*
 * Exit codes. scx_bpf_exit()'s code (and the kernel's own, for a
 * kernel-requested unregister) follows the kernel's convention: the low 32
 * bits are the scheduler's own, bits 32..47 a reason, and this bit says
 * "the scheduler should be loaded again" (e.g. after CPU hotplug, which we
 * do not handle in place). The loader restarts when it is set.
 */
#define GORO_ECODE_ACT_RESTART (1ULL << 48)

/*
 * The struct_ops flag SCX_OPS_SWITCH_PARTIAL, for the loader (-p): only
 * tasks whose policy is SCHED_EXT are ours, the rest stay in the fair
 * class. scx_goro.bpf.c checks the value against the kernel's enum.
 */
#define GORO_OPS_SWITCH_PARTIAL (1ULL << 3)

struct goro_exit_info {
	__s32 kind;	  /* enum goro_exit_kind; written last, see above */
	__u32 __pad;
	__s64 exit_code;  /* scx_bpf_exit()'s code, or 0 */
	char reason[GORO_EXIT_REASON_LEN];
	char msg[GORO_EXIT_MSG_LEN];
	char dump[GORO_EXIT_DUMP_LEN];
};


/*
 * ===========================================================================
 * The runtime export (ABI 1)
 * ===========================================================================
 *
 * A goro process tells scx_goro which of its threads are Ms and what each
 * is doing; scx_goro tells the process which of its Ms the kernel sees
 * runnable. Both directions live in ONE page-aligned block of memory per
 * process, struct goro_proc_export, shared between the process, the BPF
 * program and the loader.
 *
 * The mechanism, and why
 * ----------------------
 * The block is the single value of a BPF_MAP_TYPE_ARRAY created with
 * BPF_F_MMAPABLE by the loader, one such map per attached process, all of
 * them inner maps of the BPF_MAP_TYPE_ARRAY_OF_MAPS `goro_procs` (index =
 * the process's slot). The process mmap()s its map (MAP_SHARED) and from
 * then on publishes with plain stores: no system call on any path. The BPF
 * side reads the same memory with two map lookups (slot -> inner map ->
 * value), from any scheduling callback, whatever task is current.
 *
 * How a process gets its map -- attaching:
 *   1. Discovery: the directory GORO_SCX_PIN_DIR exists while a scx_goro
 *      loader runs (it pins its `stats` map there, for `scx_goro --monitor`).
 *      No directory: the runtime runs standalone (one GORO_DEBUG line).
 *   2. The process connects to the loader's SOCK_SEQPACKET Unix socket at
 *      GORO_SCX_SOCK and sends struct goro_hello. The loader learns who is
 *      asking from the kernel (SO_PEERCRED: the caller's tgid), not from
 *      the message; it picks a free slot, creates a new block map for this
 *      attach and puts it into the slot of `goro_procs`, writes the
 *      kernel-owned header fields, records slot -> tgid in the BPF-only
 *      map `goro_slot_owner` and tgid -> slot in `goro_tgid_slot`, and
 *      answers with struct goro_welcome plus the map's fd (SCM_RIGHTS).
 *   3. The process keeps the connection open for its whole life (close-on-
 *      exec). When it exits -- or is SIGKILLed -- the loader frees the slot
 *      (it holds a pidfd of the process that connected, so this happens
 *      even if the connection was passed on and lives; a reused pid never
 *      inherits a slot; the socket closing frees it as well): ownership records first, then the block is
 *      taken out of `goro_procs`, zeroed and dropped; the next attach gets
 *      a new block and generation. State of a dead process is gone as soon
 *      as the loader sees the hang-up.
 *
 * Isolation. A process holds the fd of its own block and of no other: it
 * can only describe its own threads. The BPF side applies a block's
 * contents only to tasks whose tgid is the slot's recorded owner (a thread
 * id written into a block that belongs to another process is ignored), so
 * no process can change how another process's threads are scheduled.
 * (root can open any map by id; root can also ptrace. Not a boundary we
 * try to draw.) A forked child inherits the mapping but not the ownership:
 * its threads have another tgid and its writes only hurt its parent's
 * description of itself. An mmap cannot be revoked, so whoever kept a
 * mapping of a block (a process that closed its connection, a forked
 * child, a receiver of the fd) keeps it after the slot is freed: that is
 * why every attach gets a block of its own, never one an earlier owner
 * has seen.
 *
 * Alternatives we did not take: one big mmapable array for everybody (any
 * process could rewrite any other's slot); a BPF arena (the same: one
 * shared mapping); task storage filled through bpf(2) by the runtime (a
 * system call per state change, and CAP_BPF for every goro binary);
 * reading the process's own memory with bpf_probe_read_user (only possible
 * while one of its threads is current: blind exactly when all its Ms
 * sleep, which is when the in-kernel checkdead must look).
 *
 * Trust. The BPF side never trusts anything the process writes: every
 * index is bounds-checked against GORO_MAX_M / GORO_MAX_P and gomaxprocs,
 * every state against its enum, every thread id against the task's own
 * tgid; a snapshot of the counters is used only when its sequence count
 * is even and unchanged across the read; a block whose heartbeat is older
 * than GORO_STALE_NS is treated as absent. Whatever a block says, boosts
 * only reorder work within the task's fair share (see scx_goro.bpf.c):
 * lying gains nothing. Conversely the runtime trusts the kernel-written
 * part (struct goro_kernel_view) only as advice: it never waits on it.
 *
 * What each side writes:
 *   runtime: hdr.abi, the M table (tid + word), the P table, struct
 *            goro_sched_counters (seqcount), hdr.heartbeat_ns.
 *   loader:  hdr.magic, hdr.slot, hdr.gen, hdr.flags at attach time.
 *   BPF:     struct goro_kernel_view only.
 *
 * M records
 * ---------
 * An M's record is its index in m[] (the runtime assigns indices, reusing
 * those of exited Ms; at most GORO_MAX_M Ms are described, the rest are
 * scheduled as ordinary tasks). `tid` is written by the M itself as the
 * first thing its thread does, and zeroed when the thread exits. `word`
 * packs everything the scheduler needs at a decision into one 64-bit
 * store, so it can never be torn:
 *
 *   bits  0..7   enum goro_m_state
 *   bits  8..15  P index + 1 (0: no P) -- the P the M holds, or, with
 *                GORO_MF_CARRYING, the P it is handing to another M
 *   bit   16     GORO_MF_LOCKHELD: holds sched.lock
 *   bit   17     GORO_MF_CARRYING: holds an idle P for another M
 *   bit   18     GORO_MF_INJECTING: (sysmon) is putting Gs it took from
 *                the netpoller on the run queues and starting Ms for them
 *   bits 32..63  a count of the M's own stores (diagnostics, and the order
 *                of a re-attach's copy: see the runtime's scx_export.h)
 *
 * P ownership in flight (what the in-kernel checkdead needs). In Go's
 * scheduler a P can be owned by nobody running: sysmon's startIdle (the
 * injectglist path), startm, handoffp and wakep take a P off the idle
 * list and then -- later, sometimes after dropping sched.lock -- hand it
 * to an M they wake or create. The runtime keeps the P named at every
 * instant of that journey:
 *   1. the M that takes the P sets its own word to CARRYING | P;
 *   2. before waking or creating the target M it stores the target's word
 *      as GORO_M_STARTING | P (for a new M, into a freshly assigned record
 *      whose tid is still 0 until the thread starts and fills it in);
 *   3. only then does it clear CARRYING in its own word.
 * The target sets RUNNING | P when it acquires the P. So "some thread of
 * this process holds or carries a P and is runnable" is always visible.
 *
 * Kernel view
 * -----------
 * The BPF side maintains, from ops.runnable / running / stopping /
 * quiescent, km[i] for every M it has matched to a record: runnable (on a
 * run queue or on a CPU), running, the CPU, and the tid it is about (so the
 * runtime can tell a stale entry from a reused record), and counts of the
 * process's unmatched threads that are runnable (a just-created M whose
 * record has no tid yet is one). The runtime reads it without a system
 * call when checkdead is about to throw (vetoes, confirmations).
 */
/*
 * Pinned under GORO_SCX_PIN_DIR by the loader, removed on a clean exit
 * (a SIGKILLed loader leaves them; the next one cleans up): `stats`,
 * `hist`, `goro_procs`, `goro_slot_owner` -- what `scx_goro --monitor`
 * reads.
 */
#define GORO_SCX_PIN_DIR "/sys/fs/bpf/scx_goro"
#define GORO_SCX_SOCK "/run/scx_goro.sock"

#define GORO_EXPORT_ABI 1
#define GORO_EXPORT_MAGIC 0x6f726f67U /* "goro", little-endian */
/* Slots (attached processes): the default, and the most --max-procs allows. */
#define GORO_MAX_PROCS 64
#define GORO_MAX_PROCS_LIMIT 1024
#define GORO_MAX_M 128
#define GORO_MAX_P 64
/*
 * A block whose heartbeat is older than this is ignored (frozen runtime):
 * no boosts, and no stall reports either (nothing in it is current). So
 * the in-kernel checkdead sees a stall only if it begins while the
 * heartbeat is fresh and lasts its threshold within GORO_STALE_NS of the
 * last refresh. A runtime whose sysmon sleeps for long stretches (Go's
 * does when all Ps are idle) should also refresh the heartbeat whenever it
 * makes work runnable, e.g. with every counters publication. A heartbeat
 * more than GORO_STALE_NS in the future counts as stale too.
 */
#define GORO_STALE_NS (2ULL * 1000 * 1000 * 1000)

enum goro_m_state {
	GORO_M_FREE = 0,     /* record unused */
	GORO_M_RUNNING = 1,  /* holds a P, running Gs (or the scheduler) */
	GORO_M_SPINNING = 2, /* looking for work (may or may not hold a P) */
	GORO_M_IDLE = 3,     /* parked in stopm, on the idle list */
	GORO_M_SYSCALL = 4,  /* in a system call / blocking region */
	GORO_M_SYSMON = 5,   /* the sysmon thread */
	GORO_M_LOCKED = 6,   /* parked in stoplockedm (wired to a G) */
	GORO_M_STARTING = 7, /* handed a P by startm/newm, not running yet */
	GORO_M_NETPOLL = 8,  /* blocked in netpoll, without a P */
	GORO_M_NR_STATES,
};

#define GORO_MW_STATE(w) ((__u32)((w) & 0xff))
#define GORO_MW_P(w) ((__s32)(((w) >> 8) & 0xff) - 1) /* -1: none */
#define GORO_MF_LOCKHELD (1ULL << 16)
#define GORO_MF_CARRYING (1ULL << 17)
#define GORO_MF_INJECTING (1ULL << 18)
#define GORO_MW_MAKE(state, pidx, flags) \
	((__u64)(state) | ((__u64)((pidx) + 1) << 8) | (__u64)(flags))

struct goro_m_export {
	__u32 tid;	/* 0: not (yet) a thread */
	__u32 __pad;
	__u64 word;	/* see "M records" */
};

enum goro_p_status { /* the runtime's PStatus */
	GORO_P_IDLE = 0,
	GORO_P_RUNNING = 1,
	GORO_P_SYSCALL = 2,
	GORO_P_GCSTOP = 3,
	GORO_P_DEAD = 4,
};

struct goro_p_export {
	/* bits 0..7 status, bits 8..15 owner M record + 1, bits 32..63 runq length (incl. runnext) */
	__u64 word;
	__u64 runnext_goid; /* the G in runnext, else the head of runq (0: empty); diagnostics */
};
#define GORO_PW_STATUS(w) ((__u32)((w) & 0xff))
#define GORO_PW_M(w) ((__s32)(((w) >> 8) & 0xff) - 1)
#define GORO_PW_RUNQ(w) ((__u32)((w) >> 32))
#define GORO_PW_MAKE(status, midx, runq) \
	((__u64)(status) | ((__u64)((midx) + 1) << 8) | ((__u64)(runq) << 32))

/*
 * Scheduler counters, published under sched.lock with a sequence count:
 * seq is odd while the runtime writes. Readers take a copy and use it only
 * if seq was even and unchanged across the copy.
 */
struct goro_sched_counters {
	__u64 seq;
	__u32 gomaxprocs;
	__u32 npidle;
	__u32 nmspinning;
	__u32 nmidle;
	__u32 nmidlelocked;
	__u32 nmsys;
	__u32 mcount;	     /* Ms created minus Ms freed */
	__u32 runqsize;	     /* global run queue */
	__u64 runq_head_goid; /* head of the global run queue (0: empty) */
	__u32 ntimers;	     /* pending timers, all Ps */
	__u32 netpoll_waiters; /* Gs parked on the netpoller */
	__u64 ngoroutines;
	__u64 published_ns;  /* CLOCK_MONOTONIC of this snapshot */
};

/* Per-M kernel view word: written by the BPF side only. */
#define GORO_KM_RUNNABLE (1ULL << 0) /* queued or on a CPU */
#define GORO_KM_RUNNING (1ULL << 1)  /* on a CPU now */
#define GORO_KM_CPU(w) ((__u32)(((w) >> 8) & 0xffff))
#define GORO_KM_TID(w) ((__u32)((w) >> 32))

struct goro_kernel_view {
	__u64 gen;		/* == hdr.gen while the BPF side maintains this */
	__u64 updated_ns;	/* bpf_ktime_get_ns() of the last change */
	__u32 nr_runnable;	/* matched Ms (sysmon excluded) runnable now */
	__u32 nr_unmatched_runnable; /* threads of the process not matched to a record, runnable now */
	__u64 stall_events;	/* lost wake-ups reported for this process */
	__u64 km[GORO_MAX_M];	/* GORO_KM_* | cpu << 8 | tid << 32 */
};

struct goro_export_hdr {
	__u32 magic;	/* loader: GORO_EXPORT_MAGIC */
	__u32 abi;	/* runtime: GORO_EXPORT_ABI once it publishes */
	__u32 slot;	/* loader */
	__u32 flags;	/* loader: GORO_ATTACH_* */
	__u64 gen;	/* loader: bumped at every attach of this slot */
	__u64 heartbeat_ns; /* runtime: CLOCK_MONOTONIC, sysmon refreshes it */
	__u32 pid;	/* runtime: getpid(), diagnostics (the BPF side uses the loader's record) */
	__u32 nm;	/* runtime: records in use are m[0..nm) */
};

struct goro_proc_export {
	struct goro_export_hdr hdr;
	struct goro_sched_counters sc;
	struct goro_m_export m[GORO_MAX_M];
	struct goro_p_export p[GORO_MAX_P];
	/* Kernel-written, on its own cache lines. */
	struct goro_kernel_view kv __attribute__((aligned(64)));
};

/*
 * The loader's ownership records (BPF_MAP_TYPE_ARRAY `goro_slot_owner`,
 * index = slot, and BPF_MAP_TYPE_HASH `goro_tgid_slot`, key = tgid).
 * Neither is mmapable: only the loader (through bpf(2)) writes them, so
 * the BPF side can trust them where it cannot trust the block. A free
 * slot has tgid 0. `gen` is the value the loader also wrote to hdr.gen;
 * the BPF side uses the copy here, never the block's.
 */
struct goro_slot_owner {
	__u32 tgid;
	__u32 __pad;
	__u64 gen;
};

struct goro_tgid_slot {
	__u32 slot;
	__u32 __pad;
	__u64 gen;
};

/* hdr.flags */
#define GORO_ATTACH_PARTIAL (1U << 0) /* loader runs with -p: Ms must switch to SCHED_EXT */

/* The attach handshake over GORO_SCX_SOCK (one message each way). */
struct goro_hello {
	__u32 magic;	/* GORO_EXPORT_MAGIC */
	__u32 abi;	/* GORO_EXPORT_ABI */
};

struct goro_welcome {
	__u32 magic;	/* GORO_EXPORT_MAGIC */
	__u32 abi;	/* the loader's GORO_EXPORT_ABI */
	__s32 status;	/* 0, or a negative errno: -EBUSY no free slot (for a non-root uid: none
			 * outside root's reserve), -EDQUOT the uid's limit of slots, -ESRCH
			 * the process is gone, -EXDEV the process is in another pid
			 * namespace (its tids are not the kernel's), -EPROTO ABI mismatch */
	__u32 slot;
	__u64 gen;
	__u32 flags;	/* GORO_ATTACH_* */
	__u32 map_size; /* bytes to mmap: sizeof(struct goro_proc_export), page-rounded */
	/* + the map's fd as SCM_RIGHTS ancillary data when status == 0 */
};

/*
 * The layout, pinned. Three compilers (the runtime's, the loader's and
 * clang's BPF target) build these structs into programs that share one
 * mapping and one socket, so a field that moves must stop the build, not a
 * process at attach. Changing any of these is an ABI change: bump
 * GORO_EXPORT_ABI.
 */
#ifdef __cplusplus
#define GORO_ABI_ASSERT(cond) static_assert(cond, #cond)
#else
#define GORO_ABI_ASSERT(cond) _Static_assert(cond, #cond)
#endif
GORO_ABI_ASSERT(sizeof(struct goro_m_export) == 16);
GORO_ABI_ASSERT(sizeof(struct goro_p_export) == 16);
GORO_ABI_ASSERT(sizeof(struct goro_sched_counters) == 72);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_sched_counters, runq_head_goid) == 40);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_sched_counters, published_ns) == 64);
GORO_ABI_ASSERT(sizeof(struct goro_kernel_view) == 32 + 8 * GORO_MAX_M);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_kernel_view, km) == 32);
GORO_ABI_ASSERT(sizeof(struct goro_export_hdr) == 40);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_export_hdr, gen) == 16);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_export_hdr, heartbeat_ns) == 24);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_export_hdr, nm) == 36);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_proc_export, sc) == 40);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_proc_export, m) == 112);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_proc_export, p) == 112 + 16 * GORO_MAX_M);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_proc_export, kv) == 3200);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_proc_export, kv) % 64 == 0);
GORO_ABI_ASSERT(sizeof(struct goro_proc_export) == 4288);
GORO_ABI_ASSERT(sizeof(struct goro_hello) == 8);
GORO_ABI_ASSERT(sizeof(struct goro_welcome) == 32);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_welcome, gen) == 16);
GORO_ABI_ASSERT(__builtin_offsetof(struct goro_welcome, map_size) == 28);
GORO_ABI_ASSERT(sizeof(struct goro_slot_owner) == 16);
GORO_ABI_ASSERT(sizeof(struct goro_tgid_slot) == 16);

/* SCHED_EXT's policy number (include/uapi/linux/sched.h), for userspace. */
#define GORO_SCHED_EXT 7

/*
 * In-kernel checkdead events: the BPF side reserves one per event in the
 * BPF_MAP_TYPE_RINGBUF `events`; the loader prints it as one line.
 */
enum goro_event_kind {
	GORO_EV_STALL = 1, /* runnable Gs, no M runnable/running/in a syscall, for > threshold */
};

struct goro_event {
	__u32 kind;	/* enum goro_event_kind */
	__u32 tgid;
	__u32 slot;
	__u32 __pad;
	__u64 stalled_ns; /* how long the condition has held */
	__u64 now_ns;
	struct goro_sched_counters sc;
	__u32 nm;
	__u32 __pad2;
	struct goro_m_export m[GORO_MAX_M];
	__u64 km[GORO_MAX_M];
	struct goro_p_export p[GORO_MAX_P];
};

#endif /* GORO_SCX_GORO_H */
