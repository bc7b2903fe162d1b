// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// The goroutine scheduler.
//
// This file follows Go 1.21's runtime/proc.go function by function; a reader
// of one should recognise the other. The design (Vyukov's "Scalable Go
// Scheduler", 2012) in brief:
//
// Gs run on Ms through Ps. Each P has a local run queue (a 256-slot ring
// plus runnext); a global run queue catches overflow and Gs readied without
// a P. An M with a P runs schedule(): findRunnable() looks, in order, at the
// global queue every 61st tick (fairness), the local queue, the global
// queue, the network poller, and finally steals half of another P's queue.
//
// Worker thread parking/unparking.
// We need to balance between keeping enough running worker threads to use
// the available hardware parallelism and parking excess ones to save CPU.
// Two rejected shapes: centralising all state (a scalability bottleneck),
// and handing a G directly to an idle P's thread when it is readied (thread
// thrashing: the readying thread often blocks right after). The current
// approach: we unpark an additional thread when there is an idle P and no
// "spinning" M — an M that holds a P and is looking for work. A spinning M
// that finds work stops spinning and unparks a new spinning M (wakep), so
// bursts of work ramp up thread count, but at most one M at a time spins
// needlessly... and no more than half of the busy Ps' worth spin at once.
//
// The "Delicate dance" — referenced from findRunnable, resetspinning and
// injectglist. Submitting work publishes it (run queue write), then checks
// whether any M is spinning (StoreLoad); an M that stops spinning first
// decrements nmspinning, then (StoreLoad) re-checks every queue. One of the
// two sides always sees the other, so readied work is never stranded with
// every M asleep.
//
// Locks: every runtime lock, what it guards and the order they nest in is
// the table in lockrank.h (checked in checked builds). sched.lock is held
// for idle lists, the global queue and the counters checkdead reads; it is
// never held while a G runs user code.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdlib>
#include <mutex>
#include <string>

#include "netpoll.h"
#include "runtime.h"
#include "scx_export.h"
#include "testhooks.h"

#if defined(GORO_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(GORO_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#endif

namespace goro::detail {

Sched sched;
std::atomic<std::int32_t> gomaxprocs{0};
constexpr std::int32_t kMaxGomaxprocs = 1024;
static P* allp_storage[kMaxGomaxprocs];
P** allp = allp_storage;
DebugVars debug;

namespace {

constexpr std::int64_t kForcePreemptNS = 10 * 1000 * 1000;  // 10 ms
constexpr std::int32_t kGoidCacheBatch = 16;

// allgs: every G ever created that is not abandoned. Guarded by allglock.
Lock allglock{LockRank::allg};
G* allgs = nullptr;
std::atomic<std::int32_t> ngoroutines{0};  // live user Gs

// allm: every M. Guarded by allmlock (taken under sched.lock only by
// schedtrace; lockrank.h).
Lock allmlock{LockRank::allm};
M* allm = nullptr;

// The global free-G list.
Lock gfreelock{LockRank::gfree};
G* gfree_global = nullptr;

// Ps with nothing in them, as a bit mask for stealWork's fast skip.
std::atomic<std::uint64_t> idlepMask[kMaxGomaxprocs / 64];

std::int32_t newprocs = 0;  // maxprocs() request, guarded by sched.lock
std::int64_t starttime = 0;
bool inited = false;
std::mutex run_mu;  // one goro::run at a time

// The main goroutine's lifecycle, for run_main and checkdead.
std::atomic<bool> main_running{false};
Note main_done;

// worldsema serialises stop-the-world: one maxprocs() or main-exit at a
// time. Gs park on it; threads outside the runtime poll it.
std::uint32_t worldsema = 1;

thread_local M* t_m = nullptr;
thread_local G* t_g = nullptr;

void procresize_locked(std::int32_t nprocs);
P* runnablePs = nullptr;  // procresize's output, guarded by sched.lock
}  // namespace

[[gnu::noinline]] M* getm() {
  __asm__ volatile("" ::: "memory");
  return t_m;
}
[[gnu::noinline]] G* getg() {
  __asm__ volatile("" ::: "memory");
  return t_g;
}

M* m_of_thread() { return t_m; }
G* g_of_thread() { return t_g; }

// Fields that sysmon, preemptall and findRunnable's fast checks read
// without the owner's lock are written with atomic stores, so the racy
// reads (deliberate, as in Go) are well defined.
// curg is published with release so that a G's initialisation happens
// before sysmon's preemption store into it (read with acquire).
static inline void setcurg(M* mp, G* gp) { __atomic_store_n(&mp->curg, gp, __ATOMIC_RELEASE); }
static inline void bumptick(std::uint32_t* t) { __atomic_store_n(t, *t + 1, __ATOMIC_RELAXED); }
static inline void setrunqsize(std::int32_t n) GORO_NO_TSA { __atomic_store_n(&sched.runqsize, n, __ATOMIC_RELAXED); }

// ---------------------------------------------------------------------------
// Printing and fatal errors
// ---------------------------------------------------------------------------
static Lock printlock{LockRank::print};
void lock_print() GORO_NO_TSA { printlock.lock(); }
void unlock_print() GORO_NO_TSA { printlock.unlock(); }

static void dumpgoroutines() {
  // Best effort: no locks (we may be dying with sched.lock released by us
  // but held by nobody else, or in a state where taking allglock would
  // deadlock). Readers of a crash want to see who was blocked on what.
  for (G* gp = allgs; gp != nullptr; gp = gp->alllink) {
    std::uint32_t s = gp->atomicstatus.load(std::memory_order_relaxed);
    if (gp->is_sys || s == _Gdead || s == _Gidle) continue;
    const char* what = s == _Gwaiting && gp->waitreason ? gp->waitreason : gstatus_name(s);
    std::fprintf(stderr, "\ngoroutine %lld [%s]:\n", static_cast<long long>(gp->goid), what);
  }
}

[[noreturn]] static void die(const char* prefix, const char* msg, bool dump) {
  std::fprintf(stderr, "%s%s\n", prefix, msg);
  if (dump) dumpgoroutines();
  std::fflush(stderr);
  _exit(2);
}

void throw_(const char* msg) { die("fatal error: ", msg, true); }
void fatal_(const char* msg) { die("fatal error: ", msg, true); }

const char* gstatus_name(std::uint32_t s) {
  switch (s) {
    case _Gidle: return "idle";
    case _Grunnable: return "runnable";
    case _Grunning: return "running";
    case _Gsyscall: return "syscall";
    case _Gwaiting: return "waiting";
    case _Gdead: return "dead";
  }
  return "???";
}

}  // namespace goro::detail

namespace goro {
void panic(std::string_view msg) {
  using namespace detail;
  std::fprintf(stderr, "panic: %.*s\n", static_cast<int>(msg.size()), msg.data());
  G* gp = getg();
  if (gp) std::fprintf(stderr, "\ngoroutine %lld [running]:\n", static_cast<long long>(gp->goid));
  std::fflush(stderr);
  _exit(2);
}
}  // namespace goro

namespace goro::detail {

// ---------------------------------------------------------------------------
// Random numbers: per-M wyrand, as Go's fastrand (the runtime's only
// generator; runtime.h).
// ---------------------------------------------------------------------------
std::uint32_t fastrand() {
  M* mp = getm();
  static std::atomic<std::uint64_t> seedgen{0x9e3779b97f4a7c15ull};
  std::uint64_t* s = mp ? &mp->fastrand : nullptr;
  std::uint64_t local;
  if (!s) {
    local = seedgen.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
    s = &local;
  }
  *s += 0xa0761d6478bd642full;
  __uint128_t m = static_cast<__uint128_t>(*s) * (*s ^ 0xe7037ed1a0b428dbull);
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(m >> 64) ^ static_cast<std::uint64_t>(m));
}

// randomOrder: enumerate [0, count) starting anywhere, with a stride coprime
// to count, so every P is visited exactly once in a random-looking order.
struct RandomOrder {
  std::uint32_t count = 0;
  std::uint32_t coprimes[kMaxGomaxprocs];
  std::uint32_t ncoprimes = 0;
  void reset(std::uint32_t n) {
    count = n;
    ncoprimes = 0;
    for (std::uint32_t i = 1; i <= n; i++) {
      std::uint32_t a = i, b = n;
      while (b != 0) {
        std::uint32_t t = a % b;
        a = b;
        b = t;
      }
      if (a == 1) coprimes[ncoprimes++] = i;
    }
  }
};
struct RandomEnum {
  std::uint32_t i, count, pos, inc;
  bool done() const { return i == count; }
  void next() {
    i++;
    pos = (pos + inc) % count;
  }
};
static RandomOrder stealOrder;
static RandomEnum stealorder_start(const RandomOrder& ord, std::uint32_t i) {
  return RandomEnum{0, ord.count, i % ord.count, ord.coprimes[i / ord.count % ord.ncoprimes]};
}

// ---------------------------------------------------------------------------
// G status transitions
// ---------------------------------------------------------------------------
// Scheduling latency histogram (goro::sched_latencies): relaxed counters,
// one per bucket, shared by all Ps; only sampled stints touch it.
static std::atomic<std::uint64_t> sched_lat_hist[kSchedLatencyBuckets];

static int sched_lat_bucket(std::int64_t ns) {
  if (ns <= 0) return 0;
  const auto u = static_cast<std::uint64_t>(ns);
  const int log2 = 63 - __builtin_clzll(u);
  if (log2 < 2) return static_cast<int>(u);  // 1..3 ns: exact
  // [2^log2, 2^(log2+1)) in four sub-buckets: 4..7 for 4..7 ns, and so on.
  const int b = 4 * (log2 - 1) + static_cast<int>((u >> (log2 - 2)) & 3);
  return b < kSchedLatencyBuckets ? b : kSchedLatencyBuckets - 1;
}

// Go's casgstatus timing (gTrackingPeriod): a G leaving _Grunning starts
// a new stint, and every kSchedLatencyPeriod-th stint is timed from the
// moment it is _Grunnable until it is _Grunning again.
static void sched_lat_track(G* gp, std::uint32_t oldval, std::uint32_t newval) {
  if (oldval == _Grunning) {
    if (gp->tracking_seq % kSchedLatencyPeriod == 0) gp->tracking = true;
    gp->tracking_seq++;
  }
  if (!gp->tracking) return;
  if (newval == _Grunnable) {
    if (oldval != _Grunnable) gp->tracking_stamp = nanotime();
  } else if (newval == _Grunning) {
    gp->tracking = false;
    if (gp->tracking_stamp) {
      sched_lat_hist[sched_lat_bucket(nanotime() - gp->tracking_stamp)].fetch_add(1, std::memory_order_relaxed);
      gp->tracking_stamp = 0;
    }
  } else if (oldval == _Grunnable) {
    gp->tracking_stamp = 0;
  }
}

static void casgstatus(G* gp, std::uint32_t oldval, std::uint32_t newval) {
  std::uint32_t v = oldval;
  if (!gp->atomicstatus.compare_exchange_strong(v, newval, std::memory_order_acq_rel)) {
    lock_print();
    std::fprintf(stderr, "runtime: casgstatus: oldval=%s newval=%s gp->status=%s goid=%lld\n",
                 gstatus_name(oldval), gstatus_name(newval), gstatus_name(v),
                 static_cast<long long>(gp->goid));
    unlock_print();
    throw_("casgstatus: bad incoming values");
  }
  sched_lat_track(gp, oldval, newval);
}
static std::uint32_t readgstatus(G* gp) { return gp->atomicstatus.load(std::memory_order_acquire); }

// ---------------------------------------------------------------------------
// Context switching, with the sanitizers told about every stack change.
// ---------------------------------------------------------------------------

// The G side of a switch to g0 ("mcall"): fn(gp) runs on g0 afterwards.
static void mcall(void (*fn)(G*), bool exiting = false);

static inline void check_stack(G* gp) {
  if (!gp->region.guarded && *reinterpret_cast<std::uint64_t*>(gp->stack.lo) != kStackCanary) {
    throw_("goroutine stack overflow (canary at the stack's low end was overwritten)");
  }
}

