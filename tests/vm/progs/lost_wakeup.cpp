// SPDX-License-Identifier: BSD-3-Clause
// goro_lost_wakeup: a goro program stranded by a lost wake-up, for the
// in-kernel checkdead's stall detection.
//
// Usage: goro_lost_wakeup [TIMEOUT_S]   (default 3; fractions allowed)
//
// The runtime's test-only fault "dropwakeup" (runtime/src/scx_export.h)
// makes the next startm that takes an idle M do everything -- hand it the P
// (nextp), describe it as STARTING with that P in the export -- except the
// wake-up. The M sleeps on, it is not on the idle list (so checkdead counts
// it as running and never fires), and the G waiting on the P's run queue
// never runs. The process cannot notice; the kernel can: runnable Gs, no
// thread of the process runnable, an M described as STARTING that never
// becomes runnable.
//
// The scenario, on one P, deterministic:
//   1. An idle M. G1 locks itself to main's thread (M0) and blocks on a
//      channel: stoplockedm hands the P off (handoffp -> startm), which
//      creates M1. G2 wakes G1 after 20 ms; M1 finds the locked G1, hands it
//      the P (startlockedm) and parks in stopm: M1 is idle.
//   2. The fault is armed. main locks itself to M0 and spawns G3, which sits
//      in the P's runnext (wakep starts nobody: the one P is ours). main
//      blocks on a channel only G3 would send on: stoplockedm -> handoffp
//      sees G3 queued -> startm takes idle M1, sets its nextp and STARTING,
//      and drops the wake-up. M0 sleeps locked, M1 sleeps on, sysmon finds
//      nothing to do: G3 is stranded.
// It prints "STRANDED goid=N pid=P" (stdout, flushed) just before step 2's
// block, then hangs until the watchdog -- a plain thread, not a goroutine
// -- ends it with exit status 3. If G3 ever runs, it exits 1 instead.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "export_test.h"
#include "goro/goro.h"

namespace tx = goro::testexport;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  double timeout_s = argc > 1 ? std::atof(argv[1]) : 3.0;
  if (timeout_s <= 0) {
    std::fprintf(stderr, "usage: goro_lost_wakeup [TIMEOUT_S]\n");
    return 1;
  }
  std::thread([timeout_s] {
    std::this_thread::sleep_for(std::chrono::duration<double>(timeout_s));
    std::fprintf(stderr, "goro_lost_wakeup: watchdog: still stranded after %.1f s, exiting 3\n", timeout_s);
    std::fflush(stderr);
    _exit(3);
  }).detach();

  goro::maxprocs(1);  // before the runtime boots: one P
  return goro::run([]() -> int {
    // 1. Make an idle M.
    {
      goro::Chan<int> wake;
      goro::WaitGroup wg;
      wg.add(2);
      goro::go([&] {  // G1
        goro::lock_os_thread();
        wake.recv();
        goro::unlock_os_thread();
        wg.done();
      });
      goro::go([&] {  // G2
        goro::sleep_for(20ms);
        wake.send(1);
        wg.done();
      });
      wg.wait();
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (tx::sched_counters().nmidle < 1) {
        if (std::chrono::steady_clock::now() > deadline) {
          std::fprintf(stderr, "goro_lost_wakeup: no idle M after step 1\n");
          _exit(4);
        }
        goro::gosched();
      }
    }

    // 2. Lose the wake-up of that M.
    tx::arm_dropwakeup();
    goro::lock_os_thread();
    goro::Chan<int> never;
    goro::go([never]() mutable {  // G3
      std::printf("goro_lost_wakeup: the stranded G ran: the wake-up was not lost\n");
      std::fflush(stdout);
      _exit(1);
      never.send(1);
    });
    std::printf("STRANDED goid=%lld pid=%d\n", static_cast<long long>(tx::runnext_goid()), static_cast<int>(getpid()));
    std::fflush(stdout);
    never.recv();
    std::printf("goro_lost_wakeup: main resumed\n");
    return 1;
  });
}
