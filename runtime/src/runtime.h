// SPDX-License-Identifier: BSD-3-Clause
// Internal definitions of the goro runtime: Gs, Ms, Ps, the scheduler's
// global state, and the low-level primitives they are built from.
//
// Glossary (as in Go's runtime):
//   G  a goroutine: a stack, a saved context, a status.
//   M  a worker thread ("machine"). An M runs Gs only while it holds a P.
//   P  a processor: the right to run goroutine code, plus the resources
//      for it (a local run queue, a free-G cache). There are exactly
//      gomaxprocs Ps.
//   g0 every M's own thread stack, where the scheduler itself runs.
//
// Lock discipline: every runtime lock, what it guards and the order in
// which they nest is the one table in lockrank.h (checked in checked
// builds). Besides the locks: a P's local run queue is written only by the
// M that owns the P and read (stolen from) by anyone, lock-free; the
// atomics nmspinning/npidle/needspinning are also read without sched.lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "goro/goro.h"
#include "lockrank.h"

#if defined(__clang__)
#define GORO_CAPABILITY(x) __attribute__((capability(x)))
#define GORO_GUARDED_BY(x) __attribute__((guarded_by(x)))
#define GORO_REQUIRES(...) __attribute__((requires_capability(__VA_ARGS__)))
#define GORO_ACQUIRE(...) __attribute__((acquire_capability(__VA_ARGS__)))
#define GORO_RELEASE(...) __attribute__((release_capability(__VA_ARGS__)))
#define GORO_TRY_ACQUIRE(...) __attribute__((try_acquire_capability(__VA_ARGS__)))
#define GORO_NO_TSA __attribute__((no_thread_safety_analysis))
#else
#define GORO_CAPABILITY(x)
#define GORO_GUARDED_BY(x)
#define GORO_REQUIRES(...)
#define GORO_ACQUIRE(...)
#define GORO_RELEASE(...)
#define GORO_TRY_ACQUIRE(...)
#define GORO_NO_TSA
#endif

#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif

namespace goro::detail {

// ---------------------------------------------------------------------------
// Fatal errors
// ---------------------------------------------------------------------------

// throw_ reports a runtime invariant failure: "fatal error: <msg>", exit 2.
// The message is a constant naming the function, so it can be grepped.
[[noreturn]] void throw_(const char* msg);
// fatal_ reports a user error the runtime cannot continue from (deadlock):
// same format and exit status as throw_, without the "runtime:" framing.
[[noreturn]] void fatal_(const char* msg);

#define GORO_ASSERT(cond, msg) \
  do {                         \
    if (__builtin_expect(!(cond), 0)) ::goro::detail::throw_(msg); \
  } while (0)

std::int64_t nanotime();
void usleep_(std::uint32_t us);
void osyield();

// ---------------------------------------------------------------------------
// Lock: a futex mutex that spins briefly, then sleeps. In checked builds
// (test hooks or assertions on) it records its owner thread so that
// "sched.lock must be held" can be asserted; the release library skips the
// bookkeeping (a thread-id lookup per lock: 15-20% of a gosched).
// ---------------------------------------------------------------------------
#if defined(GORO_TEST_HOOKS) || !defined(NDEBUG)
#define GORO_CHECKED_LOCKS 1
#endif
class GORO_CAPABILITY("mutex") Lock {
 public:
  explicit constexpr Lock(LockRank rank) : rank_(rank) {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  void lock() GORO_ACQUIRE();
  void unlock() GORO_RELEASE();
  bool try_lock() GORO_TRY_ACQUIRE(true);
  bool held_by_me() const;
  bool contended() const { return key_.load(std::memory_order_relaxed) == 2; }
  void assert_held() const { GORO_ASSERT(held_by_me(), "lock not held"); }

 private:
  std::atomic<std::uint32_t> key_{0};  // 0 unlocked, 1 locked, 2 contended
  const LockRank rank_;                // its place in the lock order (lockrank.h)
  std::atomic<long> owner_{0};         // gettid-like id of the holder
};

static_assert(sizeof(Lock) == 16, "the rank lives in the key's padding");

// Two locks of one multi rank (lockrank.h), taken in address order as the
// lock order requires, and released.
inline void lock_pair(Lock& a, Lock& b) GORO_ACQUIRE(a, b) GORO_NO_TSA {
  Lock* lo = &a < &b ? &a : &b;
  Lock* hi = &a < &b ? &b : &a;
  lo->lock();
  hi->lock();
}
inline void unlock_pair(Lock& a, Lock& b) GORO_RELEASE(a, b) GORO_NO_TSA {
  a.unlock();
  b.unlock();
}

// The sched_ext export's mapped block (scx_export.h); null when standalone.
}  // namespace goro::detail
struct goro_proc_export;
namespace goro::detail {
extern std::atomic<goro_proc_export*> scx_export;
void scx_lockheld_slow(bool held);

// SchedLock: the Lock of sched.lock, which also keeps the LOCKHELD flag of
// the holder's M record in the sched_ext export (scx_goro.h, "M records").
// Standalone, that is one predictable branch per lock and unlock; no other
// Lock pays anything. The flag is dropped before the lock is, so an M that
// takes this one next (a waker about to write STARTING into the word of an
// M it took off the idle list) never races the previous holder's store.
class GORO_CAPABILITY("mutex") SchedLock {
 public:
  constexpr SchedLock() : l_(LockRank::sched) {}
  void lock() GORO_ACQUIRE() GORO_NO_TSA {
    l_.lock();
    if (__builtin_expect(scx_export.load(std::memory_order_relaxed) != nullptr, 0)) scx_lockheld_slow(true);
  }
  void unlock() GORO_RELEASE() GORO_NO_TSA {
    if (__builtin_expect(scx_export.load(std::memory_order_relaxed) != nullptr, 0)) scx_lockheld_slow(false);
    l_.unlock();
  }
  bool held_by_me() const { return l_.held_by_me(); }
  bool contended() const { return l_.contended(); }
  void assert_held() const { l_.assert_held(); }