#if defined(GORO_ASAN)
// The G side of a finished ASan switch: preemptible again (see gogo).
static inline void asan_switch_done(G* gp) {
  gp->nopreempt.store(gp->nopreempt.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}
#endif

static void mcall(void (*fn)(G*), bool exiting) {
  M* mp = getm();
  G* gp = mp->curg;
  check_stack(gp);
  mp->mcall_fn = fn;
  t_g = nullptr;
#if defined(GORO_TSAN)
  __tsan_switch_to_fiber(mp->g0_tsan_fiber, 0);
#endif
#if defined(GORO_ASAN)
  __sanitizer_start_switch_fiber(exiting ? nullptr : &gp->asan_fake_stack,
                                 reinterpret_cast<void*>(mp->g0stack.lo), mp->g0stack.hi - mp->g0stack.lo);
#else
  (void)exiting;
#endif
  goro_ctx_switch(&gp->sp, mp->g0sp);
  // Resumed, possibly on another M.
#if defined(GORO_ASAN)
  __sanitizer_finish_switch_fiber(gp->asan_fake_stack, nullptr, nullptr);
  asan_switch_done(gp);
#endif
}

// The g0 side: run gp until it switches back.
static void gogo(M* mp, G* gp) {
#if defined(GORO_TSAN)
  __tsan_switch_to_fiber(gp->tsan_fiber, 0);
#endif
#if defined(GORO_ASAN)
  // ASan's switch is a pair: start here, finish on gp's side (gostart, or
  // mcall's return). Until the finish, gp must not be preempted by signal:
  // the preemption's own mcall would start a second switch inside this one
  // ("starting fiber switch while in fiber switch"). The sigurg handler
  // sees gp as running from the moment t_g is set.
  gp->nopreempt.store(gp->nopreempt.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  __sanitizer_start_switch_fiber(&mp->g0_asan_fake_stack, reinterpret_cast<void*>(gp->stack.lo),
                                 gp->stack.hi - gp->stack.lo);
#endif
  t_g = gp;
  goro_ctx_switch(&mp->g0sp, gp->sp);
#if defined(GORO_ASAN)
  __sanitizer_finish_switch_fiber(mp->g0_asan_fake_stack, nullptr, nullptr);
#endif
}

// ---------------------------------------------------------------------------
// Run queues
// ---------------------------------------------------------------------------

// Global run queue. sched.lock must be held.
static void globrunqput(G* gp) GORO_REQUIRES(sched.lock) {
  gp->schedlink = nullptr;
  if (sched.runqtail) sched.runqtail->schedlink = gp;
  else sched.runqhead = gp;
  sched.runqtail = gp;
  setrunqsize(sched.runqsize + 1);
}

static void globrunqputhead(G* gp) GORO_REQUIRES(sched.lock) {
  gp->schedlink = sched.runqhead;
  sched.runqhead = gp;
  if (!sched.runqtail) sched.runqtail = gp;
  setrunqsize(sched.runqsize + 1);
}

// Put a batch of n linked Gs [head..tail] on the global queue.
static void globrunqputbatch(G* head, G* tail, std::int32_t n) GORO_REQUIRES(sched.lock) {
  if (!head) return;
  tail->schedlink = nullptr;
  if (sched.runqtail) sched.runqtail->schedlink = head;
  else sched.runqhead = head;
  sched.runqtail = tail;
  setrunqsize(sched.runqsize + n);
}

static G* globrunqpop() GORO_REQUIRES(sched.lock) {
  G* gp = sched.runqhead;
  if (gp) {
    sched.runqhead = gp->schedlink;
    if (!sched.runqhead) sched.runqtail = nullptr;
    gp->schedlink = nullptr;
  }
  return gp;
}

static bool runqput_ring(P* pp, G* gp);

// runqput tries to put gp on the local runnable queue. If next, gp goes to
// runnext and the G it displaces to the tail. Executed only by the owner P.
static void runqput(P* pp, G* gp, bool next);

// globrunqget takes a batch from the global queue: one to return, the rest
// onto pp's local queue. sched.lock must be held.
static G* globrunqget(P* pp, std::int32_t max) GORO_REQUIRES(sched.lock) {
  if (sched.runqsize == 0) return nullptr;
  std::int32_t n = sched.runqsize / gomaxprocs.load(std::memory_order_relaxed) + 1;
  if (n > sched.runqsize) n = sched.runqsize;
  if (max > 0 && n > max) n = max;
  if (n > static_cast<std::int32_t>(kRunqSize / 2)) n = kRunqSize / 2;
  setrunqsize(sched.runqsize - n);
  G* gp = globrunqpop();
  n--;
  for (; n > 0; n--) runqput(pp, globrunqpop(), false);
  return gp;
}

// runqputslow moves half of the full local ring, plus gp, to the global
// queue in one batch. Executed only by the owner P.
static bool runqputslow(P* pp, G* gp, std::uint32_t h, std::uint32_t t) {
  G* batch[kRunqSize / 2 + 1];
  std::uint32_t n = t - h;
  n = n / 2;
  if (n != kRunqSize / 2) throw_("runqputslow: queue is not full");
  for (std::uint32_t i = 0; i < n; i++) {
    batch[i] = pp->runq[(h + i) % kRunqSize].load(std::memory_order_relaxed);
  }
  std::uint32_t hh = h;
  if (!pp->runqhead.compare_exchange_strong(hh, h + n, std::memory_order_release)) return false;
  batch[n] = gp;
  for (std::uint32_t i = 0; i < n; i++) batch[i]->schedlink = batch[i + 1];
  sched.lock.lock();
  globrunqputbatch(batch[0], batch[n], static_cast<std::int32_t>(n + 1));
  sched.lock.unlock();
  return true;
}

static bool runqput_ring(P* pp, G* gp) {
  for (;;) {
    std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = pp->runqtail.load(std::memory_order_relaxed);
    if (t - h < kRunqSize) {
      pp->runq[t % kRunqSize].store(gp, std::memory_order_relaxed);
      pp->runqtail.store(t + 1, std::memory_order_release);
      return true;
    }
    if (runqputslow(pp, gp, h, t)) return true;
    // The queue is not full any more: a stealer took some; retry.
  }
}

static void runqput(P* pp, G* gp, bool next) {
  if (next) {
    G* old = pp->runnext.load(std::memory_order_relaxed);
    while (!pp->runnext.compare_exchange_weak(old, gp, std::memory_order_acq_rel)) {
    }
    if (old) runqput_ring(pp, old);  // kick the old runnext to the tail
  } else {
    runqput_ring(pp, gp);
  }
  scx_ppub(pp);
}

// runqputbatch puts n linked Gs on the local queue; what doesn't fit goes
// to the global queue. Executed only by the owner P.
static void runqputbatch(P* pp, G* head, std::int32_t n) {
  std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
  std::uint32_t t = pp->runqtail.load(std::memory_order_relaxed);
  std::int32_t added = 0;
  while (head && t - h < kRunqSize) {
    G* gp = head;
    head = head->schedlink;
    pp->runq[t % kRunqSize].store(gp, std::memory_order_relaxed);
    t++;
    added++;
  }
  pp->runqtail.store(t, std::memory_order_release);
  scx_ppub(pp);
  if (head) {
    G* tail = head;
    while (tail->schedlink) tail = tail->schedlink;
    sched.lock.lock();
    globrunqputbatch(head, tail, n - added);
    sched.lock.unlock();
  }
}

// runqget returns a G from the local queue; inherit is true when it came
// from runnext (it inherits the current time slice). Owner only.
static G* runqget(P* pp, bool* inherit) {
  G* next = pp->runnext.load(std::memory_order_relaxed);
  // If the CAS fails, only a stealer can have taken it: no point retrying
  // runnext, go to the ring.
  if (next && pp->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
    *inherit = true;
    scx_ppub(pp);
    return next;
  }
  *inherit = false;
  for (;;) {
    std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = pp->runqtail.load(std::memory_order_relaxed);
    if (t == h) return nullptr;
    G* gp = pp->runq[h % kRunqSize].load(std::memory_order_relaxed);
    if (pp->runqhead.compare_exchange_weak(h, h + 1, std::memory_order_release)) {
      scx_ppub(pp);
      return gp;
    }
  }
}

// runqempty never reports empty spuriously: a runqput that kicks runnext to
// the ring writes the tail before clearing... the loop re-reads the tail to
// get a consistent (head, tail, runnext) snapshot.
static bool runqempty(P* pp) {
  for (;;) {
    std::uint32_t head = pp->runqhead.load(std::memory_order_acquire);
    std::uint32_t tail = pp->runqtail.load(std::memory_order_acquire);
    G* runnext = pp->runnext.load(std::memory_order_acquire);
    if (tail == pp->runqtail.load(std::memory_order_acquire)) return head == tail && runnext == nullptr;
  }
}

// runqgrab copies half (rounded up) of pp's ring into batch starting at
// batchHead. May be called by any P. With stealRunNextG it may take runnext
// when the ring is empty, after giving pp's owner a moment to run it.
static std::uint32_t runqgrab(P* pp, std::atomic<G*>* batch, std::uint32_t batchHead, bool stealRunNextG) {
  for (;;) {
    std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = pp->runqtail.load(std::memory_order_acquire);
    std::uint32_t n = t - h;
    n = n - n / 2;
    if (n == 0) {
      if (stealRunNextG) {
        G* next = pp->runnext.load(std::memory_order_acquire);
        if (next) {
          if (pp->status.load(std::memory_order_relaxed) == _Prunning) {
            // pp's owner is probably about to run next (a G that readied
            // it and is blocking now): a channel hand-off takes ~50 ns.
            // Go sleeps 3 µs here; a nanosleep costs ≥50 µs on Linux (timer
            // slack), so we spin for the 3 µs instead.
            std::int64_t until = nanotime() + 3000;
            while (nanotime() < until) __builtin_ia32_pause();
          }
          if (!pp->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) continue;
          batch[batchHead % kRunqSize].store(next, std::memory_order_relaxed);
          return 1;
        }
      }
      return 0;
    }
    if (n > kRunqSize / 2) continue;  // read inconsistent h and t
    for (std::uint32_t i = 0; i < n; i++) {
      G* g = pp->runq[(h + i) % kRunqSize].load(std::memory_order_relaxed);
      batch[(batchHead + i) % kRunqSize].store(g, std::memory_order_relaxed);
    }
    if (pp->runqhead.compare_exchange_strong(h, h + n, std::memory_order_release)) return n;
  }
}

// runqsteal steals half of p2's queue into pp's and returns one G.
static G* runqsteal(P* pp, P* p2, bool stealRunNextG) {
  std::uint32_t t = pp->runqtail.load(std::memory_order_relaxed);
  std::uint32_t n = runqgrab(p2, pp->runq, t, stealRunNextG);
  if (n == 0) return nullptr;
  scx_ppub(p2);  // the victim's length: the stealer writes it
  n--;
  G* gp = pp->runq[(t + n) % kRunqSize].load(std::memory_order_relaxed);
  if (n == 0) return gp;
  std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
  if (t - h + n >= kRunqSize) throw_("runqsteal: runq overflow");
  pp->runqtail.store(t + n, std::memory_order_release);
  scx_ppub(pp);
  return gp;
}

// ---------------------------------------------------------------------------
// Idle P and M lists
// ---------------------------------------------------------------------------
static void idlepmask_set(std::int32_t id) {
  idlepMask[id / 64].fetch_or(1ull << (id % 64), std::memory_order_relaxed);
}
static void idlepmask_clear(std::int32_t id) {
  idlepMask[id / 64].fetch_and(~(1ull << (id % 64)), std::memory_order_relaxed);
}
static bool idlepmask_read(std::int32_t id) {
  return (idlepMask[id / 64].load(std::memory_order_relaxed) >> (id % 64)) & 1;
}

// pidleput puts pp on the idle P list. pp must have an empty run queue.
// sched.lock must be held.
static void pidleput(P* pp) GORO_REQUIRES(sched.lock) {
  sched.lock.assert_held();
  if (!runqempty(pp)) throw_("pidleput: P has non-empty run queue");
  idlepmask_set(pp->id);
  pp->link = sched.pidle;
  __atomic_store_n(&sched.pidle, pp, __ATOMIC_RELAXED);
  sched.npidle.fetch_add(1, std::memory_order_seq_cst);
}

// pidleget takes a P off the idle list. sched.lock must be held.
static P* pidleget() GORO_REQUIRES(sched.lock) {
  sched.lock.assert_held();
  P* pp = sched.pidle;
  if (pp) {
    idlepmask_clear(pp->id);
    __atomic_store_n(&sched.pidle, pp->link, __ATOMIC_RELAXED);
    sched.npidle.fetch_sub(1, std::memory_order_seq_cst);
  }
  return pp;
}

// pidlegetSpinning is pidleget for callers about to start a spinning M:
// when there is no idle P, it records that a spinning M is needed, so the
// next M that would drop its P becomes spinning instead.
static P* pidlegetSpinning() GORO_REQUIRES(sched.lock) {
  P* pp = pidleget();
  if (!pp) {
    sched.needspinning.store(1, std::memory_order_seq_cst);
    return nullptr;
  }
  return pp;
}

static std::int64_t mcount() GORO_REQUIRES(sched.lock) { return sched.mnext - sched.nmfreed; }

static void checkdead() GORO_REQUIRES(sched.lock);

// mput puts mp on the idle M list. sched.lock must be held. It may call
// checkdead: an idle M is one fewer that could run a runnable G.
static void mput(M* mp) GORO_REQUIRES(sched.lock) {
  sched.lock.assert_held();
  mp->schedlink = sched.midle;
  sched.midle = mp;
  sched.nmidle++;
  checkdead();
}

static M* mget() GORO_REQUIRES(sched.lock) {
  sched.lock.assert_held();
  M* mp = sched.midle;
  if (mp) {
    sched.midle = mp->schedlink;
    sched.nmidle--;
  }
  return mp;
}

static void checkmcount() GORO_REQUIRES(sched.lock) {
  if (mcount() > sched.maxmcount) {
    lock_print();
    std::fprintf(stderr, "runtime: program exceeds %d-thread limit\n", sched.maxmcount);
    unlock_print();
    throw_("thread exhaustion");
  }
}

// mReserveID returns the id of a new M that is about to be created. Reserving
// it counts the M in mcount() at once, which is what keeps checkdead from
// seeing zero running Ms while the new thread starts (#40368).
static std::int64_t mReserveID() GORO_REQUIRES(sched.lock) {
  sched.lock.assert_held();
  std::int64_t id = sched.mnext;
  sched.mnext++;
  checkmcount();
  return id;
}

// scx_ppub_all republishes every P's word (the world stopped, or a new
// block after a re-attach). sched.lock must be held.
static void scx_ppub_all() GORO_REQUIRES(sched.lock) {
  if (!scx_on()) return;
  for (std::int32_t i = 0; i < gomaxprocs.load(); i++) scx_ppub(allp[i]);
}

// scx_pubcounters publishes the scheduler's counters into the export
// (struct goro_sched_counters) inside the seqcount: before an M sleeps in
// stopm, every sysmon loop, and when checkdead looks. now == 0: read the
// clock here. sched.lock must be held: it makes us the only writer.
static void scx_pubcounters(std::int64_t now) GORO_REQUIRES(sched.lock) {
  if (!scx_on()) return;
  sched.lock.assert_held();
  if (now == 0) now = nanotime();
  goro_proc_export* x = scx_x();
  goro_sched_counters* c = &x->sc;
  auto u32 = [](std::int64_t v) { return static_cast<std::uint32_t>(v < 0 ? 0 : v); };
  scx_counters_begin(x);
  scx_store32(&c->gomaxprocs, u32(gomaxprocs.load(std::memory_order_relaxed)));
  scx_store32(&c->npidle, u32(sched.npidle.load(std::memory_order_relaxed)));
  scx_store32(&c->nmspinning, u32(sched.nmspinning.load(std::memory_order_relaxed)));
  scx_store32(&c->nmidle, u32(sched.nmidle));
  scx_store32(&c->nmidlelocked, u32(sched.nmidlelocked));
  scx_store32(&c->nmsys, u32(sched.nmsys));
  scx_store32(&c->mcount, u32(mcount()));
  scx_store32(&c->runqsize, u32(sched.runqsize));
  G* head = sched.runqhead;
  scx_store64(&c->runq_head_goid, head ? static_cast<std::uint64_t>(__atomic_load_n(&head->goid, __ATOMIC_RELAXED)) : 0);
  scx_store32(&c->ntimers, u32(timers_pending()));
  scx_store32(&c->netpoll_waiters, u32(netpoll_nwaiters()));
  scx_store64(&c->ngoroutines, u32(ngoroutines.load(std::memory_order_relaxed)));
  scx_store64(&c->published_ns, static_cast<std::uint64_t>(now));
  scx_counters_end(x);
  scx_heartbeat(now);
}

// ---------------------------------------------------------------------------
// P ownership
// ---------------------------------------------------------------------------
static void wirep(P* pp) {
  M* mp = getm();
  if (mp->p) throw_("wirep: already in go");
  if (pp->m.load(std::memory_order_relaxed) || pp->status.load(std::memory_order_relaxed) != _Pidle) {
    lock_print();
    std::fprintf(stderr, "wirep: p->m=%p p->status=%u\n", static_cast<void*>(pp->m.load()), pp->status.load());
    unlock_print();
    throw_("wirep: invalid p state");
  }
  mp->p = pp;
  pp->m.store(mp, std::memory_order_release);  // sysmon reads the M through it
  pp->status.store(_Prunning, std::memory_order_relaxed);
  scx_ppub(pp);
  scx_mrun(mp);
}

static void acquirep(P* pp) { wirep(pp); }

static P* releasep() {
  M* mp = getm();
  P* pp = mp->p;
  if (!pp || pp->m.load(std::memory_order_relaxed) != mp || pp->status.load(std::memory_order_relaxed) != _Prunning) {
    throw_("releasep: invalid p state");
  }
  mp->p = nullptr;
  pp->m.store(nullptr, std::memory_order_relaxed);
  pp->status.store(_Pidle, std::memory_order_relaxed);
  scx_ppub(pp);
  scx_mpub(mp);
  return pp;
}

// ---------------------------------------------------------------------------
// Ms: creation, parking, starting
// ---------------------------------------------------------------------------
static void schedule_loop();
static void sysmon();
static void mspinning() { getm()->spinning = true; }

static void* mstart(void* arg) {
  M* mp = static_cast<M*>(arg);
  t_m = mp;
  mp->tid = current_thread_id();
  scx_mthread_start(mp);  // the record's tid first: the kernel matches the thread by it
  // Ms start with every signal blocked (newm); they take SIGURG, the
  // preemption signal, and leave the rest to the program's own threads.
  sigset_t urg;
  sigemptyset(&urg);
  sigaddset(&urg, SIGURG);
  pthread_sigmask(SIG_UNBLOCK, &urg, nullptr);
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    mp->g0stack.lo = reinterpret_cast<std::uintptr_t>(addr);
    mp->g0stack.hi = mp->g0stack.lo + size;
    pthread_attr_destroy(&attr);
  }
#if defined(GORO_TSAN)
  mp->g0_tsan_fiber = __tsan_get_current_fiber();
#endif
  if (mp->mstartfn) mp->mstartfn();  // sysmon never returns
  if (mp->nextp) {
    acquirep(mp->nextp);
    mp->nextp = nullptr;
  }
  schedule_loop();
  scx_mthread_exit(mp);
  return nullptr;
}

// newm creates a new M (an OS thread) that will start with fn and then
// acquire pp. id is a reserved M id, or -1 to reserve one here.
static void newm(void (*fn)(), P* pp, std::int64_t id) {
  M* mp = new M();
  if (id < 0) {
    sched.lock.lock();
    id = mReserveID();
    sched.lock.unlock();
  }
  mp->id = id;
  mp->mstartfn = fn;
  mp->nextp = pp;
  // Its export record, described before the thread exists: STARTING with
  // the P it is handed ("P ownership in flight", step 2), or sysmon. Kept
  // while standalone too, for a late attach (scx_export.h).
  if (scx_records && (mp->scxidx = scx_mrecord_alloc(mp)) >= 0) {
    if (pp) {
      mp->scxstate = GORO_M_STARTING;
      scx_mstarting_slow(mp, pp);
    } else {
      mp->scxstate = fn == sysmon ? GORO_M_SYSMON : GORO_M_RUNNING;
      scx_mpub_slow(mp);
    }
  }
  mp->fastrand = (static_cast<std::uint64_t>(nanotime()) * 0x9e3779b97f4a7c15ull) ^ static_cast<std::uint64_t>(id);
  allmlock.lock();
  mp->alllink = allm;
  allm = mp;
  allmlock.unlock();

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 1 << 20);
  // New Ms must not take signals meant for the process (tests send some).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t th;
  int err = pthread_create(&th, &attr, mstart, mp);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    lock_print();
    std::fprintf(stderr, "runtime: failed to create new OS thread (errno=%d)\n", err);
    unlock_print();
    throw_("newosproc");
  }
}


