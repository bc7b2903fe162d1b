// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Semaphores that park goroutines, and the sync primitives built on them:
// WaitGroup and Mutex, after Go's sema.go, sync/waitgroup.go and
// sync/mutex.go.
//
// A semaphore is a uint32 in user memory; waiters are kept in a table of
// 251 buckets hashed by address (Go uses a treap per bucket to keep one
// address's waiters together; a bucket here holds a plain list and
// dequeue scans it, which is fine at the waiter counts sync sees).
#include <cstdint>

#include "runtime.h"

namespace goro::detail {

namespace {

struct SemaWaiter {
  G* g;
  std::uint32_t* addr;
  SemaWaiter* next;
  SemaWaiter* prev;
  std::uint32_t ticket;  // 1: the releaser handed the semaphore to us
};

struct SemaRoot {
  Lock lock{LockRank::semaroot};
  SemaWaiter* head = nullptr;
  SemaWaiter* tail = nullptr;
  std::atomic<std::uint32_t> nwait{0};  // waiters, read without the lock
};

constexpr int kSemTabSize = 251;
struct alignas(64) SemaRootPadded {
  SemaRoot root;
};
SemaRootPadded semtable[kSemTabSize];

SemaRoot* semroot(std::uint32_t* addr) {
  return &semtable[(reinterpret_cast<std::uintptr_t>(addr) >> 3) % kSemTabSize].root;
}

bool cansemacquire(std::uint32_t* addr) {
  std::atomic_ref<std::uint32_t> a(*addr);
  for (;;) {
    std::uint32_t v = a.load();
    if (v == 0) return false;
    if (a.compare_exchange_weak(v, v - 1)) return true;
  }
}

void queue(SemaRoot* root, SemaWaiter* s, bool lifo) {
  s->next = s->prev = nullptr;
  if (lifo) {
    // Put s first among waiters for the same address (Mutex uses this for
    // a waiter that was woken and lost the race again).
    SemaWaiter* t = root->head;
    while (t && t->addr != s->addr) t = t->next;
    if (t) {
      s->next = t;
      s->prev = t->prev;
      if (t->prev) t->prev->next = s;
      else root->head = s;
      t->prev = s;
      return;
    }
  }
  s->prev = root->tail;
  if (root->tail) root->tail->next = s;
  else root->head = s;
  root->tail = s;
}

SemaWaiter* dequeue(SemaRoot* root, std::uint32_t* addr) {
  for (SemaWaiter* s = root->head; s; s = s->next) {
    if (s->addr != addr) continue;
    if (s->prev) s->prev->next = s->next;
    else root->head = s->next;
    if (s->next) s->next->prev = s->prev;
    else root->tail = s->prev;
    s->next = s->prev = nullptr;
    return s;
  }
  return nullptr;
}

// The root's lock is taken by the G and released on g0 after the park.
bool semaparkcommit(G*, void* arg) GORO_NO_TSA {
  static_cast<SemaRoot*>(arg)->lock.unlock();
  return true;
}

}  // namespace

void semacquire(std::uint32_t* addr, bool lifo, int) GORO_NO_TSA {
  NoPreempt np;
  if (cansemacquire(addr)) return;
  if (!getg()) throw_("semacquire: called outside a goroutine");
  SemaRoot* root = semroot(addr);
  SemaWaiter s{getg(), addr, nullptr, nullptr, 0};
  for (;;) {
    root->lock.lock();
    // Add ourselves to nwait to disable the fast path in semrelease.
    root->nwait.fetch_add(1);
    if (cansemacquire(addr)) {
      root->nwait.fetch_sub(1);
      root->lock.unlock();
      return;
    }
    queue(root, &s, lifo);
    gopark(semaparkcommit, root, "semacquire");
    if (s.ticket != 0 || cansemacquire(addr)) return;
  }
}

void semrelease(std::uint32_t* addr, bool handoff) {
  detail::NoPreempt np;
  SemaRoot* root = semroot(addr);
  std::atomic_ref<std::uint32_t>(*addr).fetch_add(1);
  // Easy case: no waiters? (The check must come after the increment, to
  // pair with semacquire's increment-then-check.)
  if (root->nwait.load() == 0) return;
  root->lock.lock();
  if (root->nwait.load() == 0) {
    root->lock.unlock();
    return;
  }
  SemaWaiter* s = dequeue(root, addr);
  if (s) root->nwait.fetch_sub(1);
  root->lock.unlock();
  if (!s) return;
  bool handed = handoff && cansemacquire(addr);
  if (handed) s->ticket = 1;
  G* gp = s->g;
  goready(gp);  // s lives on gp's stack: gone once gp runs, don't touch it
  if (handed && getg()) {
    // Direct hand-off: give the rest of our time slice to the waiter, so a
    // starving Mutex waiter takes the lock at once.
    goyield();
  }
}

}  // namespace goro::detail

