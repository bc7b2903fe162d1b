// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// goro_testprog: our counterpart of Go's runtime/testdata/testprog. Each
// scenario is a small program whose observable end (exit status, first line
// of output) is the thing under test: deadlock detection, panics and fatal
// errors end the process, so crash_test.cpp runs them here, in a child.
//
// Usage: goro_testprog SCENARIO
//
// A scenario prints "not reached" if control gets past the point where the
// runtime should have ended the process, so a missing crash is visible in
// the output as well as in the exit status.

#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

void not_reached() {
  std::printf("not reached\n");
  std::fflush(stdout);
}

// Busy-waits for `d` without reaching a safe point.
void spin_for(Clock::duration d) {
  const auto deadline = Clock::now() + d;
  while (Clock::now() < deadline) {
  }
}

// --- Deadlocks (Go: testdata/testprog/deadlock.go) -------------------------

// Go's SimpleDeadlock is `select {}` in main; without select, a receive
// nobody will ever send to is the same thing.
int SimpleDeadlock() {
  goro::Chan<int> never;
  never.recv();
  not_reached();
  return 0;
}

// Every goroutine ends up blocked on a channel after doing some work: the
// last one to block makes the deadlock.
int AllBlockedOnChannels() {
  goro::Chan<int> work(4);
  goro::Chan<int> never;
  for (int i = 0; i < 8; i++) {
    goro::go([work, never, i]() mutable {
      if (i % 2 == 0) {
        work.send(i);
        never.recv();  // blocked receiving
      } else {
        work.recv();
        never.send(i);  // blocked sending: nobody ever receives
      }
    });
  }
  goro::Chan<int> main_never;
  main_never.recv();
  not_reached();
  return 0;
}

// The same after all Ps have been running goroutines in parallel, so that
// the deadlock is found with idle and spinning Ms around, not only one.
int DeadlockAfterParallelWork() {
  goro::maxprocs(4);
  goro::Chan<int> never;
  for (int i = 0; i < 4; i++) {
    goro::go([never]() mutable {
      spin_for(std::chrono::milliseconds(20));
      never.recv();
    });
  }
  goro::Chan<int> main_never;
  main_never.recv();
  not_reached();
  return 0;
}

int MutexDeadlock() {
  goro::Mutex mu;
  mu.lock();
  mu.lock();  // Go's Mutex is not reentrant
  not_reached();
  return 0;
}

int WaitGroupDeadlock() {
  goro::WaitGroup wg;
  wg.add(1);
  wg.wait();
  not_reached();
  return 0;
}

// Not a deadlock: main is blocked, but a goroutine is running (spinning,
// then blocked in the OS, which holds its M but parks no goroutine) and
// will wake main. The detector must not fire; prints "OK".
int NoDeadlockWhileGoroutineRuns() {
  goro::Chan<int> result;
  goro::go([result]() mutable {
    spin_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    result.send(1);
  });
  if (result.recv() == 1) std::printf("OK\n");
  return 0;
}

// --- Panics and fatal errors ------------------------------------------------

int Panic() {
  goro::panic("boom");
}

int PanicInGoroutine() {
  goro::Chan<int> never;
  goro::go([] { goro::panic("boom in goroutine"); });
  never.recv();
  not_reached();
  return 0;
}

int CloseClosedChannel() {
  goro::Chan<int> c(1);
  c.close();
  c.close();
  not_reached();
  return 0;
}

int SendOnClosedChannel() {
  goro::Chan<int> c(1);
  c.close();
  c.send(1);
  not_reached();
  return 0;
}

// A sender blocked on a channel when it is closed panics too.
int BlockedSendOnChannelClosedLater() {
  goro::Chan<int> c;
  goro::Chan<bool> never;
  goro::go([c]() mutable { c.send(1); });
  // Let the sender block: yield until it has (it has nothing else to do).
  for (int i = 0; i < 1000; i++) goro::gosched();
  c.close();
  never.recv();
  not_reached();
  return 0;
}

int NegativeWaitGroupCounter() {
  goro::WaitGroup wg;
  wg.add(1);
  wg.done();
  wg.done();
  not_reached();
  return 0;
}