// stopm parks the current M until startm hands it a P.
static void stopm() {
  M* mp = getm();
  if (mp->p) throw_("stopm holding p");
  if (mp->spinning) throw_("stopm spinning");
  GORO_TESTHOOK("stopm.beforelock");
  sched.lock.lock();
  // IDLE before mput, under the lock: once on the idle list, the M's word
  // belongs to the waker that takes it off (see scx_export.h).
  scx_mstate(mp, GORO_M_IDLE);
  mput(mp);
  scx_pubcounters(0);
  sched.lock.unlock();
  mp->blocked = true;
  mp->park.sleep();
  mp->park.clear();
  mp->blocked = false;
  acquirep(mp->nextp);
  mp->nextp = nullptr;
}

static void handoffp(P* pp);
static void incidlelocked(std::int32_t v);

// stoplockedm stops execution of the current M that is locked to a G until
// the G is runnable again. Returns with a P acquired.
static void stoplockedm() {
  M* mp = getm();
  if (!mp->lockedg || mp->lockedg->lockedm != mp) throw_("stoplockedm: inconsistent locking");
  if (mp->p) handoffp(releasep());  // schedule another M to run this P
  incidlelocked(1);
  // LOCKED is this M's last store before it sleeps: startlockedm may
  // replace it with STARTING (compare-and-swap from exactly this word).
  scx_mstate(mp, GORO_M_LOCKED);
  mp->blocked = true;
  mp->park.sleep();
  mp->park.clear();
  mp->blocked = false;
  if (readgstatus(mp->lockedg) != _Grunnable) throw_("stoplockedm: lockedg is not Grunnable");
  acquirep(mp->nextp);
  mp->nextp = nullptr;
}

// startlockedm schedules the locked M of gp to run gp with our P, and
// parks the current M.
static void startlockedm(G* gp) {
  M* mp = gp->lockedm;
  if (mp == getm()) throw_("startlockedm: locked to me");
  if (mp->nextp) throw_("startlockedm: m has p");
  incidlelocked(-1);  // directly hand off the current P to the locked M
  P* pp = releasep();
  M* self = getm();
  scx_carry(self, pp);
  scx_mstarting_locked(mp, pp);
  mp->nextp = pp;
  mp->park.wakeup();
  scx_uncarry(self);
  stopm();
}

// startm schedules some M to run pp (creating an M if necessary). If pp is
// null, it tries to get an idle P; if there is none, it does nothing.
// If spinning is set, the caller has incremented nmspinning and must pass a
// P; the new M starts spinning.
//
// lockheld says whether the caller already holds sched.lock. Callers holding
// it must pass true. The lock might be temporarily dropped (around creating
// a thread), but will be reacquired before returning.
//
// Why the lock matters (#59600): a caller without a P (sysmon, an M back
// from a blocking netpoll) that takes an idle P and then drops sched.lock
// before an M is counted as running opens a window in which checkdead sees
// mcount - nmidle - nmidlelocked - nmsys == 0 with runnable Gs on the global
// queue, and throws "checkdead: runnable g" on a healthy program. Keeping
// the lock from pidleget through mget (or mReserveID, #40368) closes it.
// lockheld makes the locking conditional, which the analysis cannot follow.
//
// The export (scx_export.h) names pp at every instant of its hand-off: the
// caller's word says CARRYING pp until the target's says STARTING pp.
static void startm(P* pp, bool spinning, bool lockheld) GORO_NO_TSA {
  M* self = getm();
  if (!lockheld) sched.lock.lock();
  if (!pp) {
    if (spinning) throw_("startm: P required for spinning=true");
    pp = pidleget();
    if (!pp) {
      if (!lockheld) sched.lock.unlock();
      return;
    }
  }
  scx_carry(self, pp);
  M* nmp = mget();
  if (!nmp) {
    // No M is available: we must drop sched.lock to create one, so reserve
    // its id first; that counts it as running for checkdead.
    std::int64_t id = mReserveID();
    sched.lock.unlock();
    newm(spinning ? mspinning : nullptr, pp, id);
    scx_uncarry(self);
    if (lockheld) sched.lock.lock();
    return;
  }
  scx_mstarting(nmp, pp);
  scx_uncarry(self);
  if (!lockheld) sched.lock.unlock();
  if (nmp->spinning) throw_("startm: m is spinning");
  if (nmp->nextp) throw_("startm: m has p");
  if (spinning && !runqempty(pp)) throw_("startm: p has runnable gs");
  // The caller incremented nmspinning, so set m.spinning in the new M.
  nmp->spinning = spinning;
  nmp->nextp = pp;
#if defined(GORO_TEST_HOOKS)
  // Test-only fault (GORO_DEBUG=dropwakeup=1): a lost wake-up. nmp has its
  // P and is described as STARTING, but sleeps on; it is not counted idle,
  // so checkdead cannot notice. Only the kernel's view can (scx_export.h).
  if (scx_dropwakeup.load(std::memory_order_relaxed) && scx_dropwakeup.exchange(false)) {
    lock_print();
    std::fprintf(stderr, "goro: dropwakeup: M%lld handed P%d, wake-up dropped\n", static_cast<long long>(nmp->id),
                 pp->id);
    unlock_print();
  } else
#endif
    nmp->park.wakeup();
  // A P starts running: if sysmon sleeps because every P was idle, wake it
  // so that long-running Gs get their preemption marks.
  if (sched.sysmonwait.load(std::memory_order_relaxed)) {
    if (!lockheld) sched.lock.lock();
    if (sched.sysmonwait.load(std::memory_order_relaxed)) {
      sched.sysmonwait.store(false, std::memory_order_relaxed);
      sched.sysmonnote.wakeup();
    }
    if (!lockheld) sched.lock.unlock();
  }
}

// handoffp hands off pp from a syscall or locked M. Always runs without a P.
// It must start an M in every situation where findRunnable would return a G.
// Reads sched.runqsize racily first, as Go does; re-checked under the lock.
//
// The caller carries pp (scx_export.h) until startm hands it on or it goes
// back to the idle list.
static void handoffp(P* pp) GORO_NO_TSA {
  M* self = getm();
  scx_ppub(pp);
  scx_carry(self, pp);
  if (!runqempty(pp) || __atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) != 0) {  // racy; re-checked below
    startm(pp, false, false);
    return;
  }
  // No local work: make sure some M spins, unless one already does or there
  // are idle Ps whose Ms can spin.
  std::int32_t zero = 0;
  if (sched.nmspinning.load() + sched.npidle.load() == 0 && sched.nmspinning.compare_exchange_strong(zero, 1)) {
    sched.needspinning.store(0);
    startm(pp, true, false);
    return;
  }
  sched.lock.lock();
  if (sched.gcwaiting.load()) {
    pp->status.store(_Pgcstop, std::memory_order_relaxed);
    scx_ppub(pp);
    scx_uncarry(self);
    sched.stopwait--;
    if (sched.stopwait == 0) sched.stopnote.wakeup();
    sched.lock.unlock();
    return;
  }
  if (sched.runqsize != 0) {
    sched.lock.unlock();
    startm(pp, false, false);
    return;
  }
  // If this is the last running P and nobody is polling the network, we
  // need an M to poll it.
  if (sched.npidle.load() == gomaxprocs.load() - 1 && sched.lastpoll.load() != 0) {
    sched.lock.unlock();
    startm(pp, false, false);
    return;
  }
  pidleput(pp);
  scx_uncarry(self);
  sched.lock.unlock();
}

