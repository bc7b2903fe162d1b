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
#include <cstdio>
#include <cstring>
#include <new>

#include "runtime.h"

namespace goro::detail {

namespace {
thread_local int t_locks = 0;  // runtime Locks held by this thread
long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op | FUTEX_PRIVATE_FLAG, val, ts,
                 nullptr, 0);
}
thread_local long t_tid = 0;

#if defined(GORO_CHECKED_LOCKS)
// The runtime locks this thread holds, in the order taken (lockrank.h).
struct Held {
  const void* lock;
  LockRank rank;
};
constexpr int kMaxHeld = 16;
thread_local Held t_held[kMaxHeld];
thread_local int t_nheld = 0;

constexpr bool kRankMulti[] = {
#define GORO_LOCK_RANK_MULTI(name, multi, what) multi,
    GORO_LOCK_RANKS(GORO_LOCK_RANK_MULTI)
#undef GORO_LOCK_RANK_MULTI
};

[[noreturn]] void rank_violation(const void* l, LockRank r, const Held& h) {
  std::fprintf(stderr, "runtime: lock ordering problem: acquiring %s (%p) while holding %s (%p); held:",
               lockrank_name(r), l, lockrank_name(h.rank), h.lock);
  for (int i = 0; i < t_nheld; i++) std::fprintf(stderr, " %s", lockrank_name(t_held[i].rank));
  std::fprintf(stderr, "\n");
  throw_("lock ordering problem");
}

// Called before a lock that may wait is taken: every lock held must rank
// below it, or share a multi rank at a lower address.
void rank_check(const void* l, LockRank r) {
  for (int i = 0; i < t_nheld; i++) {
    const Held& h = t_held[i];
    if (h.rank < r) continue;
    if (h.rank == r && kRankMulti[static_cast<int>(r)] && h.lock < l) continue;
    rank_violation(l, r, h);
  }
}

void rank_push(const void* l, LockRank r) {
  if (t_nheld == kMaxHeld) throw_("lock: too many runtime locks held");
  t_held[t_nheld++] = Held{l, r};
}

void rank_pop(const void* l) {
  for (int i = t_nheld - 1; i >= 0; i--) {
    if (t_held[i].lock != l) continue;
    for (int j = i; j + 1 < t_nheld; j++) t_held[j] = t_held[j + 1];
    t_nheld--;
    return;
  }
  throw_("unlock of unlocked lock");
}
#endif
}  // namespace

const char* lockrank_name(LockRank r) {
  static constexpr const char* kNames[] = {
#define GORO_LOCK_RANK_NAME(name, multi, what) #name,
      GORO_LOCK_RANKS(GORO_LOCK_RANK_NAME)
#undef GORO_LOCK_RANK_NAME
  };
  auto i = static_cast<unsigned>(r);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "?";
}

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
#if defined(GORO_CHECKED_LOCKS)
  rank_check(this, rank_);
  rank_push(this, rank_);
#endif
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
    rank_push(this, rank_);
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
  rank_pop(this);
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

#if defined(GORO_TEST_HOOKS)
#include "export_test.h"

namespace goro::testexport {
using detail::Lock;
using detail::LockRank;

static LockRank rank_named(const char* name) {
  static constexpr const char* kNames[] = {
#define GORO_LOCK_RANK_NAME(n, multi, what) #n,
      GORO_LOCK_RANKS(GORO_LOCK_RANK_NAME)
#undef GORO_LOCK_RANK_NAME
  };
  for (unsigned i = 0; i < sizeof kNames / sizeof kNames[0]; i++)
    if (std::strcmp(kNames[i], name) == 0) return static_cast<LockRank>(i);
  detail::throw_("lock_two: unknown lock rank");
}

void lock_two(const char* outer, const char* inner, bool inner_higher) {
  alignas(Lock) unsigned char buf[2 * sizeof(Lock)];
  Lock* lo = nullptr;
  Lock* hi = nullptr;
  if (inner_higher) {
    lo = new (buf) Lock(rank_named(outer));
    hi = new (buf + sizeof(Lock)) Lock(rank_named(inner));
  } else {
    hi = new (buf + sizeof(Lock)) Lock(rank_named(outer));
    lo = new (buf) Lock(rank_named(inner));
  }
  Lock* first = inner_higher ? lo : hi;
  Lock* second = inner_higher ? hi : lo;
  first->lock();
  second->lock();
  second->unlock();
  first->unlock();
  lo->~Lock();
  hi->~Lock();
}

std::vector<std::string> lock_rank_names() {
  return {
#define GORO_LOCK_RANK_NAME(n, multi, what) #n,
      GORO_LOCK_RANKS(GORO_LOCK_RANK_NAME)
#undef GORO_LOCK_RANK_NAME
  };
}
}  // namespace goro::testexport
#endif
