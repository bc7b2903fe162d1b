// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Runtime timers, after Go 1.21's time.go (simplified).
//
// Every P has a heap of timers. A timer is added to the heap of the P that
// adds it and is run by whoever next checks that P: its owner in
// findRunnable, a thief on stealWork's last pass, or the M that wakes from
// a timed netpoll (findRunnable sleeps in netpoll until the earliest timer
// of all Ps; wakeNetPoller breaks that sleep for an earlier timer).
//
// Go 1.21 manages timers with a lock-free status machine so that deleting
// or modifying a timer never touches another P's heap. We take the P's
// timersLock instead (a timer knows its P): simpler, and contention on one
// P's timers is rare.
#include <limits>

#include "netpoll.h"
#include "runtime.h"

namespace goro::detail {

namespace {

// 4-ary heap helpers; timersLock held.
void heap_swap(P* pp, std::uint32_t i, std::uint32_t j) GORO_NO_TSA {
  RuntimeTimer* a = pp->timers[i];
  RuntimeTimer* b = pp->timers[j];
  pp->timers[i] = b;
  pp->timers[j] = a;
  b->index = i;
  a->index = j;
}

void siftup(P* pp, std::uint32_t i) GORO_NO_TSA {
  while (i > 0) {
    std::uint32_t parent = (i - 1) / 4;
    if (pp->timers[i]->when >= pp->timers[parent]->when) break;
    heap_swap(pp, i, parent);
    i = parent;
  }
}

void siftdown(P* pp, std::uint32_t i) GORO_NO_TSA {
  std::uint32_t n = pp->ntimers;
  for (;;) {
    std::uint32_t c = 4 * i + 1;
    if (c >= n) break;
    std::uint32_t best = c;
    for (std::uint32_t k = c + 1; k < c + 4 && k < n; k++) {
      if (pp->timers[k]->when < pp->timers[best]->when) best = k;
    }
    if (pp->timers[best]->when >= pp->timers[i]->when) break;
    heap_swap(pp, i, best);
    i = best;
  }
}

void update_timer0(P* pp) GORO_NO_TSA {
  pp->timer0When.store(pp->ntimers ? pp->timers[0]->when : 0, std::memory_order_release);
}

// Pending timers over all Ps, for the sched_ext export's counters.
std::atomic<std::int32_t> ntimers_all{0};

void heap_push(P* pp, RuntimeTimer* t) GORO_NO_TSA {
  if (pp->ntimers == pp->timerscap) {
    std::uint32_t cap = pp->timerscap ? pp->timerscap * 2 : 16;
    auto** nt = new RuntimeTimer*[cap];
    for (std::uint32_t i = 0; i < pp->ntimers; i++) nt[i] = pp->timers[i];
    delete[] pp->timers;
    pp->timers = nt;
    pp->timerscap = cap;
  }
  t->index = pp->ntimers;
  pp->timers[pp->ntimers++] = t;
  ntimers_all.fetch_add(1, std::memory_order_relaxed);
  siftup(pp, t->index);
}

void heap_remove(P* pp, RuntimeTimer* t) GORO_NO_TSA {
  std::uint32_t i = t->index;
  std::uint32_t last = --pp->ntimers;
  ntimers_all.fetch_sub(1, std::memory_order_relaxed);
  if (i != last) {
    heap_swap(pp, i, last);
    siftdown(pp, i);
    siftup(pp, i);
  }
  pp->timers[last] = nullptr;
}

}  // namespace

void addtimer(RuntimeTimer* t) {
  M* mp = getm();
  P* pp = mp ? mp->p : nullptr;
  if (!pp) pp = allp[0];  // no P (a runtime thread): any P's heap will do
  if (t->status.load() != kTimerIdle) throw_("addtimer: timer already in use");
  if (t->when <= 0) t->when = 1;
  pp->timersLock.lock();
  t->pp.store(pp, std::memory_order_release);
  t->status.store(kTimerWaiting, std::memory_order_release);
  heap_push(pp, t);
  update_timer0(pp);
  // Once the lock is dropped the timer may fire and its owner reuse or
  // free it (a sleeping G's timer lives on its stack): read nothing of t
  // after the unlock.
  const std::int64_t when = t->when;
  pp->timersLock.unlock();
  wakeNetPoller(when);
}

bool deltimer(RuntimeTimer* t) {
  for (;;) {
    P* pp = t->pp.load(std::memory_order_acquire);
    if (!pp) {
      // Not in a heap: idle, or being run right now.
      if (t->waitable) {
        while (t->status.load(std::memory_order_acquire) == kTimerRunning) osyield();
      }
      return false;
    }
    pp->timersLock.lock();
    if (t->pp.load(std::memory_order_relaxed) != pp) {  // moved or fired meanwhile
      pp->timersLock.unlock();
      continue;
    }
    const bool earliest = t->index == 0;
    const std::int64_t when = t->when;
    heap_remove(pp, t);
    update_timer0(pp);
    t->pp.store(nullptr, std::memory_order_relaxed);
    t->status.store(kTimerIdle, std::memory_order_release);
    pp->timersLock.unlock();
    if (earliest) {
      pp->timer0When.fetch_add(0);  // seq_cst: ordered before timerDeleted's read
      timerDeleted(when);
    }
    return true;
  }
}

std::int64_t checkTimers(P* pp, std::int64_t now, bool* ran) {
  std::int64_t next = pp->timer0When.load(std::memory_order_acquire);
  if (next == 0) return 0;
  if (now == 0) now = nanotime();
  if (now < next) return next;
  pp->timersLock.lock();
  while (pp->ntimers > 0 && pp->timers[0]->when <= now) {
    RuntimeTimer* t = pp->timers[0];
    heap_remove(pp, t);
    update_timer0(pp);
    void (*f)(void*, std::uintptr_t) = t->f;
    void* arg = t->arg;
    std::uintptr_t seq = t->seq;
    bool waitable = t->waitable;
    t->status.store(waitable ? kTimerRunning : kTimerIdle, std::memory_order_release);
    t->pp.store(nullptr, std::memory_order_release);
    // Run f without the lock: it may ready a G, which may add timers.
    // After this point a non-waitable t may already be gone.
    pp->timersLock.unlock();
    f(arg, seq);
    if (waitable) t->status.store(kTimerIdle, std::memory_order_release);
    if (ran) *ran = true;
    pp->timersLock.lock();
  }
  next = pp->ntimers ? pp->timers[0]->when : 0;
  pp->timersLock.unlock();
  return next;
}

void moveTimers(P* dst, P* src) {
  if (dst == src) return;
  lock_pair(src->timersLock, dst->timersLock);
  while (src->ntimers > 0) {
    RuntimeTimer* t = src->timers[0];
    heap_remove(src, t);
    t->pp.store(dst, std::memory_order_release);
    heap_push(dst, t);
  }
  update_timer0(src);
  update_timer0(dst);
  unlock_pair(src->timersLock, dst->timersLock);
}

void cleartimers() {
  std::int32_t np = gomaxprocs.load();
  for (std::int32_t i = 0; i < np; i++) {
    P* pp = allp[i];
    pp->timersLock.lock();
    while (pp->ntimers > 0) {
      RuntimeTimer* t = pp->timers[0];
      heap_remove(pp, t);
      t->pp.store(nullptr, std::memory_order_release);
      t->status.store(kTimerIdle, std::memory_order_release);
      if (t->drop) t->drop(t->arg);
    }
    update_timer0(pp);
    pp->timersLock.unlock();
  }
}

std::int64_t timeSleepUntil() {
  std::int64_t next = 0;
  std::int32_t np = gomaxprocs.load();
  for (std::int32_t i = 0; i < np; i++) {
    // seq_cst (a plain load on x86-64): the poller election relies on it,
    // see timerDeleted.
    std::int64_t w = allp[i]->timer0When.load();
    if (w != 0 && (next == 0 || w < next)) next = w;
  }
  return next;
}

bool anytimers() { return timeSleepUntil() != 0; }

std::int32_t timers_pending() { return ntimers_all.load(std::memory_order_relaxed); }

}  // namespace goro::detail