// wakep tries to add one more P to execute Gs. Called when a G is made
// runnable (newproc, ready). Must be called with a P.
static void wakep() {
  // Be conservative about spinning threads: only start one if none spins.
  if (sched.nmspinning.load() != 0) return;
  // Ours, not Go 1.21's: with no idle P, wakep can only record that a
  // spinning M is wanted (needspinning, which needs sched.lock). If that is
  // recorded already, taking sched.lock to record it again is pure
  // contention: with every P busy, every goready would do it. (Measured
  // with goro_workloads chanpc on 2 Ps: cap 0 536 -> 405 ns/item, cap 10
  // 260 -> 200 ns/item, 4 interleaved runs each.)
  if (sched.npidle.load() == 0 && sched.needspinning.load() == 1) return;
  std::int32_t zero = 0;
  if (!sched.nmspinning.compare_exchange_strong(zero, 1)) return;
  sched.lock.lock();
  P* pp = pidlegetSpinning();
  if (!pp) {
    if (sched.nmspinning.fetch_sub(1) - 1 < 0) throw_("wakep: negative nmspinning");
    sched.lock.unlock();
    return;
  }
  // Since we always have a P, the race in the "No M is available" comment
  // in startm doesn't apply: we hold a P, so we are a running M ourselves
  // and checkdead sees us. Dropping the lock here is safe. (For the
  // export it is a P in flight all the same: we carry it.)
  scx_carry(getm(), pp);
  sched.lock.unlock();
  startm(pp, true, false);
}

// wakeNetPoller: a timer at `when` was added. If an M is blocked in
// netpoll past that, break its poll; if none is polling, get one going.
void wakeNetPoller(std::int64_t when) {
  if (sched.lastpoll.load() == 0) {
    // findRunnable keeps pollUntil either zero or when the current poll
    // ends: this may wake spuriously but never misses a wake-up.
    std::int64_t pollerPollUntil = sched.pollUntil.load();
    if (pollerPollUntil == 0 || pollerPollUntil > when) netpoll_break();
  } else {
    M* mp = getm();
    if (mp && mp->p) wakep();
  }
}

// The other half of the poller election in findRunnable, which reads the
// timers again after taking lastpoll: a deletion it did not see happened
// after lastpoll became 0, so it is seen here (deltimer's seq_cst
// read-modify-write of timer0When, this load and the poller's exchange and
// reads are all seq_cst, so one of the two sides sees the other). Only the
// deletion of the last timer breaks the poll: with timers left the poller
// merely wakes early at `when` and sleeps again, as in Go, and a server
// stopping a timeout per request must not pay a wake-up for each. pollUntil
// 0 is a poller that has not published its deadline yet.
void timerDeleted(std::int64_t when) {
  if (sched.lastpoll.load() != 0) return;
  std::int64_t pollerPollUntil = sched.pollUntil.load();
  if ((pollerPollUntil == 0 || pollerPollUntil == when) && timeSleepUntil() == 0) netpoll_break();
}

static void becomeSpinning(M* mp) {
  mp->spinning = true;
  scx_mrun(mp);
  sched.nmspinning.fetch_add(1);
  sched.needspinning.store(0);
}

// resetspinning: a spinning M found work. It stops spinning and, because it
// may have been the last spinning M, wakes another so the remaining work
// (if any) still has a thread looking for it. See "Delicate dance".
static void resetspinning() {
  M* mp = getm();
  if (!mp->spinning) throw_("resetspinning: not a spinning m");
  mp->spinning = false;
  scx_mrun(mp);
  if (sched.nmspinning.fetch_sub(1) - 1 < 0) throw_("findrunnable: negative nmspinning");
  wakep();
}

// incidlelocked: Ms locked to a G that are idle. Counting sysmon's P-less
// injections as one such M is how Go brackets them against checkdead.
static void incidlelocked(std::int32_t v) {
  sched.lock.lock();
  sched.nmidlelocked += v;
  if (v > 0) checkdead();
  sched.lock.unlock();
}

// ---------------------------------------------------------------------------
// injectglist
// ---------------------------------------------------------------------------

// injectglist adds each G on the list to a run queue and starts Ms for
// idle Ps to run them. Gs are _Gwaiting on entry. Works with or without a
// P; sysmon and an M back from a blocking netpoll call it without one.
void injectglist(G* head) {
  if (!head) return;
  G* tail = nullptr;
  std::int32_t qsize = 0;
  for (G* gp = head; gp; gp = gp->schedlink) {
    tail = gp;
    qsize++;
    casgstatus(gp, _Gwaiting, _Grunnable);
  }

  // startIdle takes up to n idle Ps and starts an M for each. The P must
  // not be released with sched.lock before an M is counted for it: see
  // startm and #59600.
  auto startIdle = [](std::int32_t n) {
    for (std::int32_t i = 0; i < n; i++) {
      sched.lock.lock();
      P* pp = pidlegetSpinning();
      if (!pp) {
        sched.lock.unlock();
        break;
      }
      scx_carry(getm(), pp);  // sysmon's word names the P until startm hands it on
#if defined(GORO_TEST_HOOKS)
      if (debug.startmlegacy) {
        // Go 1.20's shape, kept only to prove the #59600 test has teeth:
        // the lock is dropped while we own an idle P and no M is counted.
        sched.lock.unlock();
        GORO_TESTHOOK("startidle.gotp");
        startm(pp, false, false);
        continue;
      }
#endif
      GORO_TESTHOOK("startidle.gotp");
      startm(pp, false, true);
      sched.lock.unlock();
    }
  };

  M* mp = getm();
  P* pp = mp ? mp->p : nullptr;
  if (!pp) {
    sched.lock.lock();
    globrunqputbatch(head, tail, qsize);
    sched.lock.unlock();
    startIdle(qsize);
    return;
  }
  std::int32_t npidle = sched.npidle.load();
  G* ghead = nullptr;
  G* gtail = nullptr;
  std::int32_t n = 0;
  for (; n < npidle && head; n++) {
    G* g = head;
    head = head->schedlink;
    g->schedlink = nullptr;
    if (gtail) gtail->schedlink = g;
    else ghead = g;
    gtail = g;
  }
  if (n > 0) {
    sched.lock.lock();
    globrunqputbatch(ghead, gtail, n);
    sched.lock.unlock();
    startIdle(n);
    qsize -= n;
  }
  if (head) runqputbatch(pp, head, qsize);
}

// ---------------------------------------------------------------------------
// Stop the world
// ---------------------------------------------------------------------------
static void preemptall() {
  M* self = getm();
  for (std::int32_t i = 0; i < gomaxprocs.load(); i++) {
    P* pp = allp[i];
    if (pp->status.load() != _Prunning) continue;
    M* mp = pp->m.load();
    if (!mp || mp == self) continue;  // the caller stops its own P in place
    // Racy: curg may change under us; a stray preempt flag on the wrong G
    // only costs that G one extra yield.
    G* gp = __atomic_load_n(&mp->curg, __ATOMIC_ACQUIRE);
    if (gp) gp->preempt.store(true, std::memory_order_relaxed);
  }
}

// gcstopm stops the current M for stop-the-world and parks it.
static void gcstopm() {
  M* mp = getm();
  if (!sched.gcwaiting.load()) throw_("gcstopm: not waiting for gc");
  if (mp->spinning) {
    mp->spinning = false;
    scx_mrun(mp);
    if (sched.nmspinning.fetch_sub(1) - 1 < 0) throw_("gcstopm: negative nmspinning");
  }
  P* pp = releasep();
  sched.lock.lock();
  pp->status.store(_Pgcstop, std::memory_order_relaxed);
  scx_ppub(pp);
  sched.stopwait--;
  if (sched.stopwait == 0) sched.stopnote.wakeup();
  sched.lock.unlock();
  stopm();
}

// stopTheWorld stops every P. The caller's own P (if it is a G) is stopped
// in place and stays with its M. Callers without an M (goro::run's thread)
// just wait.
// Reads stopwait after the wait, when no other thread changes it any more.
static void stopTheWorld() GORO_NO_TSA {
  M* mp = getm();
  sched.lock.lock();
  sched.stopwait = gomaxprocs.load();
  sched.gcwaiting.store(true);
  preemptall();
  if (mp && mp->p) {
    mp->p->status.store(_Pgcstop, std::memory_order_relaxed);
    sched.stopwait--;
  }
  for (std::int32_t i = 0; i < gomaxprocs.load(); i++) {
    P* pp = allp[i];
    std::uint32_t s = _Psyscall;
    if (pp->status.compare_exchange_strong(s, _Pgcstop)) {
      bumptick(&pp->syscalltick);
      sched.stopwait--;
    }
  }
  for (;;) {
    P* pp = pidleget();
    if (!pp) break;
    pp->status.store(_Pgcstop, std::memory_order_relaxed);
    sched.stopwait--;
  }
  bool wait = sched.stopwait > 0;
  scx_ppub_all();
  sched.lock.unlock();
  if (wait) {
    for (;;) {
      // Re-preempt every 100 µs in case a G missed the request.
      if (sched.stopnote.tsleep(100 * 1000)) {
        sched.stopnote.clear();
        break;
      }
      preemptall();
    }
  }
  if (sched.stopwait != 0) throw_("stopTheWorld: not stopped");
  for (std::int32_t i = 0; i < gomaxprocs.load(); i++) {
    if (allp[i]->status.load() != _Pgcstop) throw_("stopTheWorld: not stopped");
  }
}

static void startTheWorld() {
  sched.lock.lock();
  std::int32_t procs = gomaxprocs.load();
  if (newprocs != 0) {
    procs = newprocs;
    newprocs = 0;
  }
  procresize_locked(procs);
  // procresize left Ps with work in the runnable list.
  P* p1 = runnablePs;
  runnablePs = nullptr;
  sched.gcwaiting.store(false);
  if (sched.sysmonwait.load()) {
    sched.sysmonwait.store(false);
    sched.sysmonnote.wakeup();
  }
  sched.lock.unlock();
  while (p1) {
    P* pp = p1;
    p1 = p1->link;
    M* nmp = pp->m.load();
    M* self = getm();
    scx_carry(self, pp);
    if (nmp) {
      pp->m.store(nullptr);
      if (nmp->nextp) throw_("startTheWorld: inconsistent mp->nextp");
      scx_mstarting(nmp, pp);  // procresize took it off the idle list
      nmp->nextp = pp;
      nmp->park.wakeup();
    } else {
      newm(nullptr, pp, -1);
    }
    scx_uncarry(self);
  }
  M* mp = getm();
  if (mp && mp->p) wakep();
}

static void worldsema_acquire() {
  if (getg()) {
    semacquire(&worldsema, false);
    return;
  }
  for (;;) {
    std::atomic_ref<std::uint32_t> a(worldsema);
    std::uint32_t v = a.load();
    if (v > 0 && a.compare_exchange_weak(v, v - 1)) return;
    usleep_(50);
  }
}
static void worldsema_release() { semrelease(&worldsema, false); }

// main_exit_stop runs on the main G after main's function returned: the
// program's work is over (Go would exit here). Stop the world so that no
// other G runs again — those running reach a safe point and are preempted
// — and from now on checkdead does not apply.
static void main_exit_stop() {
  worldsema_acquire();
  stopTheWorld();
  main_running.store(false, std::memory_order_release);
}

static void p_init(P* pp, std::int32_t id) {
  pp->id = id;
  pp->status.store(_Pgcstop, std::memory_order_relaxed);
}

// p_destroy moves everything of a P being removed by procresize to the
// global lists. sched.lock held, world stopped.
static void p_destroy(P* pp, P* heir) GORO_REQUIRES(sched.lock) {
  moveTimers(heir, pp);
  // Move the local queue, runnext first, to the head of the global queue,
  // preserving order.
  for (;;) {
    std::uint32_t h = pp->runqhead.load(), t = pp->runqtail.load();
    if (h == t) break;
    G* gp = pp->runq[(t - 1) % kRunqSize].load();
    pp->runqtail.store(t - 1);
    globrunqputhead(gp);
  }
  if (G* next = pp->runnext.exchange(nullptr)) globrunqputhead(next);
  gfreelock.lock();
  while (pp->gfree) {
    G* gp = pp->gfree;
    pp->gfree = gp->schedlink;
    pp->gfreecnt--;
    gp->schedlink = gfree_global;
    __atomic_store_n(&gfree_global, gp, __ATOMIC_RELAXED);
  }
  gfreelock.unlock();
  pp->status.store(_Pdead, std::memory_order_relaxed);
}

namespace {
// procresize changes the number of Ps. sched.lock held, world stopped.
// Ps with local work are left, each paired with an idle M if there is one,
// on runnablePs for startTheWorld to start.
void procresize_locked(std::int32_t nprocs) GORO_REQUIRES(sched.lock) {
  if (nprocs <= 0 || nprocs > kMaxGomaxprocs) throw_("procresize: invalid arg");
  std::int32_t old = gomaxprocs.load();
  for (std::int32_t i = 0; i < nprocs; i++) {
    if (!allp[i]) {
      allp[i] = new P();
      p_init(allp[i], i);
    } else if (allp[i]->status.load() == _Pdead) {
      allp[i]->status.store(_Pgcstop);
    }
  }
  M* mp = getm();
  if (mp && mp->p && mp->p->id < nprocs) {
    mp->p->status.store(_Prunning);  // keep using the current P
  } else if (mp) {
    if (mp->p) mp->p->m.store(nullptr);
    mp->p = nullptr;
    P* pp = allp[0];
    pp->m.store(nullptr);
    pp->status.store(_Pidle);
    acquirep(pp);
  }
  for (std::int32_t i = nprocs; i < old; i++) p_destroy(allp[i], mp && mp->p ? mp->p : allp[0]);
  P* runnable = nullptr;
  for (std::int32_t i = nprocs - 1; i >= 0; i--) {
    P* pp = allp[i];
    if (mp && mp->p == pp) continue;
    pp->status.store(_Pidle);
    if (runqempty(pp)) {
      pidleput(pp);
    } else {
      pp->m.store(mget());
      pp->link = runnable;
      runnable = pp;
    }
  }
  stealOrder.reset(static_cast<std::uint32_t>(nprocs));
  gomaxprocs.store(nprocs);
  runnablePs = runnable;
  if (scx_on()) {
    for (std::int32_t i = 0; i < (old > nprocs ? old : nprocs); i++) scx_ppub(allp[i]);
  }
}
}  // namespace

// ---------------------------------------------------------------------------
// checkdead
// ---------------------------------------------------------------------------

