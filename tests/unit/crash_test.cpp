// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Behaviour that ends the process, checked from outside as Go's
// crash_test.go does: run a goro_testprog scenario in a child process (with
// a timeout, killed if it hangs), capture stdout and stderr together, and
// check the exit status and how the output begins.
//
// Go's messages and Go's exit status 2 are the contract:
//   fatal error: all goroutines are asleep - deadlock!
//   panic: <message>
//   fatal error: sync: unlock of unlocked mutex

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

struct ProgResult {
  std::string output;  // stdout and stderr, interleaved as written
  bool timed_out = false;
  bool exited = false;
  int exit_status = -1;
  int term_signal = 0;

  std::string describe() const {
    std::string s;
    if (timed_out) s += "timed out and was killed; ";
    if (exited) s += "exit status " + std::to_string(exit_status);
    if (term_signal) s += "killed by signal " + std::to_string(term_signal) + " (" + strsignal(term_signal) + ")";
    return s + "; output:\n" + output;
  }
};

// The child's environment: ours without GORO_* settings (like Go's
// testenv.CleanCmdEnv dropping GODEBUG), plus `extra`.
std::vector<std::string> child_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; e++) {
    if (std::string_view(*e).substr(0, 5) == "GORO_") continue;
    env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Runs `goro_testprog scenario`, returning when it ends or after `timeout`
// (then it is killed with SIGKILL).
ProgResult run_testprog(const std::string& scenario, const std::vector<std::string>& extra_env = {},
                        Clock::duration timeout = std::chrono::seconds(20)) {
  ProgResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);

  std::string path = GORO_TESTPROG;
  std::vector<char*> argv{path.data(), const_cast<char*>(scenario.c_str()), nullptr};
  std::vector<std::string> env = child_env(extra_env);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  int err = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    ADD_FAILURE() << "posix_spawn " << path << ": " << std::strerror(err);
    return r;
  }

  // Read until EOF (every writer gone) or the deadline.
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) continue;  // deadline check at the top
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    r.output.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    r.exited = true;
    r.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.term_signal = WTERMSIG(status);
  }
  return r;
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

constexpr std::string_view kDeadlock = "fatal error: all goroutines are asleep - deadlock!\n";

// A scenario that must end the process with Go's status 2 and output that
// starts with `want`.
void expect_crash(const std::string& scenario, std::string_view want,
                  const std::vector<std::string>& env = {}) {
  ProgResult r = run_testprog(scenario, env);
  EXPECT_TRUE(starts_with(r.output, want))
      << scenario << ": output does not start with \"" << want << "\"; " << r.describe();
  EXPECT_TRUE(r.exited && r.exit_status == 2)
      << scenario << ": want exit status 2; " << r.describe();
  EXPECT_EQ(r.output.find("not reached"), std::string::npos)
      << scenario << ": control passed the point of the crash; " << r.describe();
}

// ---------------------------------------------------------------------------
// Deadlock detection (Go: TestSimpleDeadlock and friends)

TEST(Deadlock, MainBlockedForeverIsReported) {
  expect_crash("SimpleDeadlock", kDeadlock);
}

TEST(Deadlock, MainBlockedForeverIsReportedWithOneP) {
  expect_crash("SimpleDeadlock", kDeadlock, {"GORO_MAXPROCS=1"});
}

TEST(Deadlock, AllGoroutinesBlockedOnChannelsIsReported) {
  expect_crash("AllBlockedOnChannels", kDeadlock);
}

TEST(Deadlock, IsReportedAfterParallelWorkOnAllPs) {
  expect_crash("DeadlockAfterParallelWork", kDeadlock);
}

TEST(Deadlock, MutexLockedTwiceIsReported) {
  expect_crash("MutexDeadlock", kDeadlock);
}

TEST(Deadlock, WaitGroupNeverDoneIsReported) {
  expect_crash("WaitGroupDeadlock", kDeadlock);
}