int UnlockOfUnlockedMutex() {
  goro::Mutex mu;
  mu.unlock();
  not_reached();
  return 0;
}

// --- Normal ends -------------------------------------------------------------

// Go's testprog NumGoroutine prints 1: runtime-internal goroutines (sysmon
// has none here anyway) are not counted.
int NumGoroutine() {
  std::printf("%d\n", goro::num_goroutine());
  return 0;
}

// Prints the number of Ps (the test sets GORO_MAXPROCS).
int PrintMaxprocs() {
  std::printf("%d\n", goro::maxprocs());
  return 0;
}

// main's value becomes the exit status.
int ExitStatus7() { return 7; }

// --- Blocking operations: select, timers, locked threads --------------------
// (crash_blocking_test.cpp; Go: testdata/testprog/deadlock.go,
// lockosthread.go)

// A select whose chosen case is a send on a closed channel panics.
int SelectSendOnClosedChannel() {
  goro::Chan<int> c(1);
  goro::Chan<int> never;
  c.close();
  goro::select(goro::on_recv(never), goro::on_send(c, 1));
  not_reached();
  return 0;
}

// Go's own SimpleDeadlock: `select {}` in main.
int SelectNoCases() {
  goro::select();
  not_reached();
  return 0;
}

// The same in every goroutine: a goroutine blocked in `select {}` counts as
// blocked forever, too.
int SelectNoCasesEverywhere() {
  goro::go([] { goro::select(); });
  goro::select();
  not_reached();
  return 0;
}

// Not a deadlock: no goroutine can run, but a timer is pending and will
// wake main. Prints "OK".
int SleepInMain() {
  goro::sleep_for(std::chrono::milliseconds(50));
  std::printf("OK\n");
  return 0;
}

// Not a deadlock: main waits on a channel that a sleeping goroutine will
// send on, and on an `after` channel.
int SleepingGoroutineWakesMain() {
  goro::Chan<int> c;
  goro::go([c]() mutable {
    goro::sleep_for(std::chrono::milliseconds(30));
    c.send(1);
  });
  auto v = c.recv();
  auto t = goro::after(std::chrono::milliseconds(30)).recv();
  if (v == 1 && t.has_value()) std::printf("OK\n");
  return 0;
}

// A deadlock after the last timer has fired is still a deadlock.
int DeadlockAfterTimers() {
  goro::sleep_for(std::chrono::milliseconds(20));
  goro::Chan<int> never;
  never.recv();
  not_reached();
  return 0;
}

// A stopped timer wakes nobody: main blocked on its channel is deadlocked.
int DeadlockOnStoppedTimer() {
  // Due long after the stop (20 ms fired first on a loaded host under
  // TSan, and then the receive rightly returned).
  goro::Timer t(std::chrono::hours(1));
  t.stop();
  t.chan().recv();
  not_reached();
  return 0;
}

// Go's LockedDeadlock: main locked to its thread and blocked forever.
int LockedDeadlock() {
  goro::lock_os_thread();
  goro::select();
  not_reached();
  return 0;
}

// Go's LockedDeadlock2: a locked goroutine and main, both blocked forever.
int LockedDeadlock2() {
  goro::go([] {
    goro::lock_os_thread();
    goro::select();
  });
  goro::sleep_for(std::chrono::milliseconds(1));
  goro::select();
  not_reached();
  return 0;
}

// Go's LockOSThreadMain, in spirit: with one P, a goroutine locks its
// thread and exits while locked (ending that thread); main sleeps and
// carries on, on some other thread. Prints "OK".
int LockOSThreadExit() {
  goro::Chan<bool> ready(1);
  goro::go([ready]() mutable {
    goro::lock_os_thread();
    ready.send(true);
  });
  ready.recv();
  goro::sleep_for(std::chrono::milliseconds(1));
  goro::Chan<int> c;
  goro::go([c]() mutable { c.send(1); });
  if (c.recv() == 1) std::printf("OK\n");
  return 0;
}