// The in-kernel checkdead, the runtime's half. Before checkdead
// gives a deadlock verdict, a process attached to scx_goro asks the kernel's
// view (scx_export.h, scx_checkdead_verdict): if another thread of ours that
// holds or carries a P is runnable -- sysmon between taking an idle P and
// counting an M for it (#59600's shape), an M just handed a P and not yet
// running -- the verdict is spurious: work is about to go on. checkdead then
// vetoes itself and returns, and since a veto is only advice, sysmon runs
// checkdead again on its next loop (scx_recheck) until the verdict is either
// vetoed again, confirmed, or moot because an M runs. When the view agrees,
// the fatal output says so in one line. Standalone, or with no view from
// the BPF side, checkdead is exactly Go's.
static std::atomic<bool> scx_recheck{false};

// kernel_vetoes asks the kernel's view about the verdict checkdead is about
// to give. true: spurious -- a re-check is scheduled (sysmon woken if it
// sleeps) and checkdead must return with sched.lock held. false: give the
// verdict; *confirmed says whether the view agreed (confirmation_line).
static bool kernel_vetoes(bool* confirmed) GORO_REQUIRES(sched.lock) {
  ScxVerdict v = scx_checkdead_verdict(getm());
  *confirmed = v == ScxVerdict::kConfirms;
  if (v == ScxVerdict::kOverruled) {
    lock_print();
    std::fprintf(stderr,
                 "runtime: checkdead: the kernel view has vetoed this verdict for over %llds, longer than any thread "
                 "stays runnable under sched_ext: not believed (stale or forged); trusting the runtime's own count\n",
                 static_cast<long long>(kVetoBoundNs / 1000000000));
    unlock_print();
  }
  if (v != ScxVerdict::kSpurious) return false;
  scx_recheck.store(true, std::memory_order_relaxed);
  if (sched.sysmonwait.load()) {  // sysmon must be awake to re-check
    sched.sysmonwait.store(false);
    sched.sysmonnote.wakeup();
  }
  return true;
}

static void confirmation_line(bool confirmed) {
  if (!confirmed) return;
  lock_print();
  std::fprintf(stderr,
               "runtime: checkdead: scx_goro confirms: no thread of this process holding or carrying a P is runnable\n");
  unlock_print();
}

// checkdead checks for a deadlock by counting running Ms. If every M is
// idle (and the main goroutine has not returned), the program can make no
// more progress: either a G is runnable with nobody to run it (a runtime
// bug, "checkdead: runnable g"), or every G is blocked ("all goroutines are
// asleep - deadlock!"). sched.lock must be held. It releases the lock before
// it throws: the crash path may print schedtrace, which takes it (#59758).
// Attached to scx_goro, the kernel may veto a verdict (see above): then it
// returns with sched.lock still held, as if the count had been positive.
static void checkdead() GORO_REQUIRES(sched.lock) GORO_NO_TSA {
  sched.lock.assert_held();
  if (!main_running.load(std::memory_order_acquire)) return;  // main returned: the work is over
  std::int32_t run0 = 0;
  std::int64_t run = mcount() - sched.nmidle - sched.nmidlelocked - sched.nmsys;
  if (run > run0) {
    scx_checkdead_alive();
    return;
  }
  scx_pubcounters(0);  // what the loader and the BPF side see of this moment
  if (run < 0) {
    lock_print();
    std::fprintf(stderr, "runtime: checkdead: nmidle=%d nmidlelocked=%d mcount=%lld nmsys=%d\n", sched.nmidle,
                 sched.nmidlelocked, static_cast<long long>(mcount()), sched.nmsys);
    unlock_print();
    sched.lock.unlock();
    throw_("checkdead: inconsistent counts");
  }
  std::int32_t grunning = 0;
  bool confirmed = false;
  allglock.lock();
  for (G* gp = allgs; gp; gp = gp->alllink) {
    if (gp->is_sys) continue;
    std::uint32_t s = readgstatus(gp);
    switch (s) {
      case _Gwaiting:
        grunning++;
        break;
      case _Grunnable:
      case _Grunning:
      case _Gsyscall: {
        allglock.unlock();
        if (kernel_vetoes(&confirmed)) return;
        lock_print();
        std::fprintf(stderr, "runtime: checkdead: find g %lld in status %u\n", static_cast<long long>(gp->goid), s);
        unlock_print();
        sched.lock.unlock();
        confirmation_line(confirmed);
        throw_("checkdead: runnable g");
      }
      default:
        break;
    }
  }
  allglock.unlock();
  if (grunning == 0) {
    if (kernel_vetoes(&confirmed)) return;
    sched.lock.unlock();
    confirmation_line(confirmed);
    fatal_("no goroutines (main called runtime.Goexit) - deadlock!");
  }
  // A pending timer will wake someone: not dead.
  if (anytimers()) {
    scx_checkdead_alive();
    return;
  }
  if (kernel_vetoes(&confirmed)) return;
  sched.lock.unlock();
  if (debug.schedtrace > 0) schedtrace(debug.scheddetail > 0);
  confirmation_line(confirmed);
  fatal_("all goroutines are asleep - deadlock!");
}

// ---------------------------------------------------------------------------
// G allocation and free lists
// ---------------------------------------------------------------------------
static void allgadd(G* gp) {
  allglock.lock();
  gp->alllink = allgs;
  allgs = gp;
  allglock.unlock();
}

// malg allocates a G with a fresh stack; the G lives at the stack's top.
static G* malg() {
  StackRegion r = stackalloc(stack_size_default());
  std::uintptr_t top = reinterpret_cast<std::uintptr_t>(r.base) + r.size;
  std::uintptr_t gaddr = (top - sizeof(G)) & ~static_cast<std::uintptr_t>(63);
  G* gp = new (reinterpret_cast<void*>(gaddr)) G();
  gp->region = r;
  gp->stack.hi = gaddr;
  gp->stack.lo = reinterpret_cast<std::uintptr_t>(r.base) + (r.guarded ? 4096 : 0);
  // Unguarded stacks carry a canary at their low end (see stack.cpp);
  // guarded ones need none, and not writing it spares a page per G.
  if (!r.guarded) *reinterpret_cast<std::uint64_t*>(gp->stack.lo) = kStackCanary;
#if defined(GORO_TSAN)
  gp->tsan_fiber = __tsan_create_fiber(0);
#endif
  gp->atomicstatus.store(_Gdead, std::memory_order_relaxed);
  allgadd(gp);
  return gp;
}

// gfput puts a dead G on pp's free list; if the local list gets too long,
// it moves a batch to the global list.
static void gfput(P* pp, G* gp) {
  if (readgstatus(gp) != _Gdead) throw_("gfput: bad status (not Gdead)");
  gp->schedlink = pp->gfree;
  pp->gfree = gp;
  pp->gfreecnt++;
  if (pp->gfreecnt >= 64) {
    gfreelock.lock();
    while (pp->gfreecnt >= 32) {
      G* g = pp->gfree;
      pp->gfree = g->schedlink;
      pp->gfreecnt--;
      g->schedlink = gfree_global;
      __atomic_store_n(&gfree_global, g, __ATOMIC_RELAXED);
    }
    gfreelock.unlock();
  }
}

// gfget takes a G from pp's free list, refilling it from the global list.
static G* gfget(P* pp) {
  if (!pp->gfree && __atomic_load_n(&gfree_global, __ATOMIC_RELAXED)) {
    gfreelock.lock();
    while (pp->gfreecnt < 32 && gfree_global) {
      G* g = gfree_global;
      __atomic_store_n(&gfree_global, g->schedlink, __ATOMIC_RELAXED);
      g->schedlink = pp->gfree;
      pp->gfree = g;
      pp->gfreecnt++;
    }
    gfreelock.unlock();
  }
  G* gp = pp->gfree;
  if (gp) {
    pp->gfree = gp->schedlink;
    pp->gfreecnt--;
  }
  return gp;
}

static std::int64_t newgoid(P* pp) {
  if (!pp) return sched.goidgen.fetch_add(1) + 1;
  if (pp->goidcache == pp->goidcacheend) {
    // Ids are handed out in batches so Ps don't contend on goidgen.
    pp->goidcache = sched.goidgen.fetch_add(kGoidCacheBatch) + 1;
    pp->goidcacheend = pp->goidcache + kGoidCacheBatch;
  }
  return pp->goidcache++;
}

static void goexit1();
static void main_exit_stop();

// The first frame of every G.
static void gostart(void* arg) {
  G* gp = static_cast<G*>(arg);
#if defined(GORO_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
  asan_switch_done(gp);
#endif
  gp->fn(gp->closure);
  gp->destroy(gp->closure);
  if (gp->is_main) main_exit_stop();
  goexit1();
}

G* newproc_alloc(std::size_t size, std::size_t align, void** closure) {
  NoPreempt np;
  M* mp = getm();
  P* pp = mp ? mp->p : nullptr;
  G* gp = pp ? gfget(pp) : nullptr;
  if (!gp) gp = malg();
  std::size_t limit = (gp->stack.hi - gp->stack.lo) / 4;
  if (size + align > limit) goro::panic("go: closure too large for a goroutine stack");
  std::uintptr_t addr = (gp->stack.hi - size) & ~static_cast<std::uintptr_t>(align - 1);
  gp->closure = reinterpret_cast<void*>(addr);
  *closure = gp->closure;
  return gp;
}

static void checkpreempt_slow();

void newproc_start(G* gp, ClosureFn fn, ClosureFn destroy) {
  NoPreempt np;
  gp->fn = fn;
  gp->destroy = destroy;
  std::uintptr_t top = reinterpret_cast<std::uintptr_t>(gp->closure) & ~static_cast<std::uintptr_t>(15);
  gp->sp = ctx_make(top - 16, gostart, gp);
  gp->preempt.store(false, std::memory_order_relaxed);
  gp->waitreason = nullptr;
  gp->is_main = false;
  gp->is_sys = false;
  M* mp = getm();
  P* pp = mp ? mp->p : nullptr;
  if (!pp || !getg()) throw_("go: called outside a goroutine (use goro::run)");
  // Atomic: the export reads the goid of a queued G from other threads.
  __atomic_store_n(&gp->goid, newgoid(pp), __ATOMIC_RELAXED);
  ngoroutines.fetch_add(1, std::memory_order_relaxed);
  // As Go's newproc1: a new G's first stint is timed with the same odds.
  static std::atomic<std::uint8_t> newg_seq{0};
  gp->tracking_seq = newg_seq.fetch_add(1, std::memory_order_relaxed);
  gp->tracking = gp->tracking_seq % kSchedLatencyPeriod == 0;
  gp->tracking_stamp = 0;
  casgstatus(gp, _Gdead, _Grunnable);
  runqput(pp, gp, true);
  wakep();
  checkpreempt();
}

// ---------------------------------------------------------------------------
// Parking, readying, yielding, exiting
// ---------------------------------------------------------------------------
static void dropg() {
  M* mp = getm();
  G* gp = mp->curg;
  if (gp) gp->m = nullptr;
  __atomic_store_n(&mp->curg, nullptr, __ATOMIC_RELAXED);
}

static G* park_m(G* gp) {
  M* mp = getm();
  casgstatus(gp, _Grunning, _Gwaiting);
  dropg();
  if (UnlockFn fn = mp->waitunlockf) {
    bool ok = fn(gp, mp->waitlock);
    mp->waitunlockf = nullptr;
    mp->waitlock = nullptr;
    if (!ok) {
      casgstatus(gp, _Gwaiting, _Grunnable);
      return gp;  // run it again at once, in the same time slice
    }
  }
  return nullptr;
}

void gopark(UnlockFn unlockf, void* lock, const char* reason) {
  M* mp = getm();
  G* gp = mp->curg;
  if (!gp || readgstatus(gp) != _Grunning) throw_("gopark: bad g status");
  mp->waitlock = lock;
  mp->waitunlockf = unlockf;
  gp->waitreason = reason;
  mcall([](G* g) {
    G* next = park_m(g);
    setcurg(getm(), next);  // handed back to schedule_loop, see there
  });
}

// ready marks gp runnable and puts it in the current P's runnext.
static void ready(G* gp, bool next) {
  M* mp = getm();
  if (readgstatus(gp) != _Gwaiting) throw_("bad g->status in ready");
  if (!mp || !mp->p) {
    // No P (a runtime thread without one): inject via the global queue.
    gp->schedlink = nullptr;
    injectglist(gp);
    return;
  }
  casgstatus(gp, _Gwaiting, _Grunnable);
  runqput(mp->p, gp, next);
  wakep();
}

void goready(G* gp) { ready(gp, true); }

static void goschedImpl(G* gp) {
  if (readgstatus(gp) != _Grunning) throw_("bad g status");
  casgstatus(gp, _Grunning, _Grunnable);
  dropg();
  sched.lock.lock();
  globrunqput(gp);
  sched.lock.unlock();
}

static void gosched_m(G* gp) {
  goschedImpl(gp);
  setcurg(getm(), nullptr);
}

static void goyield_m(G* gp) {
  M* mp = getm();
  casgstatus(gp, _Grunning, _Grunnable);
  dropg();
  runqput(mp->p, gp, false);
  setcurg(mp, nullptr);
}

void goyield() {
  NoPreempt np;
  if (!getg()) throw_("goyield: called outside a goroutine");
  mcall(goyield_m);
}

static void checkpreempt_slow() {
  G* gp = getg();
  if (!gp) return;
  if (!gp->preempt.exchange(false, std::memory_order_relaxed)) return;
  mcall(gosched_m);
}

void checkpreempt() {
  G* gp = getg();
  if (gp && gp->preempt.load(std::memory_order_relaxed)) checkpreempt_slow();
}

static void mexit(M* mp);
static void wake_sysmon();