 private:
  Lock l_;
};

// Note: a one-shot event. Exactly one thread sleeps on it; another wakes it.
// noteclear must be called before reuse.
struct Note {
  std::atomic<std::uint32_t> key{0};
  void clear() { key.store(0, std::memory_order_relaxed); }
  void wakeup();
  void sleep();
  // Returns true if woken, false on timeout. ns < 0 sleeps forever.
  bool tsleep(std::int64_t ns);
};

long current_thread_id();

// ---------------------------------------------------------------------------
// Stacks and contexts
// ---------------------------------------------------------------------------
struct Stack {
  std::uintptr_t lo = 0;  // lowest usable address (above the guard page)
  std::uintptr_t hi = 0;  // one past the highest usable address
};

extern "C" void goro_ctx_switch(void** save_sp, void* load_sp);
// Builds a context on [lo, top) that starts entry(arg). Returns its sp.
void* ctx_make(std::uintptr_t top, void (*entry)(void*), void* arg);

// A stack region: the mapping that holds a G's stack and, at its top, the
// G itself. Allocated once, reused through the free-G lists.
struct StackRegion {
  void* base;          // start of the mapping (or slab slot)
  std::size_t size;    // mapping size including any guard page
  bool guarded;        // a PROT_NONE guard page sits below the stack
};
StackRegion stackalloc(std::size_t size);
std::size_t stack_size_default();
constexpr std::uint64_t kStackCanary = 0x676f726f53544b21ull;  // "goroSTK!"

// ---------------------------------------------------------------------------
// G
// ---------------------------------------------------------------------------
enum GStatus : std::uint32_t {
  _Gidle = 0,      // just allocated, not yet initialised
  _Grunnable = 1,  // on a run queue; not executing user code
  _Grunning = 2,   // executing user code; has an M and a P
  _Gsyscall = 3,   // in a blocking call; has an M, no P
  _Gwaiting = 4,   // parked (channel, semaphore, ...); on some wait queue
  _Gdead = 6,      // unused: just exited or on a free list
};
const char* gstatus_name(std::uint32_t s);

struct M;
struct P;
struct Sudog;

using UnlockFn = bool (*)(struct G* gp, void* arg);

struct G {
  void* sp = nullptr;  // saved stack pointer while not running
  Stack stack;
  StackRegion region{};
  std::atomic<std::uint32_t> atomicstatus{_Gidle};
  std::int64_t goid = 0;
  M* m = nullptr;  // the M running this G, while running
  G* schedlink = nullptr;  // run queue / free list link
  G* alllink = nullptr;    // allgs list
  bool is_main = false;
  bool is_sys = false;        // a runtime-internal G (not counted)
  std::atomic<bool> preempt{false};  // preemption requested at next safe point
  const char* waitreason = nullptr;
  // Channel wait bookkeeping (chan.cpp)
  Sudog* waiting = nullptr;
  void* param = nullptr;
  std::atomic<std::uint32_t> selectDone{0};
  // Entry closure, living at the top of this G's stack.
  ClosureFn fn = nullptr;
  ClosureFn destroy = nullptr;
  void* closure = nullptr;
  M* lockedm = nullptr;  // lock_os_thread: the M this G is wired to
  // > 0 while the G runs inside the runtime: no asynchronous preemption.
  std::atomic<std::int32_t> nopreempt{0};
  // Scheduling latency sampling (goro::sched_latencies): whether this
  // stint is timed, the stint count, and when it became runnable.
  bool tracking = false;
  std::uint8_t tracking_seq = 0;
  std::int64_t tracking_stamp = 0;
  // Sanitizer fiber state.
  void* tsan_fiber = nullptr;
  void* asan_fake_stack = nullptr;
};

// ---------------------------------------------------------------------------
// P
// ---------------------------------------------------------------------------
enum PStatus : std::uint32_t {
  _Pidle = 0,
  _Prunning = 1,
  _Psyscall = 2,
  _Pgcstop = 3,
  _Pdead = 4,
};

constexpr std::uint32_t kRunqSize = 256;

struct P {
  std::int32_t id = 0;
  std::atomic<std::uint32_t> status{_Pgcstop};
  P* link = nullptr;  // idle list link, guarded by sched.lock
  std::uint32_t schedtick = 0;    // incremented on every scheduler call
  std::uint32_t syscalltick = 0;  // incremented on every system call
  // sysmon's observations: last schedtick/syscalltick seen and when.
  std::uint32_t sysmon_schedtick = 0;
  std::int64_t sysmon_schedwhen = 0;
  std::uint32_t sysmon_syscalltick = 0;
  std::int64_t sysmon_syscallwhen = 0;
  std::atomic<M*> m{nullptr};  // back-link to the owning M (null if idle)

