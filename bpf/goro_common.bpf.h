/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * goro_common.bpf.h - the small piece of sched_ext scaffolding scx_goro needs.
 *
 * The kernel's tools/sched_ext ship a large common header; we declare only
 * what scx_goro.bpf.c uses, so every kfunc we depend on is listed here, in
 * one place, with the signature of the 7.3 kernel we target. When the kernel
 * API moves (it does, nearly every release), this is the file to update.
 *
 * vmlinux.h (dumped from the target kernel's BTF by vmtest/setup) provides
 * the types and the SCX_* enum constants. bpftool also emits kfunc
 * prototypes into it; we switch those off with BPF_NO_KFUNC_PROTOTYPES so
 * that the declarations below are the only ones, and a signature change in
 * a new kernel shows up as a verifier error that points here.
 */
#ifndef GORO_COMMON_BPF_H
#define GORO_COMMON_BPF_H

#define BPF_NO_KFUNC_PROTOTYPES
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/*
 * struct_ops programs. Each op of struct sched_ext_ops is one BPF program in
 * a "struct_ops/<name>" section; libbpf matches it to the op by the
 * function pointer it is stored in (see goro_ops at the bottom of
 * scx_goro.bpf.c). Ops the kernel may call from a sleepable context
 * (init, init_task, ...) may use the ".s" section to be sleepable.
 */
#define GORO_STRUCT_OPS(name, args...) \
	SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define GORO_STRUCT_OPS_SLEEPABLE(name, args...) \
	SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

/* sched_ext kfuncs (kernel/sched/ext/), exactly as the 7.3 kernel's BTF has them. */
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice,
			u64 enq_flags) __ksym;
/*
 * Since 6.19 the vtime insert takes its scalars in a struct: a BPF call has
 * at most five argument registers, and the kernel needed a sixth (the
 * calling program) for sub-schedulers.
 */
bool __scx_bpf_dsq_insert_vtime(struct task_struct *p,
				struct scx_bpf_dsq_insert_vtime_args *args) __ksym;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym;
/*
 * Writes to p->scx.slice and p->scx.dsq_vtime go through these (since
 * 6.19): with sub-schedulers the kernel must check that the caller owns
 * @p. A root scheduler may still store to the fields directly; we don't.
 */
bool scx_bpf_task_set_slice(struct task_struct *p, u64 slice) __ksym;
bool scx_bpf_task_set_dsq_vtime(struct task_struct *p, u64 vtime) __ksym;
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;
/* Lockless look at a DSQ's first task (NULL: empty); the task may leave it any moment. */
struct task_struct *scx_bpf_dsq_peek(u64 dsq_id) __ksym;
s32 scx_bpf_dsq_nr_queued(u64 dsq_id) __ksym;
void scx_bpf_kick_cpu(s32 cpu, u64 flags) __ksym;
s32 scx_bpf_pick_idle_cpu(const struct cpumask *cpus_allowed, u64 flags) __ksym;
bool scx_bpf_test_and_clear_cpu_idle(s32 cpu) __ksym;
s32 scx_bpf_task_cpu(const struct task_struct *p) __ksym;
u32 scx_bpf_nr_cpu_ids(void) __ksym;

/* Generic kfuncs. */
bool bpf_cpumask_test_cpu(u32 cpu, const struct cpumask *cpumask) __ksym;
struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;

/*
 * Open-coded numeric iterator: goro_for(i, start, end) runs i over
 * [start, end). The verifier checks the body once (not once per
 * iteration, as with a plain bounded loop), which is what lets the
 * checkdead timer walk 64 slots x 128 Ms. It does NOT tell the verifier
 * that i < end: index arrays only after an explicit bounds check.
 */
int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

static __always_inline bool goro_iter_next(struct bpf_iter_num *it, int *i)
{
	int *n = bpf_iter_num_next(it);

	if (!n)
		return false;
	*i = *n;
	return true;
}
#define goro_for(i, start, end)                                                   \
	for (struct bpf_iter_num ___it __attribute__((cleanup(bpf_iter_num_destroy))), \
	     *___unused __attribute__((unused)) =                                 \
		     (bpf_iter_num_new(&___it, (start), (end)), (void *)0);       \
	     goro_iter_next(&___it, &(i));)

/*
 * goro_error(fmt, args...) - abort the scheduler with a formatted message.
 *
 * The kernel disables us, reports SCX_EXIT_ERROR_BPF with the message to
 * ops.exit() (and so to the loader), and moves every task back to the fair
 * class. Use it for states that "cannot happen": continuing would schedule
 * on a broken invariant. The message gets the file and line prepended.
 * Arguments are packed into a u64 array the way bpf_seq_printf's are,
 * using libbpf's ___bpf_fill helpers (zero arguments give a zero-length
 * array, which the kernel accepts with data__sz == 0).
 */
#define goro_error(fmt, args...)                                              \
	({                                                                    \
		static char ___fmt[] = __FILE_NAME__ ":" ___goro_str(__LINE__) ": " fmt; \
		unsigned long long ___param[___bpf_narg(args)];               \
		___bpf_fill(___param, args);                                  \
		scx_bpf_error_bstr(___fmt, ___param, sizeof(___param));       \
	})
#define ___goro_str(x) ___goro_str2(x)
#define ___goro_str2(x) #x

/* Wrap-safe comparisons of u64 clocks (nanoseconds, vtimes). */
static inline bool time_before(u64 a, u64 b)
{
	return (s64)(a - b) < 0;
}

#endif /* GORO_COMMON_BPF_H */