// ---------------------------------------------------------------------------
// The public time API
// ---------------------------------------------------------------------------
#include <thread>

namespace goro::detail {
struct TimerImpl {
  RuntimeTimer t;
  goro::Chan<goro::Clock::time_point> c{1};
};

static void sendTime(void* arg, std::uintptr_t) {
  // Non-blocking: a buffered channel of one, as Go's timers do.
  static_cast<TimerImpl*>(arg)->c.try_send(goro::Clock::now());
}
}  // namespace goro::detail

namespace goro {
using namespace detail;

namespace {
// when_after is the time d from now, saturating: like Go's when(), a
// duration too large to add means "never" (the largest time), not an
// overflow into the past that fires at once. A negative d means now.
std::int64_t when_after(std::chrono::nanoseconds d) {
  std::int64_t now = nanotime();
  std::int64_t n = d.count() > 0 ? d.count() : 0;
  if (n > std::numeric_limits<std::int64_t>::max() - now) return std::numeric_limits<std::int64_t>::max();
  return now + n;
}
}  // namespace

void sleep_for(std::chrono::nanoseconds d) {
  NoPreempt np;
  if (d.count() <= 0) return;
  G* gp = getg();
  if (!gp) {
    std::this_thread::sleep_for(d);
    return;
  }
  RuntimeTimer t;
  t.when = when_after(d);
  t.f = [](void* arg, std::uintptr_t) { goready(static_cast<G*>(arg)); };
  t.arg = gp;
  // The timer is armed only once the G is parked (on g0), so its wake-up
  // cannot come before the park.
  gopark(
      [](G*, void* arg) {
        addtimer(static_cast<RuntimeTimer*>(arg));
        return true;
      },
      &t, "sleep");
}

Chan<Clock::time_point> after(std::chrono::nanoseconds d) {
  NoPreempt np;
  auto* a = new TimerImpl();
  a->t.when = when_after(d);
  a->t.arg = a;
  a->t.f = [](void* arg, std::uintptr_t seq) {
    sendTime(arg, seq);
    delete static_cast<TimerImpl*>(arg);  // not waitable: the runtime forgot it
  };
  a->t.drop = [](void* arg) { delete static_cast<TimerImpl*>(arg); };
  Chan<Clock::time_point> c = a->c;
  addtimer(&a->t);
  return c;
}

goro::Timer::Timer(std::chrono::nanoseconds d) : impl_(new TimerImpl()) {
  NoPreempt np;
  impl_->t.waitable = true;
  impl_->t.arg = impl_;
  impl_->t.f = sendTime;
  impl_->t.when = when_after(d);
  addtimer(&impl_->t);
}

goro::Timer::~Timer() {
  NoPreempt np;
  deltimer(&impl_->t);  // waits for a running send to finish
  delete impl_;
}

Chan<Clock::time_point> goro::Timer::chan() const { return impl_->c; }

bool goro::Timer::stop() {
  NoPreempt np;
  return deltimer(&impl_->t);
}

bool goro::Timer::reset(std::chrono::nanoseconds d) {
  NoPreempt np;
  bool active = deltimer(&impl_->t);
  impl_->t.when = when_after(d);
  addtimer(&impl_->t);
  return active;
}

}  // namespace goro