  // The local run queue: a ring written only by the owner (tail), consumed
  // by the owner and by stealers (head, with CAS). runnext is the G readied
  // by the current G, to run next and inherit the time slice.
  std::atomic<std::uint32_t> runqhead{0};
  std::atomic<std::uint32_t> runqtail{0};
  std::atomic<G*> runq[kRunqSize];
  std::atomic<G*> runnext{nullptr};

  // Free Gs (status _Gdead), owned by this P.
  G* gfree = nullptr;
  std::int32_t gfreecnt = 0;

  // goid cache: a batch of ids taken from sched.goidgen.
  std::int64_t goidcache = 0;
  std::int64_t goidcacheend = 0;

  // Timers: a 4-ary min-heap on `when`, guarded by timersLock. timer0When
  // is the earliest `when` (0 if none), readable without the lock.
  Lock timersLock{LockRank::timers};
  struct RuntimeTimer** timers GORO_GUARDED_BY(timersLock) = nullptr;
  std::uint32_t ntimers GORO_GUARDED_BY(timersLock) = 0;
  std::uint32_t timerscap GORO_GUARDED_BY(timersLock) = 0;
  std::atomic<std::int64_t> timer0When{0};
};

// ---------------------------------------------------------------------------
// Timers (time.cpp)
// ---------------------------------------------------------------------------
enum TimerStatus : std::uint32_t {
  kTimerIdle = 0,     // in no heap
  kTimerWaiting = 1,  // in the heap of `pp`
  kTimerRunning = 2,  // popped; f is being called
};

struct RuntimeTimer {
  std::int64_t when = 0;
  // Runs on g0 (with a P); must not block. seq is the timer's seq at the
  // time it was armed (lets reused owners recognise stale firings).
  void (*f)(void* arg, std::uintptr_t seq) = nullptr;
  void* arg = nullptr;
  std::uintptr_t seq = 0;
  // Called instead of f when the timer is dropped unfired (goro::run's
  // end), for timers that own their memory.
  void (*drop)(void* arg) = nullptr;
  // waitable: deltimer waits for a running f to return (the owner may free
  // the timer afterwards). A non-waitable timer is forgotten by the runtime
  // before f is called (sleep's timer lives on the sleeper's stack).
  bool waitable = false;
  std::atomic<P*> pp{nullptr};
  std::atomic<std::uint32_t> status{kTimerIdle};
  std::uint32_t index = 0;  // position in pp's heap
};

// addtimer adds t to the current P's heap (t must be idle).
void addtimer(RuntimeTimer* t);
// deltimer removes t; true if it was removed before it fired.
bool deltimer(RuntimeTimer* t);
// checkTimers runs pp's expired timers. Returns the next `when` (0: none).
std::int64_t checkTimers(P* pp, std::int64_t now, bool* ran);
// moveTimers moves every timer of src onto dst (procresize).
void moveTimers(P* dst, P* src);
// Drop every timer of every P without running it (goro::run's end).
void cleartimers();
// Earliest timer over all Ps (0: none).
std::int64_t timeSleepUntil();
bool anytimers();
std::int32_t timers_pending();  // timers in all Ps' heaps
// The runtime's random numbers (Go's fastrand/fastrandn): per-M wyrand,
// for steal order and select's poll order.
std::uint32_t fastrand();
inline std::uint32_t fastrandn(std::uint32_t n) {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(fastrand()) * n) >> 32);
}
void wakeNetPoller(std::int64_t when);
// timerDeleted: the earliest timer of a P, due at `when`, was removed. If it
// was the last timer and an M is blocked in netpoll until exactly then,
// break the poll (Go 1.21 lets it sleep on; see findRunnable).
void timerDeleted(std::int64_t when);