static void goexit0(G* gp) {
  M* mp = getm();
  bool locked = mp->lockedg == gp;
  if (locked) {
    mp->lockedg = nullptr;
    gp->lockedm = nullptr;
  }
  casgstatus(gp, _Grunning, _Gdead);
  bool was_main = gp->is_main;
  if (!gp->is_sys) ngoroutines.fetch_sub(1, std::memory_order_relaxed);
  gp->m = nullptr;
  gp->waitreason = nullptr;
  gp->fn = nullptr;
  gp->closure = nullptr;
  gp->is_main = false;
  gp->is_sys = false;
  dropg();
  gfput(mp->p, gp);
  setcurg(mp, nullptr);
  if (locked && !was_main) {
    // The G exited without unlocking its thread: the thread may be in a
    // state other Gs must not inherit, so it ends (as in Go).
    mp->lockedExt = mp->lockedInt = 0;
    mexit(mp);
    return;
  }
  if (was_main) {
    // The world is stopped (main_exit_stop) with our P stopped in place.
    // Leave the P to goro::run's thread, which abandons what is left and
    // restarts the world empty; this M parks until then.
    P* pp = mp->p;
    pp->m.store(nullptr);
    mp->p = nullptr;
    scx_ppub(pp);
    scx_mpub(mp);
    main_done.wakeup();
    stopm();
  }
}

static void goexit1() { mcall(goexit0, /*exiting=*/true); }

// mexit: the current M's thread ends. Its P goes to another M.
static void mexit(M* mp) {
  handoffp(releasep());
  sched.lock.lock();
  sched.nmfreed++;
  checkdead();
  sched.lock.unlock();
  mp->exiting = true;  // schedule_loop returns, and so does the thread
}

// ---------------------------------------------------------------------------
// System calls
//
// entersyscall: the G is about to block its thread in a call the runtime
// cannot see into. The fast path keeps the P attached in _Psyscall with no
// lock and no hand-off: a short call comes back and takes it again with one
// CAS. If the call blocks, sysmon retakes the P after a sysmon tick (20 µs
// to 10 ms) and hands it to another M (handoffp), so the other Gs run on.
// ---------------------------------------------------------------------------
void entersyscall() {
  NoPreempt np;
  M* mp = getm();
  G* gp = mp->curg;
  P* pp = mp->p;
  if (!gp || !pp) throw_("entersyscall: not running a goroutine");
  casgstatus(gp, _Grunning, _Gsyscall);
  pp->m.store(nullptr, std::memory_order_relaxed);
  mp->oldp = pp;
  mp->p = nullptr;
  pp->status.store(_Psyscall, std::memory_order_release);
  scx_ppub(pp);
  scx_mstate(mp, GORO_M_SYSCALL);
  if (sched.sysmonwait.load(std::memory_order_relaxed)) wake_sysmon();
  if (sched.gcwaiting.load(std::memory_order_relaxed)) {
    // Stop-the-world is waiting for our P: give it up now.
    sched.lock.lock();
    std::uint32_t st = _Psyscall;
    if (sched.stopwait > 0 && pp->status.compare_exchange_strong(st, _Pgcstop)) {
      bumptick(&pp->syscalltick);
      scx_ppub(pp);
      if (--sched.stopwait == 0) sched.stopnote.wakeup();
    }
    sched.lock.unlock();
  }
}

// exitsyscallfast tries to get a P back without a switch: first the old
// one (if sysmon did not retake it), then any idle one.
static bool exitsyscallfast(P* oldp) {
  std::uint32_t st = _Psyscall;
  if (oldp && oldp->status.load(std::memory_order_relaxed) == _Psyscall &&
      oldp->status.compare_exchange_strong(st, _Pidle)) {
    wirep(oldp);
    return true;
  }
  if (__atomic_load_n(&sched.pidle, __ATOMIC_RELAXED)) {
    sched.lock.lock();
    P* pp = pidleget();
    if (pp && sched.sysmonwait.load()) {
      sched.sysmonwait.store(false);
      sched.sysmonnote.wakeup();
    }
    sched.lock.unlock();
    if (pp) {
      acquirep(pp);
      return true;
    }
  }
  return false;
}

// exitsyscall0 (on g0): no P to be had. Queue the G globally and stop.
static void exitsyscall0(G* gp) {
  M* mp = getm();
  casgstatus(gp, _Gsyscall, _Grunnable);
  dropg();
  sched.lock.lock();
  P* pp = pidleget();
  if (!pp) globrunqput(gp);
  else if (sched.sysmonwait.load()) {
    sched.sysmonwait.store(false);
    sched.sysmonnote.wakeup();
  }
  sched.lock.unlock();
  if (pp) {
    acquirep(pp);
    setcurg(mp, gp);  // run it at once
    return;
  }
  if (mp->lockedg == gp) return;  // schedule_loop: stoplockedm, then run gp
  stopm();
  setcurg(mp, nullptr);
}

void exitsyscall() {
  NoPreempt np;
  M* mp = getm();
  G* gp = mp->curg;
  P* oldp = mp->oldp;
  mp->oldp = nullptr;
  if (exitsyscallfast(oldp)) {
    bumptick(&getm()->p->syscalltick);
    casgstatus(gp, _Gsyscall, _Grunning);
    checkpreempt();
    return;
  }
  mcall(exitsyscall0);
  // Scheduled again, with a P.
  bumptick(&getm()->p->syscalltick);
}

bool entersyscall_if_g() {
  if (!getg()) return false;
  entersyscall();
  return true;
}

// ---------------------------------------------------------------------------
// lock_os_thread
// ---------------------------------------------------------------------------
static void dolockOSThread() {
  M* mp = getm();
  G* gp = getg();
  mp->lockedg = gp;
  gp->lockedm = mp;
}

static void dounlockOSThread() {
  M* mp = getm();
  if (mp->lockedInt != 0 || mp->lockedExt != 0) return;
  G* gp = getg();
  mp->lockedg = nullptr;
  gp->lockedm = nullptr;
}

void lock_os_thread_internal() { dolockOSThread(); }
void unlock_os_thread_internal() { dounlockOSThread(); }

// gosched_preempted: the asynchronous preemption's yield (Go's
// gopreempt_m): to the global queue, like gosched.
void gosched_preempted() {
  G* gp = getg();
  gp->preempt.store(false, std::memory_order_relaxed);
  NoPreempt np;
  mcall(gosched_m);
}

}  // namespace goro::detail

namespace goro {
void gosched() {
  using namespace detail;
  NoPreempt np;
  if (!getg()) throw_("gosched: called outside a goroutine");
  mcall(gosched_m);
}
}  // namespace goro

namespace goro::detail {

// ---------------------------------------------------------------------------
// schedule / findRunnable / execute
// ---------------------------------------------------------------------------

// stealWork attempts to steal a runnable G from any P. newWork says that
// new work may have appeared (stop-the-world pending) and the caller should
// start over.
static G* stealWork(bool* newWork, std::int64_t* pollUntil) {
  M* mp = getm();
  P* pp = mp->p;
  *newWork = false;
  bool ranTimer = false;
  constexpr int stealTries = 4;
  for (int i = 0; i < stealTries; i++) {
    bool stealRunNextG = i == stealTries - 1;
    for (RandomEnum e = stealorder_start(stealOrder, fastrand()); !e.done(); e.next()) {
      if (sched.gcwaiting.load(std::memory_order_relaxed)) {
        *newWork = true;
        return nullptr;
      }
      P* p2 = allp[e.pos];
      if (pp == p2) continue;
      // Steal timers from p2 on the last pass only: running another P's
      // timers readies Gs on ours; if that happened, take one.
      if (stealRunNextG && p2->timer0When.load(std::memory_order_relaxed) != 0) {
        bool ran = false;
        std::int64_t w = checkTimers(p2, 0, &ran);
        if (w != 0 && (*pollUntil == 0 || w < *pollUntil)) *pollUntil = w;
        if (ran) {
          bool inherit;
          if (G* gp = runqget(pp, &inherit)) return gp;
          ranTimer = true;
        }
      }
      // Don't bother to attempt to steal if p2 is idle.
      if (!idlepmask_read(p2->id)) {
        if (G* gp = runqsteal(pp, p2, stealRunNextG)) return gp;
      }
    }
  }
  // A timer we ran may have readied a G on another P: look again.
  if (ranTimer) *newWork = true;
  return nullptr;
}

// checkRunqsNoP: after dropping its P and spinning, an M checks every P's
// queue once more ("Delicate dance"); if it finds work it takes an idle P
// back to go and get it.
static P* checkRunqsNoP(std::int32_t nprocs) {
  for (std::int32_t id = 0; id < nprocs; id++) {
    P* p2 = allp[id];
    if (!idlepmask_read(id) && !runqempty(p2)) {
      sched.lock.lock();
      P* pp = pidlegetSpinning();
      if (!pp) {
        sched.lock.unlock();
        return nullptr;
      }
      sched.lock.unlock();
      return pp;
    }
  }
  return nullptr;
}

// findRunnable finds a runnable G to execute: from the local or global run
// queue, the network poller, or another P. Blocks (stopm) until one exists.
static G* findRunnable(bool* inheritTime) {
  M* mp = getm();
top:
  P* pp = mp->p;
  if (sched.gcwaiting.load(std::memory_order_relaxed)) {
    gcstopm();
    goto top;
  }
  // Run expired timers of our P; remember when the next one is due.
  std::int64_t pollUntil = checkTimers(pp, 0, nullptr);
  // Check the global runnable queue once in a while to ensure fairness.
  // Otherwise two goroutines can completely occupy the local runqueue by
  // constantly respawning each other.
  if (pp->schedtick % 61 == 0 && __atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) > 0) {
    sched.lock.lock();
    G* gp = globrunqget(pp, 1);
    sched.lock.unlock();
    if (gp) {
      *inheritTime = false;
      return gp;
    }
  }
  // local runq
  if (G* gp = runqget(pp, inheritTime)) return gp;
  // global runq
  if (__atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) != 0) {
    sched.lock.lock();
    G* gp = globrunqget(pp, 0);
    sched.lock.unlock();
    if (gp) {
      *inheritTime = false;
      return gp;
    }
  }
  // Poll network. An optimisation before stealing: a non-blocking poll.
  if (netpoll_inited() && netpoll_anywaiters() && sched.lastpoll.load() != 0) {
    std::int32_t delta;
    if (G* list = netpoll(0, &delta)) {
      G* gp = list;
      list = list->schedlink;
      gp->schedlink = nullptr;
      injectglist(list);
      netpoll_adjust_waiters(delta);  // only now: see netpoll.h
      casgstatus(gp, _Gwaiting, _Grunnable);
      *inheritTime = false;
      return gp;
    }
  }
  // Spinning Ms: steal work from other Ps. Limit the number of spinning Ms
  // to half the number of busy Ps: under low parallelism, unbounded
  // spinning burns CPU for nothing.
  if (mp->spinning || 2 * sched.nmspinning.load() < gomaxprocs.load() - sched.npidle.load()) {
    if (!mp->spinning) becomeSpinning(mp);
    bool newWork = false;
    if (G* gp = stealWork(&newWork, &pollUntil)) {
      *inheritTime = false;
      return gp;
    }
    if (newWork) goto top;
  }

  // Nothing to do: give up the P. Snapshot the P count first: after
  // releasing the P, a stop-the-world may resize.
  std::int32_t nprocs = gomaxprocs.load();
  sched.lock.lock();
  if (sched.gcwaiting.load()) {
    sched.lock.unlock();
    goto top;
  }
  if (sched.runqsize != 0) {
    G* gp = globrunqget(pp, 0);
    sched.lock.unlock();
    *inheritTime = false;
    return gp;
  }
  if (!mp->spinning && sched.needspinning.load() == 1) {
    // See pidlegetSpinning: someone needed a spinning M and found no idle P.
    becomeSpinning(mp);
    sched.lock.unlock();
    goto top;
  }
  if (releasep() != pp) throw_("findrunnable: wrong p");
  pidleput(pp);
  sched.lock.unlock();

  // Delicate dance: the thread transitions from spinning to non-spinning,
  // concurrently with the submission of new work. We must first drop
  // nmspinning and then check all sources again (StoreLoad); submitters
  // publish work first and then check nmspinning. Otherwise we could miss
  // work submitted right now and leave it with no M.
  bool wasSpinning = mp->spinning;
  if (mp->spinning) {
    mp->spinning = false;
    scx_mrun(mp);
    // The seq_cst read-modify-write is the StoreLoad barrier the dance
    // needs: the queue reads below cannot move above it.
    if (sched.nmspinning.fetch_sub(1) - 1 < 0) throw_("findrunnable: negative nmspinning");
    if (P* p2 = checkRunqsNoP(nprocs)) {
      acquirep(p2);
      becomeSpinning(mp);
      goto top;
    }
  }
  // The earliest timer of any P: somebody must wake up for it.
  {
    std::int64_t w = timeSleepUntil();
    if (w != 0 && (pollUntil == 0 || w < pollUntil)) pollUntil = w;
  }

  // Poll the network until woken (the last resort before sleeping): one M
  // at a time, elected by swapping lastpoll to 0.
  if (netpoll_inited() && (netpoll_anywaiters() || pollUntil != 0) && sched.lastpoll.exchange(0) != 0) {
    // Elected. Read the timers again: one stopped since the read above must
    // not keep this M asleep until it would have fired. Go 1.21 sleeps on
    // (its deleted timers stay in the heap), and a program whose last timer
    // was stopped is reported deadlocked only when that timer was due; here
    // the deletion either shows in this read or, later, its timerDeleted
    // sees lastpoll 0 and breaks the poll.
    pollUntil = timeSleepUntil();
    if (pollUntil == 0 && !netpoll_anywaiters()) {
      // Nothing left to poll for: give the election back and sleep.
      sched.lastpoll.store(nanotime());
      stopm();
      goto top;
    }
    sched.pollUntil.store(pollUntil);
    if (mp->p) throw_("findrunnable: netpoll with p");
    if (mp->spinning) throw_("findrunnable: netpoll with spinning");
    std::int64_t delay = -1;
    if (pollUntil != 0) {
      delay = pollUntil - nanotime();
      if (delay < 0) delay = 0;
    }
    if (delay != 0) scx_mstate(mp, GORO_M_NETPOLL);
    GORO_TESTHOOK("findrunnable.beforenetpoll");
    std::int32_t delta;
    G* list = netpoll(delay, &delta);  // block until new work is available
    if (delay != 0) scx_mrun(mp);
    sched.pollUntil.store(0);
    sched.lastpoll.store(nanotime());
    GORO_TESTHOOK("findrunnable.afternetpoll");
    sched.lock.lock();
    P* p2 = pidleget();
    sched.lock.unlock();
    if (!p2) {
      injectglist(list);
      netpoll_adjust_waiters(delta);
    } else {
      acquirep(p2);
      if (list) {
        G* gp = list;
        list = list->schedlink;
        gp->schedlink = nullptr;
        injectglist(list);
        netpoll_adjust_waiters(delta);
        casgstatus(gp, _Gwaiting, _Grunnable);
        *inheritTime = false;
        return gp;
      }
      if (wasSpinning) becomeSpinning(mp);
      goto top;
    }
  } else if (pollUntil != 0 && netpoll_inited()) {
    // Someone else polls; make sure it wakes up in time for our timer.
    std::int64_t pollerPollUntil = sched.pollUntil.load();
    if (pollerPollUntil == 0 || pollerPollUntil > pollUntil) netpoll_break();
  }
  stopm();
  goto top;
}

