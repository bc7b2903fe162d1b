// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// The network poller: epoll, with an eventfd to break a blocking poll.
//
// An M with nothing to do blocks in netpoll (findRunnable's last resort,
// until the next timer); sysmon polls when nobody has for 10 ms. Gs wait on
// file descriptors through PollDescs, as in Go's netpoll.go:
//
//   pd = netpoll_open(fd)       register fd (edge-triggered, in and out)
//   netpoll_reset(pd, 'r')      before an operation: check errors, clear
//                               the ready bit for the mode
//   (try the non-blocking operation; on EAGAIN:)
//   netpoll_wait(pd, 'r')       park until ready: 0, ETIMEDOUT (deadline),
//                               EBADF (closing)
//   netpoll_set_deadline(pd, abs_ns or 0, 'r'|'w'|'b')
//   netpoll_unblock(pd)         closing: waiters return EBADF
//   netpoll_close(pd)           after unblock and once no G waits on it
//
// PollDescs are never freed, only reused (a cache, as in Go): a timer or an
// epoll event that arrives for a previous use of one finds its sequence
// number changed and does nothing.
#pragma once

#include <cstdint>

#include "runtime.h"

namespace goro::detail {

void netpoll_init();
bool netpoll_inited();
bool netpoll_anywaiters();
std::int32_t netpoll_nwaiters();  // Gs parked on the netpoller
// netpoll returns a list (linked by schedlink) of Gs made ready, in
// _Gwaiting. delay < 0 blocks until something is ready or netpoll_break,
// 0 does not block, > 0 blocks for up to delay ns.
//
// The Gs it returns still count as waiters: *delta receives minus their
// number, and the caller passes it to netpoll_adjust_waiters only after it
// has made them runnable (injectglist, or kept one to run with its P).
// Why: an M with nothing to do decides whether to block in netpoll by the
// waiter count. If the count dropped while the Gs sat in a list held by a
// thread that checkdead does not count (sysmon, between its poll and its
// incidlelocked bracket), the last worker M could see no waiters and no
// work, stop without polling, and checkdead would find every M idle and
// every G waiting: "all goroutines are asleep - deadlock!" on a healthy
// server (test_59600.cpp, NetpollWaiters). Go from 1.22 on adjusts the
// count the same way; Go 1.21 never decremented it for readiness at all
// (it over-counts, so Ms poll when nobody waits). The other wake-ups
// (deadline, close) also decrement only after goready.
G* netpoll(std::int64_t delay, std::int32_t* delta);
void netpoll_adjust_waiters(std::int32_t delta);
void netpoll_break();

struct PollDesc;
// Returns null and sets *err (an errno) on failure.
PollDesc* netpoll_open(int fd, int* err);
void netpoll_close(PollDesc* pd);
void netpoll_unblock(PollDesc* pd);
int netpoll_reset(PollDesc* pd, char mode);
int netpoll_wait(PollDesc* pd, char mode);
void netpoll_set_deadline(PollDesc* pd, std::int64_t deadline, char mode);

// Convenience for tests: park the current G until fd is readable.
void netpoll_wait_readable(int fd);

// goro::run's end: forget every waiting G (they are abandoned).
void netpoll_abandon_waiters();

void injectglist(G* head);

}  // namespace goro::detail
