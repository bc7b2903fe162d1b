// SPDX-License-Identifier: BSD-3-Clause
// goro/sync.h: RWMutex, Once and Cond, after Go's sync package. Included by
// goro/goro.h.
//
// Like Mutex and WaitGroup, every wait here parks the goroutine, never the
// thread. None of these types may be copied or moved once in use (Go's vet
// "copylocks" check, made a compile error).
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include "goro/goro.h"

namespace goro {

// ---------------------------------------------------------------------------
// RWMutex
// ---------------------------------------------------------------------------

// RWMutex is Go's sync.RWMutex: a reader/writer lock held by any number of
// readers or one writer. It prefers writers: once a writer is waiting in
// lock(), new readers block until that writer has had the lock, so a stream
// of readers cannot starve a writer. (A consequence, as in Go: a goroutine
// that already holds a read lock must not take it again recursively while a
// writer may be waiting, or it deadlocks.)
//
// A lock is not tied to a goroutine: one goroutine may lock and another
// unlock. Usable with std::unique_lock and std::shared_lock. Unlocking an
// unlocked RWMutex is a fatal error with Go's message.
class RWMutex {
 public:
  RWMutex() = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;

  // Exclusive (writer) side: Lockable.
  void lock();
  void unlock();
  bool try_lock();

  // Shared (reader) side: SharedLockable.
  void lock_shared();
  void unlock_shared();
  bool try_lock_shared();

  // Go's names.
  void rlock() { lock_shared(); }
  void runlock() { unlock_shared(); }
  bool try_rlock() { return try_lock_shared(); }

  // RLocker is Go's rw.RLocker(): a Lockable whose lock/unlock are this
  // RWMutex's read lock and unlock, e.g. for a Cond over readers.
  class RLocker {
   public:
    explicit RLocker(RWMutex& rw) : rw_(&rw) {}
    void lock() { rw_->lock_shared(); }
    void unlock() { rw_->unlock_shared(); }

   private:
    RWMutex* rw_;
  };
  RLocker rlocker() { return RLocker(*this); }

 private:
  void runlock_slow(std::int32_t r);

  Mutex w_;                             // held by the writer, pending or active
  std::uint32_t writerSem_ = 0;         // the writer waits here for readers to leave
  std::uint32_t readerSem_ = 0;         // readers wait here for the writer to leave
  std::atomic<std::int32_t> readerCount_{0};  // readers holding or waiting; see sync.cpp
  std::atomic<std::int32_t> readerWait_{0};   // departing readers the writer waits for
};

// ---------------------------------------------------------------------------
// Once
// ---------------------------------------------------------------------------

// Once is Go's sync.Once: call(f) runs f the first time it is called on
// this Once and never again. Every call returns only after that one f has
// returned, so its effects are visible to all callers. If f exits by an
// exception, the Once still counts as done (Go's rule for a panicking f).
// f must not call call() on the same Once: that deadlocks.
class Once {
 public:
  Once() = default;
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;

  template <typename F>
  void call(F&& f) {
    // The fast path must not be a CAS that lets the winner return before f
    // has finished: a loser must wait for f's effects. So the flag is only
    // set after f returns, and losers wait on m_.
    if (done_.load(std::memory_order_acquire)) return;
    call_slow(f);
  }

  // done reports whether a call has completed (f has returned).
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }

 private:
  template <typename F>
  void call_slow(F& f) {
    struct Guard {
      Once* o;
      ~Guard() {
        // Go's `defer o.done.Store(1)` inside `defer o.m.Unlock()`: done
        // is published even when f throws, before the next caller looks.
        o->done_.store(true, std::memory_order_release);
        o->m_.unlock();
      }
    };
    m_.lock();
    Guard g{this};
    if (!done_.load(std::memory_order_relaxed)) std::forward<F>(f)();
  }

  std::atomic<bool> done_{false};
  Mutex m_;
};

// ---------------------------------------------------------------------------
// Cond
// ---------------------------------------------------------------------------

namespace detail {
struct NotifyWaiter;

// Go's runtime notifyList: a ticket dispenser for Cond. See sync.cpp.
struct NotifyList {
  std::atomic<std::uint32_t> wait{0};    // ticket of the next waiter
  std::atomic<std::uint32_t> notify{0};  // ticket of the next waiter to notify
  NotifyWaiter* head = nullptr;          // parked waiters, guarded by the list's lock
  NotifyWaiter* tail = nullptr;
};
std::uint32_t notifyListAdd(NotifyList* l);
void notifyListWait(NotifyList* l, std::uint32_t t);
void notifyListNotifyOne(NotifyList* l);
void notifyListNotifyAll(NotifyList* l);
}  // namespace detail

// Cond is Go's sync.Cond: a rendezvous point for goroutines waiting for, or
// announcing, a condition. It is bound at construction to a lock L (any
// object with lock() and unlock(): a Mutex, an RWMutex, an RWMutex::RLocker)
// that must outlive it.
//
// wait() must be called with L held; it unlocks L, parks until woken by
// signal or broadcast, and relocks L before returning. Since other
// goroutines may run between the wake-up and the relock, the caller checks
// its condition in a loop:
//
//   std::unique_lock lk(mu);
//   while (!condition()) cond.wait();
//
// signal wakes the goroutine that has waited longest, broadcast wakes all
// of them; neither requires L to be held, and neither wakes a goroutine
// that began waiting after the call.
class Cond {
 public:
  template <typename L>
  explicit Cond(L& l)
      : l_(&l),
        lock_([](void* p) { static_cast<L*>(p)->lock(); }),
        unlock_([](void* p) { static_cast<L*>(p)->unlock(); }) {}
  Cond(const Cond&) = delete;
  Cond& operator=(const Cond&) = delete;

  void wait() {
    // Take the ticket while L is still held, so a signal sent after our
    // unlock (by someone who saw the condition we are about to wait for
    // change) is owed to us and cannot be lost.
    std::uint32_t t = detail::notifyListAdd(&notify_);
    unlock_(l_);
    detail::notifyListWait(&notify_, t);
    lock_(l_);
  }
  void signal() { detail::notifyListNotifyOne(&notify_); }
  void broadcast() { detail::notifyListNotifyAll(&notify_); }

 private:
  void* l_;
  void (*lock_)(void*);
  void (*unlock_)(void*);
  detail::NotifyList notify_;
};

}  // namespace goro