// execute schedules gp to run on the current M. If inheritTime, gp shares
// the current time slice (schedtick is not advanced): a runnext chain of Gs
// readying each other is one unit for fairness and preemption.
static void execute(G* gp, bool inheritTime) {
  M* mp = getm();
  setcurg(mp, gp);
  gp->m = mp;
  casgstatus(gp, _Grunnable, _Grunning);
  gp->preempt.store(false, std::memory_order_relaxed);  // a stale request from an earlier slice
  if (!inheritTime) bumptick(&mp->p->schedtick);
  gogo(mp, gp);
}

// schedule_loop is g0's life: find a G, run it until it switches back, carry
// out what it asked for (park, yield, exit), repeat. Never returns.
static void schedule_loop() {
  M* mp = getm();
  for (;;) {
    G* gp;
    bool inheritTime = false;
    if (mp->lockedg) {
      // This M is wired to a G that is not running: wait for it.
      stoplockedm();
      gp = mp->lockedg;
    } else {
      P* pp = mp->p;
      if (mp->spinning && (pp->runnext.load() || pp->runqhead.load() != pp->runqtail.load())) {
        throw_("schedule: spinning with local work");
      }
      gp = findRunnable(&inheritTime);
      // This M is about to run a G: if it was spinning, stop, and start
      // another spinning M in case there is more work.
      if (mp->spinning) resetspinning();
      if (gp->lockedm) {
        // gp is wired to another M: hand it our P and wait.
        startlockedm(gp);
        continue;
      }
    }
    for (;;) {
      execute(gp, inheritTime);
      // Back on g0: the G asked for something (Go's mcall).
      void (*fn)(G*) = mp->mcall_fn;
      mp->mcall_fn = nullptr;
      G* prev = mp->curg;
      fn(prev);
      // park_m leaves the G in curg when it must run again at once.
      gp = mp->curg;
      if (!gp) break;
      setcurg(mp, nullptr);
      inheritTime = true;
    }
    if (mp->exiting) return;  // back to mstart: the thread ends
  }
}

// ---------------------------------------------------------------------------
// sysmon
// ---------------------------------------------------------------------------
#if defined(GORO_TEST_HOOKS)
// Test-only: a G for sysmon to inject like Go's forcegc injection
// (unbracketed) or like its netpoll injection (bracketed by incidlelocked).
static std::atomic<G*> sysmon_inject_g{nullptr};
static std::atomic<bool> sysmon_inject_bracketed{false};
#endif

static bool sysmon_test_pending() {
#if defined(GORO_TEST_HOOKS)
  return sysmon_inject_g.load() != nullptr;
#else
  return false;
#endif
}

static bool preemptone(P* pp) {
  M* mp = pp->m.load();
  if (!mp) return false;
  G* gp = __atomic_load_n(&mp->curg, __ATOMIC_ACQUIRE);
  if (!gp) return false;
  gp->preempt.store(true, std::memory_order_relaxed);
  // Request an asynchronous preemption too, for Gs that reach no safe point.
  preempt_m(mp);
  return true;
}

// retake marks Gs that have run for more than 10 ms for preemption at their
// next safe point. (Retaking Ps from Ms blocked in syscalls comes with the
// syscall support; the hook is the _Psyscall case.)
static std::uint32_t retake(std::int64_t now) {
  std::uint32_t n = 0;
  std::int32_t np = gomaxprocs.load();
  for (std::int32_t i = 0; i < np; i++) {
    P* pp = allp[i];
    if (!pp) continue;
    std::uint32_t s = pp->status.load(std::memory_order_relaxed);
    bool sysretake = false;
    if (s == _Prunning || s == _Psyscall) {
      // Preempt G if it's running on the same schedtick for too long.
      // This could be from a single long-running goroutine or a sequence
      // of goroutines run via runnext, which share a single schedtick.
      std::uint32_t t = __atomic_load_n(&pp->schedtick, __ATOMIC_RELAXED);
      if (pp->sysmon_schedtick != t) {
        pp->sysmon_schedtick = t;
        pp->sysmon_schedwhen = now;
      } else if (pp->sysmon_schedwhen + kForcePreemptNS <= now) {
        preemptone(pp);
        // In the syscall case, preemptone() doesn't work because there is
        // no M wired to the P.
        sysretake = true;
      }
    }
    if (s == _Psyscall) {
      // Retake the P if it has been in the syscall for more than one
      // sysmon tick (at least 20 µs).
      std::uint32_t t = __atomic_load_n(&pp->syscalltick, __ATOMIC_RELAXED);
      if (!sysretake && pp->sysmon_syscalltick != t) {
        pp->sysmon_syscalltick = t;
        pp->sysmon_syscallwhen = now;
        continue;
      }
      // We don't want to retake Ps when there is no other work to do, but
      // we must eventually: they keep sysmon from its deep sleep.
      if (runqempty(pp) && sched.nmspinning.load() + sched.npidle.load() > 0 &&
          pp->sysmon_syscallwhen + 10 * 1000 * 1000 > now) {
        continue;
      }
      // Count as a running M while we hand the P off: otherwise checkdead
      // could see no running M between the CAS and handoffp's startm.
      incidlelocked(-1);
      std::uint32_t st = _Psyscall;
      if (pp->status.compare_exchange_strong(st, _Pidle)) {
        n++;
        bumptick(&pp->syscalltick);
        handoffp(pp);
      }
      incidlelocked(1);
    }
  }
  return n;
}

static void sysmon() {
  scx_mstate(getm(), GORO_M_SYSMON);
  sched.lock.lock();
  sched.nmsys++;
  checkdead();
  sched.lock.unlock();

  std::int64_t lasttrace = 0;
  std::int32_t idle = 0;
  std::uint32_t delay = 0;
  for (;;) {
    if (idle == 0) delay = 20;  // start with 20 µs sleep...
    else if (idle > 50) delay *= 2;  // ...then double after 1 ms of idleness
    if (delay > 10 * 1000) delay = 10 * 1000;  // up to 10 ms
    usleep_(delay);
    std::int64_t now = nanotime();
    // The loader restarted, or appeared for a process that started without
    // one? (scx_export.h; never blocks)
    bool reattached = scx_watch(now);
    if (scx_on()) {
      // The export: counters and heartbeat every loop; and a checkdead
      // the kernel vetoed is looked at again (see checkdead).
      sched.lock.lock();
      if (reattached) scx_ppub_all();
      scx_pubcounters(now);
      if (scx_recheck.exchange(false, std::memory_order_relaxed)) checkdead();
      sched.lock.unlock();
    }
    // Attached to scx_goro, sysmon does not sleep deeply (see "sysmon while
    // attached" in scx_export.h): it stays in its <= 10 ms loop, so the
    // network is polled and the export refreshed even when every P is idle.
    // Once the loader has gone (scx_connected), it sleeps as standalone.
    if (debug.schedtrace <= 0 && !scx_connected() && !scx_handshaking() &&
        (sched.gcwaiting.load() || sched.npidle.load() == gomaxprocs.load()) && !sysmon_test_pending() &&
        !scx_recheck.load(std::memory_order_relaxed)) {
      sched.lock.lock();
      if ((sched.gcwaiting.load() || sched.npidle.load() == gomaxprocs.load()) && !sysmon_test_pending() &&
          !scx_recheck.load(std::memory_order_relaxed)) {
        // Nothing runs: sleep until something does (startm and
        // startTheWorld wake us), the next timer, or a minute passes.
        std::int64_t next = timeSleepUntil();
        if (next == 0 || next > now) {
          std::int64_t sleep = 60ll * 1000 * 1000 * 1000;
          if (next != 0 && next - now < sleep) sleep = next - now;
          sched.sysmonwait.store(true);
          sched.lock.unlock();
          sched.sysmonnote.tsleep(sleep);
          sched.lock.lock();
          sched.sysmonwait.store(false);
          sched.sysmonnote.clear();
          idle = 0;
          delay = 20;
        }
      }
      sched.lock.unlock();
    }
    // Poll the network if not polled for more than 10 ms.
    std::int64_t lastpoll = sched.lastpoll.load();
    if (netpoll_inited() && lastpoll != 0 && lastpoll + 10 * 1000 * 1000 < now) {
      sched.lastpoll.compare_exchange_strong(lastpoll, now);
      std::int32_t delta;
      if (G* list = netpoll(0, &delta)) {
        GORO_TESTHOOK("sysmon.netpolled");
        // Bracketed: an M about to inject counts as running for checkdead
        // while it has no P (the #6070 guard). Until the bracket, the Gs
        // in hand still count as netpoll waiters (netpoll.h), so a worker
        // M going idle meanwhile blocks in netpoll instead of stopping.
        incidlelocked(-1);
        scx_injecting(getm(), true);
        GORO_TESTHOOK("sysmon.injecting");
        injectglist(list);
        scx_injecting(getm(), false);
        incidlelocked(1);
        netpoll_adjust_waiters(delta);
      }
    }
#if defined(GORO_TEST_HOOKS)
    if (G* gp = sysmon_inject_g.exchange(nullptr)) {
      gp->schedlink = nullptr;
      if (sysmon_inject_bracketed.load()) {
        incidlelocked(-1);
        injectglist(gp);
        incidlelocked(1);
      } else {
        injectglist(gp);  // like Go's forcegc injection: not bracketed
      }
      idle = 0;
    }
#endif
    if (retake(now) != 0) idle = 0;
    else idle++;
    if (debug.schedtrace > 0 && lasttrace + static_cast<std::int64_t>(debug.schedtrace) * 1000000 <= now) {
      lasttrace = now;
      schedtrace(debug.scheddetail > 0);
    }
  }
}

static void wake_sysmon() {
  sched.lock.lock();
  if (sched.sysmonwait.load()) {
    sched.sysmonwait.store(false);
    sched.sysmonnote.wakeup();
  }
  sched.lock.unlock();
}

// ---------------------------------------------------------------------------
// schedtrace
// ---------------------------------------------------------------------------
void schedtrace(bool detailed) GORO_NO_TSA {
  std::int64_t now = nanotime();
  sched.lock.lock();
  lock_print();
  std::fprintf(stderr,
               "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%lld spinningthreads=%d needspinning=%u "
               "idlethreads=%d runqueue=%d",
               static_cast<long long>((now - starttime) / 1000000), gomaxprocs.load(), sched.npidle.load(),
               static_cast<long long>(mcount()), sched.nmspinning.load(), sched.needspinning.load(), sched.nmidle,
               sched.runqsize);
  if (detailed) {
    std::fprintf(stderr, " gcwaiting=%s nmidlelocked=%d stopwait=%d sysmonwait=%s\n",
                 sched.gcwaiting.load() ? "true" : "false", sched.nmidlelocked, sched.stopwait,
                 sched.sysmonwait.load() ? "true" : "false");
  }
  std::int32_t np = gomaxprocs.load();
  for (std::int32_t i = 0; i < np; i++) {
    P* pp = allp[i];
    std::uint32_t h = pp->runqhead.load(), t = pp->runqtail.load();
    if (detailed) {
      M* mp = pp->m.load();
      std::fprintf(stderr, "  P%d: status=%u schedtick=%u syscalltick=%u m=", i, pp->status.load(),
                   __atomic_load_n(&pp->schedtick, __ATOMIC_RELAXED),
                   __atomic_load_n(&pp->syscalltick, __ATOMIC_RELAXED));
      if (mp) std::fprintf(stderr, "%lld", static_cast<long long>(mp->id));
      else std::fprintf(stderr, "nil");
      std::fprintf(stderr, " runqsize=%u gfreecnt=%d timerslen=0\n", t - h, pp->gfreecnt);
    } else {
      std::fprintf(stderr, " %s%u%s", i == 0 ? "[" : "", t - h, i == np - 1 ? "]\n" : "");
    }
  }
  if (!detailed) {
    unlock_print();
    sched.lock.unlock();
    return;
  }
  allmlock.lock();
  for (M* mp = allm; mp; mp = mp->alllink) {
    P* pp = mp->p;
    G* gp = __atomic_load_n(&mp->curg, __ATOMIC_RELAXED);
    std::fprintf(stderr, "  M%lld: p=", static_cast<long long>(mp->id));
    if (pp) std::fprintf(stderr, "%d", pp->id);
    else std::fprintf(stderr, "nil");
    std::fprintf(stderr, " curg=");
    if (gp) std::fprintf(stderr, "%lld", static_cast<long long>(gp->goid));
    else std::fprintf(stderr, "nil");
    std::fprintf(stderr,
                 " mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=%s blocked=%s lockedg=nil\n",
                 mp->spinning ? "true" : "false", mp->blocked ? "true" : "false");
  }
  allmlock.unlock();
  allglock.lock();
  for (G* gp = allgs; gp; gp = gp->alllink) {
    std::uint32_t s = readgstatus(gp);
    if (s == _Gdead) continue;
    M* mp = gp->m;
    std::fprintf(stderr, "  G%lld: status=%u(%s) m=", static_cast<long long>(gp->goid), s,
                 gp->waitreason && s == _Gwaiting ? gp->waitreason : "");
    if (mp) std::fprintf(stderr, "%lld", static_cast<long long>(mp->id));
    else std::fprintf(stderr, "nil");
    std::fprintf(stderr, " lockedm=nil\n");
  }
  allglock.unlock();
  unlock_print();
  sched.lock.unlock();
}

