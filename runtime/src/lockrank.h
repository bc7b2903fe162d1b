// SPDX-License-Identifier: BSD-3-Clause
// The runtime's lock order, written once.
//
// Every runtime Lock (a thread-level futex mutex, runtime.h) is constructed
// with its rank from this table. A thread may take a lock only when every
// runtime lock it already holds has a lower rank: the table is the order in
// which nested locks are taken, outermost first. A rank marked `multi` may
// be held more than once (two channels in select, the timer heaps of two Ps
// in procresize); its instances are taken in ascending address order, which
// is what keeps two threads that take the same pair from deadlocking.
//
// In checked builds (GORO_CHECKED_LOCKS: test hooks or assertions on) every
// acquisition is checked against the locks the thread holds, before it can
// block, and a violation is a fatal error naming both locks -- the order is
// enforced by the whole unit suite, not only by reading, as Go's
// lockrank.go does under GOEXPERIMENT=staticlockranking. try_lock is
// recorded but not checked: it cannot wait, so it cannot deadlock. Release
// builds carry the rank (a byte in padding) and check nothing.
//
// The order follows Go's lockrank.go where the locks correspond (sched
// before allg, timers, channels; the print lock after them). The nestings
// the code actually has, as the unit suite exercises them: polldesc ->
// sched, timers, allm (netpoll readies Gs and arms deadline timers under a
// descriptor's lock); sched -> timers, print, allg, allm, gfree, pdcache
// (procresize, checkdead, schedtrace, gfget); print -> allg, allm
// (scheddetail); two hchans (select); two timers (moveTimers). Locks that
// nest with nothing still get a place, so that a new nesting is checked
// the moment it is written.
//
// The table: X(name, multi, what it guards).
#pragma once

#include <cstdint>

// clang-format off
#define GORO_LOCK_RANKS(X) \
  X(polldesc, false, "a poll descriptor's deadlines, sequence and closing state (netpoll.cpp)") \
  X(sched, false, "the idle M and P lists, the global run queue, the n* counters and P status changes to and from _Pidle (runtime.h, Sched)") \
  X(timers, true, "a P's timer heap (runtime.h, time.cpp); moveTimers holds two") \
  X(netpollinit, false, "one-time creation of the epoll instance (netpoll.cpp)") \
  X(hchan, true, "a channel's buffer, wait queues and closed flag (chan.h); select holds several") \
  X(notifylist, false, "a Cond's notify list, hashed by address (sync.cpp)") \
  X(semaroot, false, "a semaphore address bucket's waiter list (sema.cpp)") \
  X(print, false, "stderr lines of schedtrace and crash reports (proc.cpp, lock_print)") \
  X(allg, false, "the list of all Gs (proc.cpp, allgs)") \
  X(allm, false, "the list of all Ms (proc.cpp, allm)") \
  X(gfree, false, "the global free-G list (proc.cpp)") \
  X(stack, false, "the stack slabs and the guarded-stack budget (stack.cpp)") \
  X(pdcache, false, "the poll-descriptor cache (netpoll.cpp)") \
  X(scxrecord, false, "which sched_ext export M records are in use (scx_export.cpp)")
// clang-format on

namespace goro::detail {

enum class LockRank : std::uint8_t {
#define GORO_LOCK_RANK_ENUM(name, multi, what) name,
  GORO_LOCK_RANKS(GORO_LOCK_RANK_ENUM)
#undef GORO_LOCK_RANK_ENUM
};

const char* lockrank_name(LockRank r);

}  // namespace goro::detail