namespace goro {

using detail::semacquire;
using detail::semrelease;

// ---------------------------------------------------------------------------
// WaitGroup
// ---------------------------------------------------------------------------
void WaitGroup::add(int delta) {
  detail::NoPreempt np;
  std::atomic_ref<std::uint64_t> st(state_);
  std::uint64_t state = st.fetch_add(static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)) << 32) +
                        (static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)) << 32);
  auto v = static_cast<std::int32_t>(state >> 32);
  auto w = static_cast<std::uint32_t>(state);
  if (v < 0) goro::panic("sync: negative WaitGroup counter");
  if (w != 0 && delta > 0 && v == delta) goro::panic("sync: WaitGroup misuse: Add called concurrently with Wait");
  if (v > 0 || w == 0) return;
  // Counter is 0 and there are waiters: nobody can change the state now
  // except by misuse, which this check catches best-effort.
  if (st.load() != state) goro::panic("sync: WaitGroup misuse: Add called concurrently with Wait");
  st.store(0);
  for (; w != 0; w--) semrelease(&sema_, false);
}

void WaitGroup::wait() {
  detail::NoPreempt np;
  std::atomic_ref<std::uint64_t> st(state_);
  for (;;) {
    std::uint64_t state = st.load();
    if (static_cast<std::int32_t>(state >> 32) == 0) return;
    if (st.compare_exchange_weak(state, state + 1)) {
      semacquire(&sema_, false);
      if (st.load() != 0) goro::panic("sync: WaitGroup is reused before previous Wait has returned");
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Mutex
//
// Mutex fairness. The mutex has two modes: normal and starvation. In normal
// mode waiters queue FIFO, but a woken waiter competes with newly arriving
// goroutines, which have the advantage of already running on a CPU — so a
// woken waiter often loses. A waiter that fails to get the mutex for more
// than 1 ms switches the mutex to starvation mode: ownership is then handed
// directly from the unlocker to the waiter at the front of the queue, and
// new arrivals queue at the tail without trying. Starvation mode ends when
// the waiter that gets the mutex is the last one, or waited under 1 ms.
// Normal mode performs much better (a goroutine can take the mutex many
// times in a row even with blocked waiters); starvation mode bounds the
// tail latency.
// ---------------------------------------------------------------------------
namespace {
constexpr std::int32_t mutexLocked = 1;
constexpr std::int32_t mutexWoken = 2;
constexpr std::int32_t mutexStarving = 4;
constexpr std::int32_t mutexWaiterShift = 3;
constexpr std::int64_t starvationThresholdNs = 1000000;

bool canSpin(int iter) {
  using namespace detail;
  // Spin only a few times, on a multicore machine, when at least one other
  // P is running and ours has no other work (spinning would delay it).
  if (iter >= 4 || gomaxprocs.load() <= 1) return false;
  if (gomaxprocs.load() <= sched.npidle.load() + sched.nmspinning.load() + 1) return false;
  M* mp = getm();
  if (!mp || !mp->p) return false;
  P* pp = mp->p;
  return pp->runqhead.load() == pp->runqtail.load() && pp->runnext.load() == nullptr;
}
void doSpin() {
  for (int i = 0; i < 30; i++) __builtin_ia32_pause();
}
}  // namespace

void Mutex::lock() {
  std::atomic_ref<std::int32_t> st(state_);
  std::int32_t zero = 0;
  if (st.compare_exchange_strong(zero, mutexLocked, std::memory_order_acquire)) return;
  lock_slow();
}

bool Mutex::try_lock() {
  std::atomic_ref<std::int32_t> st(state_);
  std::int32_t old = st.load(std::memory_order_relaxed);
  if (old & (mutexLocked | mutexStarving)) return false;
  // There may be a goroutine waiting for the mutex, but we are running now
  // and can try to grab it before it wakes.
  return st.compare_exchange_strong(old, old | mutexLocked, std::memory_order_acquire);
}

void Mutex::lock_slow() {
  detail::NoPreempt np;
  std::atomic_ref<std::int32_t> st(state_);
  std::int64_t waitStartTime = 0;
  bool starving = false;
  bool awoke = false;
  int iter = 0;
  std::int32_t old = st.load();
  for (;;) {
    // Don't spin in starvation mode: ownership is handed off to waiters.
    if ((old & (mutexLocked | mutexStarving)) == mutexLocked && canSpin(iter)) {
      // Set the woken flag so Unlock doesn't wake other blocked goroutines.
      if (!awoke && (old & mutexWoken) == 0 && (old >> mutexWaiterShift) != 0 &&
          st.compare_exchange_strong(old, old | mutexWoken)) {
        awoke = true;
      }
      doSpin();
      iter++;
      old = st.load();
      continue;
    }
    std::int32_t nw = old;
    // Don't try to acquire a starving mutex: new arrivals must queue.
    if ((old & mutexStarving) == 0) nw |= mutexLocked;
    if (old & (mutexLocked | mutexStarving)) nw += 1 << mutexWaiterShift;
    // Switch to starvation mode if the mutex is still locked: Unlock
    // expects starving mutexes to have waiters.
    if (starving && (old & mutexLocked)) nw |= mutexStarving;
    if (awoke) {
      if ((nw & mutexWoken) == 0) detail::throw_("sync: inconsistent mutex state");
      nw &= ~mutexWoken;
    }
    if (st.compare_exchange_strong(old, nw, std::memory_order_acq_rel)) {
      if ((old & (mutexLocked | mutexStarving)) == 0) break;  // locked with CAS
      // If we were already waiting before, queue at the front.
      bool queueLifo = waitStartTime != 0;
      if (waitStartTime == 0) waitStartTime = detail::nanotime();
      semacquire(&sema_, queueLifo, 1);
      starving = starving || detail::nanotime() - waitStartTime > starvationThresholdNs;
      old = st.load();
      if (old & mutexStarving) {
        // The mutex was handed off to us; its state is inconsistent (locked
        // not set, we still counted as a waiter): fix it.
        if ((old & (mutexLocked | mutexWoken)) || (old >> mutexWaiterShift) == 0) {
          detail::throw_("sync: inconsistent mutex state");
        }
        std::int32_t delta = mutexLocked - (1 << mutexWaiterShift);
        if (!starving || (old >> mutexWaiterShift) == 1) {
          // Exit starvation mode: we are the last waiter, or waited briefly.
          delta -= mutexStarving;
        }
        st.fetch_add(delta, std::memory_order_acq_rel);
        break;
      }
      awoke = true;
      iter = 0;
    } else {
      old = st.load();
    }
  }
}

void Mutex::unlock() {
  std::atomic_ref<std::int32_t> st(state_);
  std::int32_t nw = st.fetch_sub(mutexLocked, std::memory_order_release) - mutexLocked;
  if (nw != 0) unlock_slow(nw);
}

void Mutex::unlock_slow(std::int32_t nw) {
  detail::NoPreempt np;
  std::atomic_ref<std::int32_t> st(state_);
  if (((nw + mutexLocked) & mutexLocked) == 0) detail::fatal_("sync: unlock of unlocked mutex");
  if ((nw & mutexStarving) == 0) {
    std::int32_t old = nw;
    for (;;) {
      // Nobody to wake, or someone already woken/locked it: done.
      if ((old >> mutexWaiterShift) == 0 || (old & (mutexLocked | mutexWoken | mutexStarving))) return;
      // Grab the right to wake someone.
      nw = (old - (1 << mutexWaiterShift)) | mutexWoken;
      if (st.compare_exchange_strong(old, nw)) {
        semrelease(&sema_, false);
        return;
      }
      old = st.load();
    }
  } else {
    // Starving mode: hand ownership to the next waiter and yield our time
    // slice so it can start running at once. mutexLocked is not set: the
    // waiter sets it after waking; new arrivals see mutexStarving and queue.
    semrelease(&sema_, true);
  }
}

}  // namespace goro