// ---------------------------------------------------------------------------
// Boot and shutdown
// ---------------------------------------------------------------------------
static std::int32_t ncpu() {
  // A mask for up to 64K CPUs, as Go's getproccount: glibc's cpu_set_t has
  // 1024 bits, and on a machine with more CPUs sched_getaffinity fails
  // with EINVAL for it, which would fall back to the online count and
  // ignore the affinity mask. Static: schedinit runs once, before any M.
  constexpr std::size_t kMaxCPUs = 64 * 1024;
  static unsigned long mask[kMaxCPUs / (8 * sizeof(unsigned long))];
  if (sched_getaffinity(0, sizeof(mask), reinterpret_cast<cpu_set_t*>(mask)) == 0) {
    int n = CPU_COUNT_S(sizeof(mask), reinterpret_cast<cpu_set_t*>(mask));
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::int32_t>(n) : 1;
}

static void schedinit() {
  parsedebugvars();
  starttime = nanotime();
  // Before the first P and M: they are described from their creation on.
  scx_attach();
#if defined(GORO_TEST_HOOKS)
  if (debug.dropwakeup) scx_dropwakeup.store(true);
#endif
  std::int32_t procs = ncpu();
  if (const char* s = std::getenv("GORO_MAXPROCS")) {
    char* end = nullptr;
    long n = std::strtol(s, &end, 10);
    if (end != s && *end == '\0' && n > 0) procs = static_cast<std::int32_t>(n);
  }
  if (procs > kMaxGomaxprocs) procs = kMaxGomaxprocs;
  sched.lock.lock();
  procresize_locked(procs);
  sched.lock.unlock();
  netpoll_init();  // also the timed sleep of an idle M waiting for timers
  preempt_init();
  sched.lastpoll.store(nanotime());
  newm(sysmon, nullptr, -1);
}

// abandon_all: after main returned and the world is stopped, every G still
// alive is abandoned: taken out of all queues and lists, never resumed, its
// stack left mapped (objects it references stay reachable for LSan).
static G* abandoned = nullptr;
static void abandon_all() GORO_REQUIRES(sched.lock) {
  while (globrunqpop()) {
  }
  setrunqsize(0);
  for (std::int32_t i = 0; i < gomaxprocs.load(); i++) {
    P* pp = allp[i];
    pp->runqhead.store(pp->runqtail.load());
    pp->runnext.store(nullptr);
    scx_ppub(pp);
  }
  allglock.lock();
  G** link = &allgs;
  while (G* gp = *link) {
    std::uint32_t s = readgstatus(gp);
    if (s != _Gdead) {
      *link = gp->alllink;
      gp->alllink = abandoned;
      abandoned = gp;
    } else {
      link = &gp->alllink;
    }
  }
  allglock.unlock();
  ngoroutines.store(0);
  // Nothing may wake an abandoned G later: drop the timers and netpoll
  // waits they left behind.
  cleartimers();
  netpoll_abandon_waiters();
}

int run_main(ClosureFn fn, void* closure) {
  std::lock_guard<std::mutex> guard(run_mu);
  if (getm()) throw_("goro::run: called from inside the runtime");
  if (!inited) {
    schedinit();
    inited = true;
  }
  // The main goroutine: not from a P's free list (we have no P here).
  G* gp = malg();
  gp->closure = closure;
  gp->fn = fn;
  gp->destroy = [](void*) {};
  std::uintptr_t top = gp->stack.hi & ~static_cast<std::uintptr_t>(15);
  gp->sp = ctx_make(top - 16, gostart, gp);
  gp->is_main = true;
  __atomic_store_n(&gp->goid, newgoid(nullptr), __ATOMIC_RELAXED);
  main_done.clear();
  ngoroutines.fetch_add(1);
  casgstatus(gp, _Gdead, _Grunnable);
  // Queue main and count an M for it in one sched.lock section: sysmon's
  // first act is a checkdead, and between a queued main and an M counted
  // for it, that checkdead would see a runnable G and no running M (the
  // #59600 shape: startm with the lock held).
  sched.lock.lock();
  main_running.store(true, std::memory_order_release);
  globrunqput(gp);
  startm(nullptr, false, true);
  sched.lock.unlock();
  wake_sysmon();

  main_done.sleep();

  // Main returned and stopped the world: abandon whatever is left, and
  // restart the world empty — every P idle, every M parked — for the next
  // run.
  sched.lock.lock();
  abandon_all();
  sched.lock.unlock();
  startTheWorld();
  worldsema_release();
  return 0;
}

}  // namespace goro::detail

namespace goro {

int maxprocs(int n) {
  using namespace detail;
  NoPreempt np;
  int prev = gomaxprocs.load();
  if (n <= 0 || n == prev) return prev;
  if (n > kMaxGomaxprocs) n = kMaxGomaxprocs;
  M* mp = getm();
  if (!mp || !getg()) {
    // Outside the runtime: takes effect at the next boot.
    if (!inited) {
      setenv("GORO_MAXPROCS", std::to_string(n).c_str(), 1);
      return prev;
    }
  }
  worldsema_acquire();
  stopTheWorld();
  sched.lock.lock();
  newprocs = n;
  sched.lock.unlock();
  startTheWorld();
  worldsema_release();
  return prev;
}

int num_goroutine() { return detail::ngoroutines.load(std::memory_order_relaxed); }

SchedLatencies sched_latencies() {
  SchedLatencies s;
  for (int b = 0; b < kSchedLatencyBuckets; b++) s.count[b] = detail::sched_lat_hist[b].load(std::memory_order_relaxed);
  return s;
}

std::int64_t sched_latency_bucket_lower(int b) {
  if (b < 4) return b;
  const int log2 = b / 4 + 1;
  return static_cast<std::int64_t>((4ULL + static_cast<unsigned>(b % 4)) << (log2 - 2));
}

std::uint64_t SchedLatencies::total() const {
  std::uint64_t n = 0;
  for (auto c : count) n += c;
  return n;
}

std::int64_t SchedLatencies::quantile_ns(double q, const SchedLatencies* base) const {
  std::uint64_t n = 0;
  for (int b = 0; b < kSchedLatencyBuckets; b++) n += count[b] - (base ? base->count[b] : 0);
  if (n == 0) return 0;
  const double want = q * static_cast<double>(n);
  std::uint64_t cum = 0;
  for (int b = 0; b < kSchedLatencyBuckets; b++) {
    cum += count[b] - (base ? base->count[b] : 0);
    if (cum > 0 && static_cast<double>(cum) >= want) return sched_latency_bucket_lower(b);
  }
  return sched_latency_bucket_lower(kSchedLatencyBuckets - 1);
}

}  // namespace goro

// ---------------------------------------------------------------------------
// Test exports
// ---------------------------------------------------------------------------
#if defined(GORO_TEST_HOOKS)
#include "export_test.h"

namespace goro::testexport {
using namespace goro::detail;

struct LocalQueue {
  P p;
  std::vector<G*> dummies;  // owned dummy Gs, indexed by id
  std::vector<int> overflow;
};

static G* dummy(LocalQueue* q, int id) {
  while (static_cast<int>(q->dummies.size()) <= id) {
    G* g = new G();
    g->goid = static_cast<std::int64_t>(q->dummies.size());
    q->dummies.push_back(g);
  }
  return q->dummies[id];
}

LocalQueue* new_local_queue() { return new LocalQueue(); }
void free_local_queue(LocalQueue* q) {
  for (G* g : q->dummies) delete g;
  delete q;
}

void runq_put(LocalQueue* q, int id, bool next) {
  G* gp = dummy(q, id);
  P* pp = &q->p;
  if (next) {
    G* old = pp->runnext.exchange(gp);
    if (!old) return;
    gp = old;
  }
  std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
  std::uint32_t t = pp->runqtail.load(std::memory_order_relaxed);
  if (t - h < kRunqSize) {
    pp->runq[t % kRunqSize].store(gp, std::memory_order_relaxed);
    pp->runqtail.store(t + 1, std::memory_order_release);
    return;
  }
  // Full: the overflow list stands in for the global queue.
  std::uint32_t n = (t - h) / 2;
  for (std::uint32_t i = 0; i < n; i++) {
    q->overflow.push_back(static_cast<int>(pp->runq[(h + i) % kRunqSize].load()->goid));
  }
  pp->runqhead.store(h + n, std::memory_order_release);
  q->overflow.push_back(static_cast<int>(gp->goid));
}

int runq_get(LocalQueue* q) {
  bool inherit;
  G* gp = runqget(&q->p, &inherit);
  return gp ? static_cast<int>(gp->goid) : -1;
}
bool runq_empty(LocalQueue* q) { return runqempty(&q->p); }
std::uint32_t runq_size(LocalQueue* q) { return q->p.runqtail.load() - q->p.runqhead.load(); }
std::vector<int> runq_overflow(LocalQueue* q) { return q->overflow; }

int runq_steal(LocalQueue* dst, LocalQueue* src, bool steal_runnext, int* stolen_count) {
  std::uint32_t before = dst->p.runqtail.load();
  G* gp = runqsteal(&dst->p, &src->p, steal_runnext);
  std::uint32_t after = dst->p.runqtail.load();
  if (stolen_count) *stolen_count = gp ? static_cast<int>(after - before) + 1 : 0;
  return gp ? static_cast<int>(gp->goid) : -1;
}

std::vector<int> steal_order(int nprocs, std::uint32_t seed) {
  RandomOrder ord;
  ord.reset(static_cast<std::uint32_t>(nprocs));
  std::vector<int> out;
  for (RandomEnum e = stealorder_start(ord, seed); !e.done(); e.next()) out.push_back(static_cast<int>(e.pos));
  return out;
}

SchedCounters sched_counters() GORO_NO_TSA {
  sched.lock.lock();
  SchedCounters c{gomaxprocs.load(), sched.npidle.load(), sched.nmspinning.load(), sched.nmidle,
                  sched.nmidlelocked, sched.nmsys, static_cast<int>(mcount()), sched.runqsize,
                  ngoroutines.load()};
  sched.lock.unlock();
  return c;
}

// sysmon_inject: make sysmon inject a fresh system G running fn, like Go's
// forcegc injection (bracketed=false) or its netpoll injection (true).
void sysmon_inject(void (*fn)(void*), void* arg, bool bracketed) {
  G* gp = malg();
  gp->closure = arg;
  gp->fn = fn;
  gp->destroy = [](void*) {};
  std::uintptr_t top = gp->stack.hi & ~static_cast<std::uintptr_t>(15);
  gp->sp = ctx_make(top - 16, gostart, gp);
  gp->is_sys = true;
  __atomic_store_n(&gp->goid, newgoid(nullptr), __ATOMIC_RELAXED);
  casgstatus(gp, _Gdead, _Gwaiting);
  sysmon_inject_bracketed.store(bracketed);
  sysmon_inject_g.store(gp);
  wake_sysmon();
}

bool sched_lock_contended() { return sched.lock.contended(); }

LockedCounts locked_counts() {
  M* mp = getm();
  return LockedCounts{mp ? mp->lockedExt : 0, mp ? mp->lockedInt : 0, mp && mp->lockedg != nullptr};
}
void wait_readable(int fd) { netpoll_wait_readable(fd); }
int netpoll_waiters() { return netpoll_nwaiters(); }

bool scx_attached() { return scx_on(); }
std::uint64_t scx_vetoes() { return goro::detail::scx_vetoes(); }
void arm_dropwakeup() { scx_dropwakeup.store(true); }
std::int64_t runnext_goid() {
  M* mp = getm();
  P* pp = mp ? mp->p : nullptr;
  G* gp = pp ? pp->runnext.load() : nullptr;
  return gp ? __atomic_load_n(&gp->goid, __ATOMIC_RELAXED) : 0;
}

}  // namespace goro::testexport
#endif

namespace goro {

void lock_os_thread() {
  using namespace detail;
  NoPreempt np;
  if (!getg()) throw_("lock_os_thread: called outside a goroutine");
  M* mp = getm();
  mp->lockedExt++;
  if (mp->lockedExt == 0) {
    mp->lockedExt--;
    goro::panic("LockOSThread nesting overflow");
  }
  dolockOSThread();
}

void unlock_os_thread() {
  using namespace detail;
  NoPreempt np;
  if (!getg()) throw_("unlock_os_thread: called outside a goroutine");
  M* mp = getm();
  if (mp->lockedExt == 0) return;
  mp->lockedExt--;
  dounlockOSThread();
}

}  // namespace goro