// Not a deadlock: main waits for a goroutine blocked in a long system call.
int GoroutineInSyscallIsNotDeadlock() {
  goro::Chan<int> c;
  goro::go([c]() mutable {
    goro::syscall([] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
    c.send(1);
  });
  if (c.recv() == 1) std::printf("OK\n");
  return 0;
}

// A moved-from Chan is Go's nil channel: a receive on it blocks forever,
// and a program whose only goroutine does so is deadlocked.
int NilChanRecvDeadlock() {
  goro::Chan<int> c;
  goro::Chan<int> keep = std::move(c);
  c.recv();  // NOLINT(bugprone-use-after-move): the nil channel is the point
  not_reached();
  return 0;
}

// A send on a nil channel blocks forever too, here beside a goroutine
// blocked receiving on one.
int NilChanSendDeadlock() {
  goro::Chan<int> c;
  goro::Chan<int> keep = std::move(c);
  goro::go([] {
    goro::Chan<int> n;
    goro::Chan<int> k = std::move(n);
    n.recv();  // NOLINT(bugprone-use-after-move)
  });
  c.send(1);  // NOLINT(bugprone-use-after-move)
  not_reached();
  return 0;
}

// A select whose only cases are on nil channels is select {}.
int SelectOnlyNilChans() {
  goro::Chan<int> a, b;
  goro::Chan<int> ka = std::move(a), kb = std::move(b);
  goro::select(goro::on_recv(a), goro::on_send(b, 1));  // NOLINT(bugprone-use-after-move)
  not_reached();
  return 0;
}

int CloseNilChannel() {
  goro::Chan<int> c;
  goro::Chan<int> keep = std::move(c);
  c.close();  // NOLINT(bugprone-use-after-move)
  not_reached();
  return 0;
}

using Scenario = int (*)();

const std::map<std::string, Scenario>& scenarios() {
  static const std::map<std::string, Scenario> all{
      {"SimpleDeadlock", SimpleDeadlock},
      {"AllBlockedOnChannels", AllBlockedOnChannels},
      {"DeadlockAfterParallelWork", DeadlockAfterParallelWork},
      {"MutexDeadlock", MutexDeadlock},
      {"WaitGroupDeadlock", WaitGroupDeadlock},
      {"NoDeadlockWhileGoroutineRuns", NoDeadlockWhileGoroutineRuns},
      {"Panic", Panic},
      {"PanicInGoroutine", PanicInGoroutine},
      {"CloseClosedChannel", CloseClosedChannel},
      {"NilChanRecvDeadlock", NilChanRecvDeadlock},
      {"NilChanSendDeadlock", NilChanSendDeadlock},
      {"SelectOnlyNilChans", SelectOnlyNilChans},
      {"CloseNilChannel", CloseNilChannel},
      {"SendOnClosedChannel", SendOnClosedChannel},
      {"BlockedSendOnChannelClosedLater", BlockedSendOnChannelClosedLater},
      {"NegativeWaitGroupCounter", NegativeWaitGroupCounter},
      {"UnlockOfUnlockedMutex", UnlockOfUnlockedMutex},
      {"NumGoroutine", NumGoroutine},
      {"PrintMaxprocs", PrintMaxprocs},
      {"ExitStatus7", ExitStatus7},
      {"SelectSendOnClosedChannel", SelectSendOnClosedChannel},
      {"SelectNoCases", SelectNoCases},
      {"SelectNoCasesEverywhere", SelectNoCasesEverywhere},
      {"SleepInMain", SleepInMain},
      {"SleepingGoroutineWakesMain", SleepingGoroutineWakesMain},
      {"DeadlockAfterTimers", DeadlockAfterTimers},
      {"DeadlockOnStoppedTimer", DeadlockOnStoppedTimer},
      {"LockedDeadlock", LockedDeadlock},
      {"LockedDeadlock2", LockedDeadlock2},
      {"LockOSThreadExit", LockOSThreadExit},
      {"GoroutineInSyscallIsNotDeadlock", GoroutineInSyscallIsNotDeadlock},
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 1;
  }
  auto it = scenarios().find(argv[1]);
  if (it == scenarios().end()) {
    std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 1;
  }
  Scenario scenario = it->second;
  int status = goro::run([scenario] { return scenario(); });
  std::fflush(stdout);
  return status;
}
