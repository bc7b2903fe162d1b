// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Test-only window into the runtime's internals, like Go's export_test.go.
// Available only in goro_testing (GORO_TEST_HOOKS). Tests include it as
// "export_test.h" (runtime/src is on goro_testing's private include path,
// and tests/unit adds it explicitly).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace goro::testexport {

// A standalone P-local run queue (256-slot ring + runnext) holding dummy Gs
// named by integers, for Go's TestSchedLocalQueue* transcriptions.
struct LocalQueue;
LocalQueue* new_local_queue();
void free_local_queue(LocalQueue* q);
// runqput: next=true puts the G in runnext (kicking the old one to the tail).
// Overflow goes to a private overflow list instead of the global queue.
void runq_put(LocalQueue* q, int id, bool next);
// runqget: -1 when empty.
int runq_get(LocalQueue* q);
bool runq_empty(LocalQueue* q);
std::uint32_t runq_size(LocalQueue* q);  // ring only, excluding runnext
// Items moved to the overflow (global-queue stand-in) so far.
std::vector<int> runq_overflow(LocalQueue* q);
// runqsteal: steal half (rounded up) of src into dst and return the one G
// handed back directly (-1 when nothing was stolen). *stolen_count receives
// how many Gs moved in total (the returned one included).
int runq_steal(LocalQueue* dst, LocalQueue* src, bool steal_runnext, int* stolen_count);

// The random coprime-stride enumeration used by stealWork: for `nprocs` Ps
// and a random seed, the order in which Ps are visited.
std::vector<int> steal_order(int nprocs, std::uint32_t seed);

// The lock order (lockrank.h): takes a fresh lock of rank `outer`, then one
// of rank `inner` (by rank name), then releases both. inner_higher: the
// inner lock sits at the higher address. A violation is the runtime's
// fatal error; an unknown name throws too.
void lock_two(const char* outer, const char* inner, bool inner_higher);
// The rank names in order, outermost first.
std::vector<std::string> lock_rank_names();

// A snapshot of the scheduler's counters, taken under sched.lock.
struct SchedCounters {
  int gomaxprocs;
  int npidle;
  int nmspinning;
  int nmidle;
  int nmidlelocked;
  int nmsys;
  int mcount;
  int runqsize;  // global queue
  int ngoroutines;
};
SchedCounters sched_counters();

// Test pause points (see testhooks.h): block the thread that reaches point
// `name` until released; wait until some thread is parked there. With spin,
// the paused thread busy-waits instead of sleeping, so the kernel sees it
// runnable (as sysmon is, running, in the real #59600 race).
void hook_arm(const std::string& name, bool spin = false);
void hook_disarm_all();
bool hook_wait_reached(const std::string& name, int timeout_ms);
void hook_release(const std::string& name);
bool hook_reached(const std::string& name);

// sysmon_inject makes sysmon inject a new system G running fn(arg): like
// Go's forcegc injection when bracketed is false (no incidlelocked guard),
// like its netpoll injection when true.
void sysmon_inject(void (*fn)(void*), void* arg, bool bracketed);
// True while some thread sleeps waiting for sched.lock.
bool sched_lock_contended();
// lock_os_thread state of the calling goroutine's M (Go's
// getLockOSThreadCounts in export_test.go).
struct LockedCounts {
  std::uint32_t external;
  std::uint32_t internal;
  bool locked;
};
LockedCounts locked_counts();

// Park the calling goroutine until fd is readable (the netpoller).
void wait_readable(int fd);
// Gs counted as parked on the netpoller (netpoll.h).
int netpoll_waiters();

// The sched_ext export (scx_export.h): attached to a scx_goro loader, and
// how many deadlock verdicts the kernel's view has vetoed so far.
bool scx_attached();
std::uint64_t scx_vetoes();
// Arm the lost wake-up fault (GORO_DEBUG=dropwakeup=1): the next startm
// that takes an idle M hands it a P and skips the wake-up.
void arm_dropwakeup();
// The goid of the G in the calling goroutine's P's runnext (0: none).
std::int64_t runnext_goid();

}  // namespace goro::testexport
