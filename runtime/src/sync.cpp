// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// RWMutex and Cond, after Go's sync/rwmutex.go, sync/cond.go and the
// notifyList half of runtime/sema.go. (Once is all inline in goro/sync.h.)
//
// RWMutex is built from pieces sema.cpp already has: a Mutex that writers
// queue on, and two semaphores (detail::semacquire/semrelease) that park
// readers waiting for a writer and a writer waiting for readers. Cond is a
// ticket dispenser with its own small list of parked goroutines.
#include <atomic>
#include <cstdint>

#include "runtime.h"

namespace goro {

using detail::semacquire;
using detail::semrelease;

// ---------------------------------------------------------------------------
// RWMutex
//
// The reader count. readerCount_ counts readers that hold the lock or are
// waiting for it. A writer announces itself by subtracting
// rwmutexMaxReaders, which makes the count negative: from then on every
// arriving reader sees a negative result from its increment and parks on
// readerSem_, and the writer knows how many readers were already inside
// (the value before its subtraction). Unlock adds rwmutexMaxReaders back;
// the count is then again the number of readers, now all parked, and the
// writer wakes exactly that many.
//
// The departing readers. The readers that were inside when the writer
// arrived must leave before it may proceed. The writer adds their number to
// readerWait_; each of them, seeing a negative count in unlock_shared,
// decrements readerWait_, and the one that brings it to zero wakes the
// writer on writerSem_. The two adds can happen in either order (a reader
// may leave before the writer has added), hence the writer parks only when
// its own add leaves readerWait_ non-zero.
//
// Writers among themselves. The writer holds w_ from the start of lock()
// to the end of unlock(), so at most one writer at a time plays the game
// above; the others queue on w_ (a Mutex, with its starvation mode).
// ---------------------------------------------------------------------------
namespace {
// The most readers an RWMutex admits; the writer's bias on readerCount_.
constexpr std::int32_t rwmutexMaxReaders = 1 << 30;
}  // namespace

void RWMutex::lock_shared() {
  if (readerCount_.fetch_add(1) + 1 < 0) {
    // A writer is pending or active: wait for it to unlock.
    semacquire(&readerSem_, false);
  }
}

bool RWMutex::try_lock_shared() {
  std::int32_t c = readerCount_.load();
  for (;;) {
    if (c < 0) return false;  // a writer is pending or active
    if (readerCount_.compare_exchange_weak(c, c + 1)) return true;
  }
}

void RWMutex::unlock_shared() {
  std::int32_t r = readerCount_.fetch_sub(1) - 1;
  if (r < 0) runlock_slow(r);
}

void RWMutex::runlock_slow(std::int32_t r) {
  // r+1 is the count before our decrement: 0 with no writer, or exactly
  // -rwmutexMaxReaders with a writer, means nobody held a read lock.
  if (r + 1 == 0 || r + 1 == -rwmutexMaxReaders) detail::fatal_("sync: RUnlock of unlocked RWMutex");
  // A writer is pending: if we are the last reader it waits for, wake it.
  if (readerWait_.fetch_sub(1) - 1 == 0) semrelease(&writerSem_, false);
}

void RWMutex::lock() {
  // Exclude other writers first.
  w_.lock();
  // Announce ourselves to readers; r (the count before) is the number of
  // readers inside right now.
  std::int32_t r = readerCount_.fetch_sub(rwmutexMaxReaders);
  // Wait for them to leave (those that already left have counted
  // readerWait_ below zero; our add brings it back, see the essay above).
  if (r != 0 && readerWait_.fetch_add(r) + r != 0) semacquire(&writerSem_, false);
}

bool RWMutex::try_lock() {
  if (!w_.try_lock()) return false;
  std::int32_t zero = 0;
  if (!readerCount_.compare_exchange_strong(zero, -rwmutexMaxReaders)) {
    // Readers are inside: give up rather than wait for them.
    w_.unlock();
    return false;
  }
  return true;
}

void RWMutex::unlock() {
  // Announce to readers that there is no active writer; r is the number of
  // readers that arrived meanwhile and are parked on readerSem_.
  std::int32_t r = readerCount_.fetch_add(rwmutexMaxReaders) + rwmutexMaxReaders;
  if (r >= rwmutexMaxReaders) detail::fatal_("sync: Unlock of unlocked RWMutex");
  // Unblock them. Readers arriving from now on see a non-negative count and
  // walk in; a writer that takes w_ next waits for all of these.
  for (std::int32_t i = 0; i < r; i++) semrelease(&readerSem_, false);
  // Let other writers proceed.
  w_.unlock();
}

}  // namespace goro

