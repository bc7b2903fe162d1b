// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Process-ending behaviour of the blocking operations (select, timers,
// system calls, locked threads), checked from outside as crash_test.cpp
// does: run a goro_testprog scenario in a child, with a timeout, and check
// its exit status and how its output begins. Go's counterparts are
// TestSimpleDeadlock (`select {}`), TestLockedDeadlock{,2} and
// TestLockOSThreadExit in crash_test.go and proc_test.go.
//
// Deadlock detection must count what can still wake a goroutine: a pending
// timer or a goroutine in a system call is not a deadlock; a stopped timer
// or a locked thread changes nothing.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

#ifndef GORO_TESTPROG
#error "GORO_TESTPROG must name the goro_testprog executable"
#endif

using Clock = std::chrono::steady_clock;

struct Outcome {
  std::string output;  // stdout and stderr together
  bool exited = false;
  int status = -1;
  int signal = 0;
  bool killed_after_timeout = false;

  std::string describe() const {
    std::string s = killed_after_timeout ? "hung and was killed; " : "";
    if (exited) s += "exit status " + std::to_string(status);
    if (signal) s += std::string("signal ") + strsignal(signal);
    return s + "; output:\n" + output;
  }
};

// Runs `goro_testprog scenario` with GORO_* cleared from the environment
// (plus `extra`), killing it after `timeout`.
Outcome run_scenario(const std::string& scenario, const std::vector<std::string>& extra = {},
                     Clock::duration timeout = std::chrono::seconds(20)) {
  Outcome out;
  std::vector<std::string> env;
  for (char** e = environ; *e; e++) {
    if (std::string_view(*e).rfind("GORO_", 0) != 0) env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return out;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
  std::string prog = GORO_TESTPROG;
  std::string arg = scenario;
  char* argv[] = {prog.data(), arg.data(), nullptr};
  pid_t pid = -1;
  const int err = posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    ADD_FAILURE() << "posix_spawn " << prog << ": " << std::strerror(err);
    return out;
  }

  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      out.killed_after_timeout = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child (and any thread of it) is gone
    out.output.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st)) {
    out.exited = true;
    out.status = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    out.signal = WTERMSIG(st);
  }
  return out;
}

constexpr std::string_view kDeadlock = "fatal error: all goroutines are asleep - deadlock!\n";

// The scenario ends the process with status 2 and output beginning with `want`.
void expect_fatal(const std::string& scenario, std::string_view want,
                  const std::vector<std::string>& env = {}) {
  const Outcome r = run_scenario(scenario, env);
  EXPECT_EQ(r.output.rfind(want, 0), 0u)
      << scenario << ": output should begin with \"" << want << "\"; " << r.describe();
  EXPECT_TRUE(r.exited && r.status == 2) << scenario << ": want exit status 2; " << r.describe();
  EXPECT_EQ(r.output.find("not reached"), std::string::npos)
      << scenario << ": went on past the point where it should have ended; " << r.describe();
}

// The scenario runs to its end, exits 0 and prints exactly "OK".
void expect_ok(const std::string& scenario, const std::vector<std::string>& env = {}) {
  const Outcome r = run_scenario(scenario, env);
  EXPECT_TRUE(r.exited && r.status == 0) << scenario << ": want exit status 0; " << r.describe();
  EXPECT_EQ(r.output, "OK\n") << scenario << ": " << r.describe();
}

// ---------------------------------------------------------------------------
// select

TEST(SelectCrash, SendCaseOnClosedChannelPanics) {
  expect_fatal("SelectSendOnClosedChannel", "panic: send on closed channel\n");
}

// Go's SimpleDeadlock is exactly this: `select {}` in main.
TEST(SelectCrash, SelectWithNoCasesInMainIsADeadlock) {
  expect_fatal("SelectNoCases", kDeadlock);
  expect_fatal("SelectNoCases", kDeadlock, {"GORO_MAXPROCS=1"});
}

TEST(SelectCrash, SelectWithNoCasesEverywhereIsADeadlock) {
  expect_fatal("SelectNoCasesEverywhere", kDeadlock);
}

// ---------------------------------------------------------------------------
// Timers and deadlock detection

TEST(TimerDeadlock, MainSleepingIsNotADeadlock) {
  expect_ok("SleepInMain");
  expect_ok("SleepInMain", {"GORO_MAXPROCS=1"});
}

TEST(TimerDeadlock, GoroutinesWaitingForTimersAreNotADeadlock) {
  expect_ok("SleepingGoroutineWakesMain");
  expect_ok("SleepingGoroutineWakesMain", {"GORO_MAXPROCS=1"});
}

TEST(TimerDeadlock, DeadlockAfterTheTimersHaveFiredIsReported) {
  expect_fatal("DeadlockAfterTimers", kDeadlock);
}

TEST(TimerDeadlock, WaitingOnAStoppedTimerIsADeadlock) {
  expect_fatal("DeadlockOnStoppedTimer", kDeadlock);
}

// ---------------------------------------------------------------------------
// System calls and deadlock detection

TEST(SyscallDeadlock, GoroutineInASyscallIsNotADeadlock) {
  expect_ok("GoroutineInSyscallIsNotDeadlock");
  expect_ok("GoroutineInSyscallIsNotDeadlock", {"GORO_MAXPROCS=1"});
}

// ---------------------------------------------------------------------------
// Locked threads

// Go's TestLockedDeadlock: main locked to its thread and blocked forever.
TEST(LockedDeadlock, LockedMainBlockedForeverIsADeadlock) {
  expect_fatal("LockedDeadlock", kDeadlock);
}

// Go's TestLockedDeadlock2: a locked goroutine and main, both blocked.
TEST(LockedDeadlock, LockedGoroutineAndMainBlockedForeverIsADeadlock) {
  expect_fatal("LockedDeadlock2", kDeadlock);
}

// Go's TestLockOSThreadExit (LockOSThreadMain with GOMAXPROCS=1): a
// goroutine exits while locked, its thread ends, and the program goes on.
TEST(LockOSThreadExit, ProgramGoesOnAfterALockedGoroutineExits) {
  expect_ok("LockOSThreadExit", {"GORO_MAXPROCS=1"});
  expect_ok("LockOSThreadExit");
}

}  // namespace