// The detector counts running Ms: a goroutine that is running (or blocked
// in the OS on its M) while main waits for it is not a deadlock.
TEST(Deadlock, NotReportedWhileAGoroutineIsRunning) {
  for (const char* procs : {"GORO_MAXPROCS=1", "GORO_MAXPROCS=2"}) {
    ProgResult r = run_testprog("NoDeadlockWhileGoroutineRuns", {procs});
    EXPECT_TRUE(r.exited && r.exit_status == 0) << procs << ": " << r.describe();
    EXPECT_EQ(r.output, "OK\n") << procs << ": " << r.describe();
  }
}

// ---------------------------------------------------------------------------
// Panics and fatal errors (Go's messages, exit status 2)

TEST(Panic, PrintsMessageAndExitsWithStatus2) {
  expect_crash("Panic", "panic: boom\n");
}

TEST(Panic, FromAnyGoroutineEndsTheProcess) {
  expect_crash("PanicInGoroutine", "panic: boom in goroutine\n");
}

TEST(Panic, CloseOfClosedChannel) {
  expect_crash("CloseClosedChannel", "panic: close of closed channel\n");
}

// A moved-from Chan is Go's nil channel.
TEST(Panic, CloseOfNilChannel) {
  expect_crash("CloseNilChannel", "panic: close of nil channel\n");
}

TEST(Deadlock, RecvOnNilChannelBlocksForever) {
  expect_crash("NilChanRecvDeadlock", kDeadlock);
}

TEST(Deadlock, SendOnNilChannelBlocksForever) {
  expect_crash("NilChanSendDeadlock", kDeadlock);
}

TEST(Deadlock, SelectOverOnlyNilChannelsBlocksForever) {
  expect_crash("SelectOnlyNilChans", kDeadlock);
}

TEST(Panic, SendOnClosedChannel) {
  expect_crash("SendOnClosedChannel", "panic: send on closed channel\n");
}

TEST(Panic, BlockedSenderPanicsWhenChannelIsClosed) {
  expect_crash("BlockedSendOnChannelClosedLater", "panic: send on closed channel\n");
}

TEST(Panic, NegativeWaitGroupCounter) {
  expect_crash("NegativeWaitGroupCounter", "panic: sync: negative WaitGroup counter\n");
}

TEST(Fatal, UnlockOfUnlockedMutex) {
  expect_crash("UnlockOfUnlockedMutex", "fatal error: sync: unlock of unlocked mutex\n");
}

// ---------------------------------------------------------------------------
// Normal ends

// Go's TestNumGoroutine runs testprog NumGoroutine and wants "1\n".
TEST(Testprog, NumGoroutineOfLoneMainIsOne) {
  ProgResult r = run_testprog("NumGoroutine");
  EXPECT_TRUE(r.exited && r.exit_status == 0) << r.describe();
  EXPECT_EQ(r.output, "1\n") << r.describe();
}

TEST(Testprog, GoroMaxprocsSetsThePCount) {
  for (int n : {1, 3, 7}) {
    ProgResult r = run_testprog("PrintMaxprocs", {"GORO_MAXPROCS=" + std::to_string(n)});
    EXPECT_TRUE(r.exited && r.exit_status == 0) << r.describe();
    EXPECT_EQ(r.output, std::to_string(n) + "\n") << "GORO_MAXPROCS=" << n << ": " << r.describe();
  }
}

TEST(Testprog, MainsValueIsTheExitStatus) {
  ProgResult r = run_testprog("ExitStatus7");
  EXPECT_TRUE(r.exited && r.exit_status == 7) << r.describe();
  EXPECT_EQ(r.output, "") << r.describe();
}

TEST(Testprog, UnknownScenarioIsAUsageError) {
  ProgResult r = run_testprog("NoSuchScenario");
  EXPECT_TRUE(r.exited && r.exit_status == 1) << r.describe();
}

}  // namespace