// ---------------------------------------------------------------------------
// M
// ---------------------------------------------------------------------------
struct M {
  std::int64_t id = 0;
  void* g0sp = nullptr;       // saved scheduler (g0) context
  Stack g0stack;              // this thread's own stack (for sanitizers)
  void* g0_tsan_fiber = nullptr;
  void* g0_asan_fake_stack = nullptr;
  G* curg = nullptr;          // the G running on this M, if any
  P* p = nullptr;             // attached P (null if not running Go code)
  P* nextp = nullptr;         // P to acquire when woken
  P* oldp = nullptr;          // P held before entering a syscall
  bool spinning = false;      // looking for work without finding any yet
  bool blocked = false;       // parked on park
  Note park;
  M* schedlink = nullptr;     // idle list link, guarded by sched.lock
  M* alllink = nullptr;
  void (*mstartfn)() = nullptr;
  long tid = 0;
  std::uint64_t fastrand = 0;
  G* lockedg = nullptr;          // lock_os_thread: the G wired to this M
  std::uint32_t lockedExt = 0;   // lock_os_thread nesting (user calls)
  std::uint32_t lockedInt = 0;   // runtime-internal locks to the thread
  bool exiting = false;          // the thread ends (a G exited while locked)
  std::atomic<bool> signalPending{false};  // a preemption signal is on its way

  // The action to perform on g0 after the current G switched away:
  // park_m, gosched_m, goexit0, ... (Go's mcall).
  void (*mcall_fn)(G*) = nullptr;
  UnlockFn waitunlockf = nullptr;
  void* waitlock = nullptr;

  // The sched_ext export (scx_export.h): this M's record (-1: none) and
  // the shadow of its word. scxidx is set before the thread starts; the
  // rest is written by the M's own thread only.
  std::int32_t scxidx = -1;
  std::uint8_t scxstate = 0;      // enum goro_m_state
  bool scxlockheld = false;       // holds sched.lock
  bool scxinjecting = false;      // sysmon: injecting netpoll Gs (GORO_MF_INJECTING)
  std::int16_t scxcarry = -1;     // id of the P carried for another M, -1: none
  std::uint32_t scxstores = 0;    // the word's store count (diagnostics)
  // The word as last stored into the block (by this M, or STARTING by its
  // waker): what a re-attach copies into a new block.
  std::atomic<std::uint64_t> scxword{0};
};

// ---------------------------------------------------------------------------
// Global scheduler state
// ---------------------------------------------------------------------------
struct Sched {
  SchedLock lock;

  std::atomic<std::int64_t> goidgen{0};