// ---------------------------------------------------------------------------
// notifyList: Cond's waiters
//
// A Cond hands out tickets. wait takes the next one (notifyListAdd, an
// atomic increment of `wait`) while the caller still holds Cond's lock L,
// then unlocks L and parks in notifyListWait until its ticket has been
// notified. `notify` is the ticket of the next waiter owed a wake-up:
// signal advances it by one and readies the waiter holding that ticket;
// broadcast advances it to `wait` and readies every parked waiter.
//
// Tickets make signal exact without holding L: a waiter that has taken a
// ticket but not yet parked (it is between unlocking L and
// notifyListWait) is still owed its wake-up. When it arrives it finds its
// ticket already below `notify` and returns without parking. And a
// goroutine that takes a ticket after a signal holds a ticket at or above
// the new `notify`, so a signal never wakes a waiter that arrived after it.
//
// Tickets wrap around; comparisons are of the signed difference, which is
// right as long as fewer than 2^31 goroutines wait on one Cond.
//
// The list's lock. The public NotifyList cannot hold a runtime Lock (its
// type is internal), so each list's lock is one of a table of Locks hashed
// by the list's address, as sema.cpp does for semaphores. It is held only
// for a few pointer updates, never while parked: gopark releases it after
// the goroutine is off its stack.
// ---------------------------------------------------------------------------
namespace goro::detail {

// A parked waiter. Lives on the waiter's own stack: once the waiter has
// been readied it may return and free it, so the notifier reads what it
// needs (g, next) before calling goready.
struct NotifyWaiter {
  G* g;
  std::uint32_t ticket;
  NotifyWaiter* next;
};

namespace {

constexpr int kNotifyLockTabSize = 61;
struct alignas(64) NotifyLockPadded {
  Lock lock{LockRank::notifylist};
};
NotifyLockPadded notifylocks[kNotifyLockTabSize];

Lock* notifylock(NotifyList* l) {
  return &notifylocks[(reinterpret_cast<std::uintptr_t>(l) >> 3) % kNotifyLockTabSize].lock;
}

// less reports whether ticket a comes before ticket b, across wrap-around.
bool less(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) < 0; }

bool notifyparkcommit(G*, void* arg) GORO_NO_TSA {
  static_cast<Lock*>(arg)->unlock();
  return true;
}

}  // namespace

std::uint32_t notifyListAdd(NotifyList* l) {
  // Called with Cond's L held, but concurrent with notifiers (who may not
  // hold L), hence atomic.
  return l->wait.fetch_add(1);
}

// notifyListWait parks the calling goroutine until ticket t is notified.
// The list's lock is taken here and released by gopark once we are parked.
void notifyListWait(NotifyList* l, std::uint32_t t) GORO_NO_TSA {
  NoPreempt np;  // a runtime entry point: see preempt.cpp
  G* gp = getg();
  if (!gp) throw_("notifyListWait: called outside a goroutine");
  Lock* lk = notifylock(l);
  lk->lock();
  // Already notified (signal ran between our ticket and here)? Go on.
  if (less(t, l->notify.load())) {
    lk->unlock();
    return;
  }
  NotifyWaiter s{gp, t, nullptr};
  if (l->tail) l->tail->next = &s;
  else l->head = &s;
  l->tail = &s;
  gopark(notifyparkcommit, lk, "sync.Cond.Wait");
  // Readied by notifyListNotifyOne/All, which unlinked s first.
}

void notifyListNotifyOne(NotifyList* l) {
  NoPreempt np;  // goready must not be preempted off its P
  // Fast path: no waiter took a ticket since the last notification.
  // (A racing waiter took its ticket after this signal; it is not owed.)
  if (l->wait.load() == l->notify.load()) return;
  Lock* lk = notifylock(l);
  lk->lock();
  // Re-check under the lock: another notifier may have caught up.
  std::uint32_t t = l->notify.load();
  if (t == l->wait.load()) {
    lk->unlock();
    return;
  }
  // Ticket t is owed a wake-up whether or not its holder has parked yet;
  // advancing notify first lets a not-yet-parked holder see that.
  l->notify.store(t + 1);
  // Tickets are taken in order but waiters enqueue after a race for the
  // lock, so the list is nearly but not exactly in ticket order: search.
  for (NotifyWaiter *p = nullptr, *s = l->head; s != nullptr; p = s, s = s->next) {
    if (s->ticket != t) continue;
    NotifyWaiter* n = s->next;
    if (p) p->next = n;
    else l->head = n;
    if (l->tail == s) l->tail = p;
    G* wgp = s->g;
    lk->unlock();
    goready(wgp);  // s is gone once wgp runs: don't touch it
    return;
  }
  // The holder of t has not parked yet; it will find t < notify and not park.
  lk->unlock();
}

void notifyListNotifyAll(NotifyList* l) {
  NoPreempt np;  // goready must not be preempted off its P
  // Fast path: nobody waiting since the last notification.
  if (l->wait.load() == l->notify.load()) return;
  Lock* lk = notifylock(l);
  lk->lock();
  // Take the whole list and owe a wake-up to every ticket handed out so far
  // (the holders not parked yet will find theirs below notify).
  NotifyWaiter* s = l->head;
  l->head = l->tail = nullptr;
  l->notify.store(l->wait.load());
  lk->unlock();
  // Ready them outside the lock, reading each node before its G may run.
  while (s != nullptr) {
    NotifyWaiter* next = s->next;
    G* wgp = s->g;
    goready(wgp);
    s = next;
  }
}

}  // namespace goro::detail
