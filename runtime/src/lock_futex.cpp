// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Lock and Note on Linux futexes.
//
// The runtime's own locks must not park goroutines (they are taken on g0 and
// by threads without a P), so they are thread-level: a short spin, a few
// yields, then a futex sleep — the shape of Go's lock_futex.go, because a
// futex round trip costs ~16 µs here while a spin on a cache line costs
// well under one.
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "runtime.h"

namespace goro::detail {

namespace {
thread_local int t_locks = 0;  // runtime Locks held by this thread
long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op | FUTEX_PRIVATE_FLAG, val, ts,
                 nullptr, 0);
}
thread_local long t_tid = 0;
}  // namespace

int locks_held_by_thread() { return t_locks; }

long current_thread_id() {
  if (t_tid == 0) t_tid = ::syscall(SYS_gettid);
  return t_tid;
}

std::int64_t nanotime() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void usleep_(std::uint32_t us) { ::usleep(us); }
void osyield() { sched_yield(); }

static inline void procyield(int n) {
  for (int i = 0; i < n; i++) __builtin_ia32_pause();
}

void Lock::lock() {
  t_locks++;
  std::uint32_t v = 0;
  if (key_.compare_exchange_strong(v, 1, std::memory_order_acquire)) {
#if defined(GORO_CHECKED_LOCKS)
    owner_.store(current_thread_id(), std::memory_order_relaxed);
#endif
    return;
  }
  // Contended: spin actively, then passively, then sleep. Once we sleep we
  // leave the key at 2 so the unlocker knows to wake someone.
  std::uint32_t wait = 1;
  for (;;) {
    for (int i = 0; i < 4; i++) {
      while (key_.load(std::memory_order_relaxed) == 0) {
        v = 0;
        if (key_.compare_exchange_weak(v, wait, std::memory_order_acquire)) goto acquired;
      }
      procyield(30);
    }
    for (int i = 0; i < 1; i++) {
      while (key_.load(std::memory_order_relaxed) == 0) {
        v = 0;
        if (key_.compare_exchange_weak(v, wait, std::memory_order_acquire)) goto acquired;
      }
      osyield();
    }
    v = key_.exchange(2, std::memory_order_acquire);
    if (v == 0) goto acquired;
    wait = 2;
    futex(&key_, FUTEX_WAIT, 2, nullptr);
  }
acquired:;
#if defined(GORO_CHECKED_LOCKS)
  owner_.store(current_thread_id(), std::memory_order_relaxed);
#endif
}

bool Lock::try_lock() {
  std::uint32_t v = 0;
  if (key_.compare_exchange_strong(v, 1, std::memory_order_acquire)) {
    t_locks++;
#if defined(GORO_CHECKED_LOCKS)
    owner_.store(current_thread_id(), std::memory_order_relaxed);
#endif
    return true;
  }
  return false;
}

void Lock::unlock() {
#if defined(GORO_CHECKED_LOCKS)
  GORO_ASSERT(owner_.load(std::memory_order_relaxed) == current_thread_id(), "unlock of unlocked lock");
  owner_.store(0, std::memory_order_relaxed);
#endif
  std::uint32_t v = key_.exchange(0, std::memory_order_release);
  t_locks--;
  if (v == 2) futex(&key_, FUTEX_WAKE, 1, nullptr);
}

bool Lock::held_by_me() const {
#if defined(GORO_CHECKED_LOCKS)
  return key_.load(std::memory_order_relaxed) != 0 &&
         owner_.load(std::memory_order_relaxed) == current_thread_id();
#else
  return key_.load(std::memory_order_relaxed) != 0;  // held by someone, at least
#endif
}

void Note::wakeup() {
  std::uint32_t old = key.exchange(1, std::memory_order_release);
  if (old != 0) throw_("notewakeup - double wakeup");
  futex(&key, FUTEX_WAKE, 1, nullptr);
}

void Note::sleep() {
  while (key.load(std::memory_order_acquire) == 0) futex(&key, FUTEX_WAIT, 0, nullptr);
}

bool Note::tsleep(std::int64_t ns) {
  if (ns < 0) {
    sleep();
    return true;
  }
  std::int64_t deadline = nanotime() + ns;
  while (key.load(std::memory_order_acquire) == 0) {
    std::int64_t left = deadline - nanotime();
    if (left <= 0) return false;
    timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
    futex(&key, FUTEX_WAIT, 0, &ts);
  }
  return true;
}

}  // namespace goro::detail
