/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_goro.h - the whole contract between scx_goro's BPF side and userspace.
 *
 * Everything the loader (userspace/scx_goro.cpp) and, later, the goro
 * runtime exchange with the BPF scheduler (bpf/scx_goro.bpf.c) is declared
 * here and nowhere else. It is included from both worlds, so it uses only
 * the kernel's fixed-width __u64/__s32 types: BPF code gets them from
 * vmlinux.h, userspace from <linux/types.h>.
 *
 * What is here today:
 *   - GORO_SHARED_DSQ, the id of the one shared dispatch queue;
 *   - enum goro_stat, the indices of the per-CPU counters in the `stats` map;
 *   - struct goro_exit_info and the exit kinds, so userspace can report
 *     why the kernel unloaded us (see "Exit info" below).
 *
 * What comes later (issue 2, the runtime-aware policy): the runtime's
 * exported P/M state -- which threads are Ms, which M holds which P, which
 * Ms are spinning and which hold sched.lock -- will be declared here as a
 * struct the runtime writes into a shared, mmapable map. It must stay
 * advisory: the BPF side may never let forward progress depend on the
 * runtime process (it can be frozen, faulting or dead).
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
 * Per-CPU event counters, one __u64 each, in the BPF_MAP_TYPE_PERCPU_ARRAY
 * `stats` (key = enum goro_stat). Userspace sums them over CPUs.
 */
enum goro_stat {
	GORO_STAT_DIRECT_IDLE,	 /* select_cpu found an idle CPU: inserted into its local DSQ */
	GORO_STAT_ENQUEUE,	 /* enqueue: inserted into the shared DSQ by vtime */
	GORO_STAT_CREDIT_CLAMPED, /* enqueue: a sleeper's banked credit was cut to one slice */
	GORO_STAT_DEBT_CLAMPED,	 /* enqueue: a low-weight task's debt was cut (starvation bound) */
	GORO_STAT_DISPATCH,	 /* dispatch: moved a task from the shared DSQ to a local DSQ */
	GORO_STAT_KEEP_RUNNING,	 /* dispatch: shared DSQ empty, the previous task got a new slice */
	GORO_STAT_DISPATCH_IDLE, /* dispatch: shared DSQ empty, nothing to keep running */
	GORO_NR_STATS,
};

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

struct goro_exit_info {
	__s32 kind;	  /* enum goro_exit_kind; written last, see above */
	__u32 __pad;
	__s64 exit_code;  /* scx_bpf_exit()'s code, or 0 */
	char reason[GORO_EXIT_REASON_LEN];
	char msg[GORO_EXIT_MSG_LEN];
	char dump[GORO_EXIT_DUMP_LEN];
};

#endif /* GORO_SCX_GORO_H */