  M* midle GORO_GUARDED_BY(lock) = nullptr;  // idle Ms waiting for work
  std::int32_t nmidle GORO_GUARDED_BY(lock) = 0;
  std::int32_t nmidlelocked GORO_GUARDED_BY(lock) = 0;
  std::int64_t mnext GORO_GUARDED_BY(lock) = 0;  // Ms created so far, next id
  std::int32_t maxmcount GORO_GUARDED_BY(lock) = 10000;
  std::int32_t nmsys GORO_GUARDED_BY(lock) = 0;    // system Ms (sysmon)
  std::int64_t nmfreed GORO_GUARDED_BY(lock) = 0;  // Ms that exited

  P* pidle GORO_GUARDED_BY(lock) = nullptr;
  std::atomic<std::int32_t> npidle{0};
  std::atomic<std::int32_t> nmspinning{0};
  std::atomic<std::uint32_t> needspinning{0};

  // The global run queue.
  G* runqhead GORO_GUARDED_BY(lock) = nullptr;
  G* runqtail GORO_GUARDED_BY(lock) = nullptr;
  std::int32_t runqsize GORO_GUARDED_BY(lock) = 0;

  // Stop-the-world.
  std::atomic<bool> gcwaiting{false};
  std::int32_t stopwait GORO_GUARDED_BY(lock) = 0;
  Note stopnote;

  // sysmon's deep sleep.
  std::atomic<bool> sysmonwait{false};
  Note sysmonnote;

  std::atomic<std::int64_t> lastpoll{0};   // 0: an M is blocked in netpoll
  std::atomic<std::int64_t> pollUntil{0};  // when that M's poll returns
};

extern Sched sched;
extern std::atomic<std::int32_t> gomaxprocs;
extern P** allp;  // [gomaxprocs]; replaced only with the world stopped

// The current M and G of this thread. Always read them through getm()/getg():
// a G may resume on another thread after any switch, and the compiler must
// not reuse a thread-local address computed before it.
M* getm();
G* getg();

// ---------------------------------------------------------------------------
// Scheduler entry points used across files
// ---------------------------------------------------------------------------

// gopark puts the current G into _Gwaiting and switches to the scheduler.
// unlockf(gp, lock) runs on g0 after the switch; if it returns false the G
// is made runnable again at once.
void gopark(UnlockFn unlockf, void* lock, const char* reason);
// goready makes gp runnable, into the current P's runnext.
void goready(G* gp);
// NoPreempt marks a runtime entry point that runs on a goroutine: while one
// is active the goroutine is not preempted asynchronously (preempt.cpp).
struct NoPreempt {
  G* gp;
  // Only the G itself writes its count, and only a signal handler on the
  // same thread reads it: a plain load and store (no locked RMW) suffice,
  // with signal fences keeping the compiler from moving them.
  NoPreempt() : gp(getg()) {
    if (gp) {
      gp->nopreempt.store(gp->nopreempt.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }
  ~NoPreempt() {
    if (gp) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      gp->nopreempt.store(gp->nopreempt.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }
  }
  NoPreempt(const NoPreempt&) = delete;
  NoPreempt& operator=(const NoPreempt&) = delete;
};

// For the signal handler: this thread's M and G (direct TLS reads), and how
// many runtime Locks it holds.
M* m_of_thread();
G* g_of_thread();
int locks_held_by_thread();
void preempt_init();
void preempt_m(M* mp);
extern std::atomic<bool> async_preempt_enabled;
void lock_os_thread_internal();
void unlock_os_thread_internal();
void gosched_preempted();

// goyield: like gosched, but the G goes to the tail of the local queue, so
// a G just readied into runnext runs first (a direct hand-off).
void goyield();
// Safe point: if a preemption or stop-the-world is pending, yield.
void checkpreempt();

void lock_print();
void unlock_print();

// Debug settings (GORO_DEBUG).
struct DebugVars {
  std::int32_t schedtrace = 0;   // ms between SCHED lines; 0 off
  std::int32_t scheddetail = 0;
  std::int32_t startmlegacy = 0; // pre-#59600 lock handling (test hooks only)
  std::int32_t stacksize_kb = 0;
  std::int32_t asyncpreemptoff = 0;
  std::int32_t scx = 1;          // 0: never attach to scx_goro
  std::int32_t scxdebug = 0;     // 1: one line per attach outcome and checkdead veto
  std::int32_t dropwakeup = 0;   // test hooks only: drop the next idle M's wake-up
};
extern DebugVars debug;
void parsedebugvars();
void schedtrace(bool detailed);

}  // namespace goro::detail
