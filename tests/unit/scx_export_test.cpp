// SPDX-License-Identifier: BSD-3-Clause
// The runtime export and the runtime side of the in-kernel checkdead,
// on the host, without a kernel.
//
// A fake loader stands in for scx_goro: it listens on a SOCK_SEQPACKET
// socket in a temporary directory, creates a temporary "pin directory",
// and answers a goro_hello with a goro_welcome and a memfd (sized like the
// BPF map) instead of the map's fd. The runtime runs in a child process
// (this binary with --scenario=NAME) pointed at it through GORO_SCX_SOCK
// and GORO_SCX_PIN_DIR; the test reads what the child publishes through its
// own mapping of the memfd, and plays the BPF side by writing the kernel
// view.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <memory>

#include <gtest/gtest.h>

#include "export_test.h"
#include "goro/goro.h"
#include "scx_goro.h"
#include "sysmon_polls.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace tx = goro::testexport;

const char* g_self = "/proc/self/exe";

// ---------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------
std::atomic<bool> g_stop{false};

// The parent closes our stdin to end a scenario.
void stop_on_stdin_eof() {
  std::thread([] {
    char b;
    while (read(0, &b, 1) > 0) {
    }
    g_stop = true;
  }).detach();
}

[[noreturn]] void scenario_fail(const char* what) {
  std::printf("scenario failed: %s\n", what);
  std::fflush(stdout);
  _exit(1);
}

int run_scenario(const std::string& name) {
  return goro::run([&]() -> int {
    if (name == "report") {
      std::printf("attached=%d\n", tx::scx_attached() ? 1 : 0);
      std::fflush(stdout);
    } else if (name == "spin") {
      // One G spins on a CPU (its M RUNNING with a P) while main wakes on a
      // timer every few ms (the other M idles or polls), until stdin closes.
      stop_on_stdin_eof();
      std::atomic<long> spin_tid{0};
      goro::go([&] {
        spin_tid = syscall(SYS_gettid);
        while (!g_stop.load(std::memory_order_relaxed)) {
        }
      });
      while (spin_tid.load() == 0) goro::sleep_for(1ms);
      std::printf("attached=%d spin_tid=%ld\n", tx::scx_attached() ? 1 : 0, spin_tid.load());
      std::fflush(stdout);
      while (!g_stop.load()) goro::sleep_for(3ms);
    } else if (name == "sysmon-live") {
      // GORO_MAXPROCS=1. A G spends its life in 50 ms system calls (each in
      // a BlockingRegion), taking the only P back between them; main sleeps
      // 2 ms at a time, so each of its wake-ups waits for sysmon to take the
      // P from the G in its system call and hand it on. Every 250 ms main
      // prints the longest gap between its wake-ups: how long sysmon was
      // kept from its loop.
      stop_on_stdin_eof();
      goro::WaitGroup wg;
      wg.add(1);
      goro::go([&] {
        while (!g_stop.load()) goro::syscall([] { return usleep(50 * 1000); });
        wg.done();
      });
      auto last = Clock::now(), window = last;
      long worst = 0;
      while (!g_stop.load()) {
        goro::sleep_for(2ms);
        auto now = Clock::now();
        worst = std::max<long>(worst, std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count());
        last = now;
        if (now - window >= 250ms) {
          std::printf("gap_ms=%ld\n", worst);
          std::fflush(stdout);
          worst = 0;
          window = now;
        }
      }
      wg.wait();
    } else if (name == "inject") {
      // GORO_MAXPROCS=1, sysmon polling (sysmon_polls.h). With
      // "sysmon.injecting" armed the pipe is written: sysmon's poll returns
      // U and it pauses inside its injection bracket until stdin closes;
      // then U runs and main ends.
      stop_on_stdin_eof();
      goro_test::sysmon_polls_round(
          [](int wfd, std::atomic<bool>& stop) {
            tx::hook_arm("sysmon.injecting");
            if (write(wfd, "x", 1) != 1) scenario_fail("write");
            if (!tx::hook_wait_reached("sysmon.injecting", 10000)) scenario_fail("sysmon never reached its injection");
            std::printf("sysmon paused injecting\n");
            std::fflush(stdout);
            while (!g_stop.load()) std::this_thread::sleep_for(1ms);
            tx::hook_disarm_all();
            stop = true;
          },
          scenario_fail);
      std::printf("U ran\n");
      std::fflush(stdout);
      goro::sleep_for(300ms);  // the parent looks at sysmon's word once more
    } else if (name == "idle") {
      // Nothing runs: main wakes on a timer every 30 s, until stdin closes.
      stop_on_stdin_eof();
      std::printf("attached=%d pid=%d\n", tx::scx_attached() ? 1 : 0, static_cast<int>(getpid()));
      std::fflush(stdout);
      while (!g_stop.load()) goro::sleep_for(300ms);
    } else if (name == "deadlock") {
      std::printf("attached=%d\n", tx::scx_attached() ? 1 : 0);
      std::fflush(stdout);
      goro::Chan<int> c;
      c.recv();  // nobody will ever send: a genuine deadlock
      std::printf("recv returned\n");
      return 1;
    } else {
      std::printf("unknown scenario\n");
      return 1;
    }
    return 0;
  });
}

// ---------------------------------------------------------------------------
// The fake loader
// ---------------------------------------------------------------------------
enum class Answer { kWelcome, kSilent, kBadMagic, kBadAbi };

class FakeLoader {
 public:
  explicit FakeLoader(Answer answer, bool pin_dir = true) : answer_(answer) {
    char tmpl[] = "/tmp/goro_scx_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    pin_ = dir_ + "/pin";
    sock_ = dir_ + "/sock";
    if (pin_dir) mkdir(pin_.c_str(), 0700);
    size_ = (sizeof(goro_proc_export) + 4095) & ~static_cast<std::size_t>(4095);
    start(kGen);
  }
  ~FakeLoader() {
    end();
    rmdir(pin_.c_str());
    rmdir(dir_.c_str());
  }
  // What a loader restart looks like to a process: its instance ends (the
  // connections hang up, the pin directory and socket go away), and after
  // a while a new one runs, with a fresh block and another generation.
  void restart(std::chrono::milliseconds gap) {
    end();
    rmdir(pin_.c_str());
    std::this_thread::sleep_for(gap);
    mkdir(pin_.c_str(), 0700);
    start(gen_ + 1);
  }
  // A loader made without its pin directory starts running, as far as a
  // process can tell.
  void appear() { mkdir(pin_.c_str(), 0700); }
  // How the next connections are answered.
  void answer(Answer a) { answer_ = a; }
  std::vector<std::string> env(const std::string& debug = "") const {
    std::vector<std::string> e{"GORO_SCX_SOCK=" + sock_, "GORO_SCX_PIN_DIR=" + pin_};
    if (!debug.empty()) e.push_back("GORO_DEBUG=" + debug);
    return e;
  }
  goro_proc_export* x() const { return x_; }
  int connections() const { return nconn_.load(); }
  static constexpr std::uint32_t kSlot = 3;
  static constexpr std::uint64_t kGen = 7;

 private:
  void start(std::uint64_t gen) {
    gen_ = gen;
    memfd_ = memfd_create("goro_scx_test", MFD_CLOEXEC);
    if (ftruncate(memfd_, static_cast<off_t>(size_)) != 0) std::abort();
    x_ = static_cast<goro_proc_export*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0));
    // What the loader writes at attach time.
    x_->hdr.magic = GORO_EXPORT_MAGIC;
    x_->hdr.slot = kSlot;
    x_->hdr.gen = gen;
    listen_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, sock_.c_str());
    if (bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_, 8) != 0) std::abort();
    stop_ = false;
    nconn_ = 0;
    server_ = std::thread([this] { serve(); });
  }
  void end() {
    stop_ = true;
    server_.join();
    for (int fd : conns_) close(fd);
    conns_.clear();
    close(listen_);
    // As the real loader does when it frees a slot: the old block says
    // nothing any more, so a re-attach must not copy from it.
    std::memset(static_cast<void*>(x_), 0, sizeof *x_);
    munmap(x_, size_);
    x_ = nullptr;
    close(memfd_);
    unlink(sock_.c_str());
  }

  void serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      nconn_++;
      conns_.push_back(c);  // held open, as the loader does, for the process's life
      goro_hello h{};
      pollfd q{c, POLLIN, 0};
      if (poll(&q, 1, 2000) <= 0 || recv(c, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) continue;
      if (h.magic != GORO_EXPORT_MAGIC || h.abi != GORO_EXPORT_ABI) continue;
      const Answer answer = answer_;
      if (answer == Answer::kSilent) continue;
      goro_welcome w{};
      w.magic = answer == Answer::kBadMagic ? 0xdeadbeef : GORO_EXPORT_MAGIC;
      w.abi = answer == Answer::kBadAbi ? GORO_EXPORT_ABI + 1 : GORO_EXPORT_ABI;
      w.status = 0;
      w.slot = kSlot;
      w.gen = gen_;
      w.flags = 0;
      w.map_size = static_cast<std::uint32_t>(size_);
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
      iovec iov{&w, sizeof w};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = cbuf;
      m.msg_controllen = sizeof cbuf;
      cmsghdr* cm = CMSG_FIRSTHDR(&m);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &memfd_, sizeof(int));
      sendmsg(c, &m, MSG_NOSIGNAL);
    }
  }

  std::atomic<Answer> answer_;
  std::string dir_, pin_, sock_;
  std::size_t size_ = 0;
  std::uint64_t gen_ = 0;
  int memfd_ = -1;
  int listen_ = -1;
  goro_proc_export* x_ = nullptr;
  std::thread server_;
  std::atomic<bool> stop_{false};
  std::atomic<int> nconn_{0};
  std::vector<int> conns_;
};

// ---------------------------------------------------------------------------
// Running a child
// ---------------------------------------------------------------------------
class Child {
 public:
  Child(const std::string& scenario, const std::vector<std::string>& env, const char* exe = g_self) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(out[1], 2);
      for (auto& e : env) putenv(const_cast<char*>(e.c_str()));
      std::string arg = "--scenario=" + scenario;
      execl(exe, exe, arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (in_ >= 0) close(in_);
    close(out_);
  }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

  // Read output until it contains s (true) or timeout/EOF (false).
  bool wait_for(const std::string& s, std::chrono::milliseconds timeout = 10000ms) { return wait_count(s, 1, timeout); }
  // Read output until it contains s n times (true) or timeout/EOF (false).
  bool wait_count(const std::string& s, int n, std::chrono::milliseconds timeout = 10000ms) {
    auto deadline = Clock::now() + timeout;
    auto count = [&] {
      int k = 0;
      for (auto at = output_.find(s); at != std::string::npos; at = output_.find(s, at + 1)) k++;
      return k;
    };
    while (count() < n) {
      if (!read_some(deadline)) return count() >= n;
    }
    return true;
  }
  // Close stdin (ends "spin"), read to EOF and reap. Returns the exit status
  // (-1: killed by a signal or timed out).
  int finish(std::chrono::milliseconds timeout = 20000ms) {
    close_stdin();
    auto deadline = Clock::now() + timeout;
    while (read_some(deadline)) {
    }
    // Not at EOF: the timeout (poll's milliseconds round down, so
    // "now >= deadline" is not the test).
    if (!eof_) kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    reaped_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  // Close stdin (ends "spin" and "inject") without waiting for the exit.
  void close_stdin() {
    if (in_ >= 0) {
      close(in_);
      in_ = -1;
    }
  }
  bool alive() {
    int st;
    return waitpid(pid_, &st, WNOHANG) == 0;
  }

 private:
  bool read_some(Clock::time_point deadline) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return false;
    char buf[4096];
    ssize_t n = read(out_, buf, sizeof buf);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool reaped_ = false;
  bool eof_ = false;
  std::string output_;
};

// ---------------------------------------------------------------------------
// Reading the block the way the BPF side and the loader do
// ---------------------------------------------------------------------------
template <typename T>
T ld(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A consistent copy of the counters (seq even and unchanged), or false.
bool read_counters(const goro_proc_export* x, goro_sched_counters* out) {
  for (int i = 0; i < 1000; i++) {
    std::uint64_t s1 = ld(&x->sc.seq);
    if (s1 & 1) continue;
    // Field by field with acquire loads (each keeps the loads after it
    // after it, the final seq load included): a fence-free seqlock read.
    static_assert(sizeof *out % 4 == 0);
    const auto* src = reinterpret_cast<const std::uint32_t*>(&x->sc);
    auto* dst = reinterpret_cast<std::uint32_t*>(out);
    for (std::size_t k = 0; k < sizeof *out / 4; k++) dst[k] = ld(&src[k]);
    if (ld(&x->sc.seq) == s1) return true;
  }
  return false;
}

std::set<std::uint32_t> task_tids(pid_t pid) {
  std::set<std::uint32_t> tids;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (auto* d = opendir(dir.c_str())) {
    while (auto* e = readdir(d)) {
      if (e->d_name[0] != '.') tids.insert(static_cast<std::uint32_t>(std::stoul(e->d_name)));
    }
    closedir(d);
  }
  return tids;
}

// ---------------------------------------------------------------------------
// Attaching
// ---------------------------------------------------------------------------

// Runs the "report" child against loader with GORO_DEBUG=<debug> and
// expects it to run standalone, saying why under scxdebug ("goro: scx:
// standalone: <why>", or nothing when why is empty).
void expect_standalone(FakeLoader& loader, const std::string& debug, const std::string& why) {
  Child c("report", loader.env(debug));
  EXPECT_EQ(c.finish(), 0) << c.output();
  if (why.empty()) {
    EXPECT_EQ(c.output().find("goro: scx:"), std::string::npos) << c.output();
  } else {
    EXPECT_NE(c.output().find("goro: scx: standalone: " + why), std::string::npos) << c.output();
    EXPECT_NE(c.output().find("attached=0"), std::string::npos) << c.output();
  }
}

TEST(ScxAttach, AttachesToTheLoaderAndSaysSoUnderScxdebug) {
  FakeLoader loader(Answer::kWelcome);
  Child c("report", loader.env("scxdebug=1"));
  EXPECT_EQ(c.finish(), 0) << c.output();
  EXPECT_NE(c.output().find("goro: scx: attached to scx_goro, slot 3"), std::string::npos) << c.output();
  EXPECT_NE(c.output().find("attached=1"), std::string::npos) << c.output();
  EXPECT_EQ(loader.connections(), 1);
  EXPECT_EQ(ld(&loader.x()->hdr.abi), static_cast<std::uint32_t>(GORO_EXPORT_ABI)) << "the runtime publishes its ABI";
  EXPECT_EQ(ld(&loader.x()->hdr.pid), static_cast<std::uint32_t>(c.pid()));
}

TEST(ScxAttach, ScxZeroNeverConnects) {
  FakeLoader loader(Answer::kWelcome);
  expect_standalone(loader, "scx=0,scxdebug=1", "GORO_DEBUG=scx=0");
  EXPECT_EQ(loader.connections(), 0) << "GORO_DEBUG=scx=0 must not even connect";
}

TEST(ScxAttach, NoPinDirIsStandalone) {
  FakeLoader loader(Answer::kWelcome, /*pin_dir=*/false);
  expect_standalone(loader, "scxdebug=1", "no scx_goro loader");
  EXPECT_EQ(loader.connections(), 0);
}

TEST(ScxAttach, QuietWithoutScxdebug) {
  FakeLoader loader(Answer::kWelcome, /*pin_dir=*/false);
  expect_standalone(loader, "", "");
}

TEST(ScxAttach, SilentLoaderIsStandaloneWithinASecondOrSo) {
  FakeLoader loader(Answer::kSilent);
  auto t0 = Clock::now();
  expect_standalone(loader, "scxdebug=1", "no welcome: timed out");
  auto took = Clock::now() - t0;
  EXPECT_LT(took, 3s) << "the handshake must time out after ~1 s";
}

TEST(ScxAttach, BadMagicIsStandalone) {
  FakeLoader loader(Answer::kBadMagic);
  expect_standalone(loader, "scxdebug=1", "bad welcome magic");
}

TEST(ScxAttach, AbiMismatchIsStandalone) {
  FakeLoader loader(Answer::kBadAbi);
  expect_standalone(loader, "scxdebug=1", "ABI mismatch");
  EXPECT_EQ(ld(&loader.x()->hdr.abi), 0u) << "a refused block is never written";
}

// ---------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------
// What the "spin" child (GORO_MAXPROCS=2) publishes in block x: its
// records, P table and counters describe it.
void expect_block_describes_spinner(const goro_proc_export* x, Child& c, std::uint32_t spin_tid) {
  // The counters come with sysmon's next loop (<= 10 ms) after attaching.
  for (auto d = Clock::now() + 2s; ld(&x->sc.seq) == 0 && Clock::now() < d;) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(ld(&x->hdr.pid), static_cast<std::uint32_t>(c.pid()));
  EXPECT_EQ(ld(&x->hdr.abi), static_cast<std::uint32_t>(GORO_EXPORT_ABI));

  // The spinning G's M: RUNNING, holding a P the P table says it owns.
  bool seen_running = false;
  std::string last;
  auto deadline = Clock::now() + 5s;
  while (!seen_running && Clock::now() < deadline) {
    std::uint32_t nm = ld(&x->hdr.nm);
    for (std::uint32_t i = 0; i < nm && i < GORO_MAX_M; i++) {
      if (ld(&x->m[i].tid) != spin_tid) continue;
      std::uint64_t w = ld(&x->m[i].word);
      std::int32_t p = GORO_MW_P(w);
      last = "state " + std::to_string(GORO_MW_STATE(w)) + " P" + std::to_string(p);
      if (GORO_MW_STATE(w) != GORO_M_RUNNING || p < 0 || p >= 2) continue;
      std::uint64_t pw = ld(&x->p[p].word);
      if (GORO_PW_STATUS(pw) == GORO_P_RUNNING && GORO_PW_M(pw) == static_cast<std::int32_t>(i)) seen_running = true;
    }
    if (!seen_running) std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(seen_running) << "the spinning G's M (tid " << spin_tid << ") never showed RUNNING with its P; last: "
                            << last;

  // Every described M is a thread of the child; sysmon is one of them.
  std::set<std::uint32_t> tids = task_tids(c.pid());
  std::uint32_t nm = ld(&x->hdr.nm);
  EXPECT_GE(nm, 3u) << "at least two Ms and sysmon";
  int nsysmon = 0;
  for (std::uint32_t i = 0; i < nm; i++) {
    std::uint32_t tid = ld(&x->m[i].tid);
    std::uint64_t w = ld(&x->m[i].word);
    std::uint32_t st = GORO_MW_STATE(w);
    EXPECT_LT(st, static_cast<std::uint32_t>(GORO_M_NR_STATES)) << "record " << i;
    if (st == GORO_M_FREE) continue;
    if (tid == 0) {
      EXPECT_EQ(st, static_cast<std::uint32_t>(GORO_M_STARTING)) << "record " << i << ": only a starting M has no tid";
      continue;
    }
    EXPECT_TRUE(tids.count(tid)) << "record " << i << " names tid " << tid << ", not a thread of the child";
    if (st == GORO_M_SYSMON) {
      nsysmon++;
      EXPECT_LT(GORO_MW_P(w), 0) << "sysmon holds no P";
    }
  }
  EXPECT_EQ(nsysmon, 1);

  // The counters: a consistent snapshot, fresh, and right. Right about a
  // moment after the spinner was seen running: sysmon's publication before
  // that (up to a loop, 10 ms or more on a loaded host) may predate the
  // spinner's goroutine and M.
  goro_sched_counters sc{};
  const std::uint64_t seen_ns = now_ns();
  bool fresh = false;
  // (A read that meets only odd seqcounts -- sysmon descheduled inside its
  // write on a loaded host -- is tried again, like a stale one.)
  for (auto d = Clock::now() + 5s; !fresh && Clock::now() < d;) {
    fresh = read_counters(x, &sc) && sc.published_ns >= seen_ns;
    if (!fresh) std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(fresh) << "no consistent counters published within 5 s of the spinner running";
  EXPECT_EQ(sc.seq % 2, 0u);
  EXPECT_GT(sc.seq, 0u) << "counters were published";
  EXPECT_EQ(sc.gomaxprocs, 2u);
  EXPECT_EQ(sc.nmsys, 1u);
  EXPECT_GE(sc.mcount, 3u);
  EXPECT_LE(sc.npidle, 1u) << "the spinner holds a P";
  EXPECT_GE(sc.ngoroutines, 2u);
  std::uint64_t now = now_ns();
  EXPECT_LT(now - ld(&x->sc.published_ns), 1000000000ull) << "sysmon publishes every loop";
  EXPECT_LT(now - ld(&x->hdr.heartbeat_ns), 1000000000ull) << "sysmon refreshes the heartbeat";

  // LOCKHELD comes and goes with sched.lock: no record keeps it.
  std::vector<int> held(nm, 0);
  constexpr int kSamples = 40;
  for (int s = 0; s < kSamples; s++) {
    for (std::uint32_t i = 0; i < nm; i++) held[i] += (ld(&x->m[i].word) & GORO_MF_LOCKHELD) ? 1 : 0;
    std::this_thread::sleep_for(2ms);
  }
  for (std::uint32_t i = 0; i < nm; i++) EXPECT_LT(held[i], kSamples) << "record " << i << " kept LOCKHELD";
}

std::vector<std::string> spinner_env(const FakeLoader& loader, const std::string& debug) {
  auto e = loader.env(debug);
  e.push_back("GORO_MAXPROCS=2");
  return e;
}

std::uint32_t spinner_tid(Child& c) {
  if (!c.wait_for("spin_tid=") || !c.wait_for("\n", 2000ms)) return 0;
  auto pos = c.output().find("spin_tid=");
  return static_cast<std::uint32_t>(std::stoul(c.output().substr(pos + 9)));
}

TEST(ScxPublish, MRecordsPTableAndCountersDescribeTheProcess) {
  FakeLoader loader(Answer::kWelcome);
  Child c("spin", spinner_env(loader, "asyncpreemptoff=1"));
  std::uint32_t spin_tid = spinner_tid(c);
  ASSERT_NE(spin_tid, 0u) << c.output();
  ASSERT_NE(c.output().find("attached=1"), std::string::npos) << c.output();
  expect_block_describes_spinner(loader.x(), c, spin_tid);
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// The loader's instance ends (it exits, or the kernel makes it restart) and
// a new one starts: the process attaches to the new one by itself, and its
// new block describes it as fully as the first did -- Ms created before the
// restart included.
TEST(ScxPublish, FollowsARestartedLoader) {
  FakeLoader loader(Answer::kWelcome);
  Child c("spin", spinner_env(loader, "asyncpreemptoff=1,scxdebug=1"));
  std::uint32_t spin_tid = spinner_tid(c);
  ASSERT_NE(spin_tid, 0u) << c.output();
  ASSERT_TRUE(c.wait_for("attached to scx_goro, slot")) << c.output();
  loader.restart(700ms);  // longer than sysmon's 500 ms between tries
  ASSERT_TRUE(c.wait_for("the loader hung up", 5000ms)) << c.output();
  ASSERT_TRUE(c.wait_for("re-attached to a restarted scx_goro, slot", 5000ms)) << c.output();
  EXPECT_EQ(loader.connections(), 1) << "one connection to the new instance";
  expect_block_describes_spinner(loader.x(), c, spin_tid);
  // And once more: it keeps following.
  loader.restart(0ms);
  ASSERT_TRUE(c.wait_count("re-attached to a restarted scx_goro", 2, 5000ms)) << c.output();
  expect_block_describes_spinner(loader.x(), c, spin_tid);
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// A process started before the loader attaches once the loader appears
// (sysmon looks at most once a second), and its block then describes it as
// fully as an attach at start would: the spinning G's M, whose word never
// changes after the attach, comes from the record kept while standalone.
TEST(ScxPublish, AttachesLateWhenALoaderAppears) {
  FakeLoader loader(Answer::kWelcome, /*pin_dir=*/false);
  Child c("spin", spinner_env(loader, "asyncpreemptoff=1,scxdebug=1"));
  std::uint32_t spin_tid = spinner_tid(c);
  ASSERT_NE(spin_tid, 0u) << c.output();
  ASSERT_NE(c.output().find("attached=0"), std::string::npos) << c.output();
  ASSERT_NE(c.output().find("standalone: no scx_goro loader"), std::string::npos) << c.output();
  EXPECT_EQ(loader.connections(), 0);
  loader.appear();
  ASSERT_TRUE(c.wait_for("attached to scx_goro late, slot", 5000ms)) << c.output();
  EXPECT_EQ(loader.connections(), 1);
  expect_block_describes_spinner(loader.x(), c, spin_tid);
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// A late attach to a loader that refuses for good (another ABI) is tried
// once, not every second for the rest of the process's life.
TEST(ScxPublish, APermanentRefusalEndsTheLateTries) {
  FakeLoader loader(Answer::kBadAbi, /*pin_dir=*/false);
  Child c("spin", spinner_env(loader, "asyncpreemptoff=1,scxdebug=1"));
  ASSERT_NE(spinner_tid(c), 0u) << c.output();
  loader.appear();
  ASSERT_TRUE(c.wait_for("not attached yet: ABI mismatch", 5000ms)) << c.output();
  EXPECT_NE(c.output().find("no more tries"), std::string::npos) << c.output();
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(loader.connections(), 1) << c.output();
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// sysmon never waits on the loader (L5): a restarted loader that accepts the
// connection and says nothing costs sysmon no loop. Before, each try held
// sysmon in a receive for its one-second timeout, and everything sysmon
// does -- here, handing on the P of a G in a system call -- waited with it.
TEST(ScxPublish, ASilentLoaderNeverHoldsUpSysmon) {
  FakeLoader loader(Answer::kWelcome);
  auto env = loader.env("scxdebug=1");
  env.push_back("GORO_MAXPROCS=1");
  Child c("sysmon-live", env);
  ASSERT_TRUE(c.wait_for("attached to scx_goro, slot")) << c.output();
  ASSERT_TRUE(c.wait_for("gap_ms=")) << c.output();
  loader.answer(Answer::kSilent);
  loader.restart(0ms);
  ASSERT_TRUE(c.wait_for("the loader hung up", 5000ms)) << c.output();
  const std::size_t from = c.output().size();
  // Two handshakes time out (a second each, 500 ms apart).
  ASSERT_TRUE(c.wait_count("not re-attached yet: no welcome: timed out", 2, 6000ms)) << c.output();
  long worst = 0;
  int windows = 0;
  for (auto at = c.output().find("gap_ms=", from); at != std::string::npos; at = c.output().find("gap_ms=", at + 1)) {
    worst = std::max(worst, std::stol(c.output().substr(at + 7)));
    windows++;
  }
  EXPECT_GE(windows, 6) << c.output();
  EXPECT_LT(worst, 400) << "main waited " << worst << " ms for sysmon while the loader was silent\n" << c.output();
  // And it attaches once the loader answers again.
  loader.answer(Answer::kWelcome);
  ASSERT_TRUE(c.wait_for("re-attached to a restarted scx_goro, slot", 5000ms)) << c.output();
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// The sum of voluntary context switches of every thread of @pid.
long voluntary_switches(int pid) {
  long sum = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    FILE* f = std::fopen((dir + "/" + e->d_name + "/status").c_str(), "r");
    if (!f) continue;
    char line[256];
    long v;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) sum += v;
    std::fclose(f);
  }
  closedir(d);
  return sum;
}

// The loader goes away for good: an idle process must not keep its sysmon
// in the attached 10 ms loop (100 wake-ups a second, for ever). Its main
// wakes ~3 times a second, each time waking sysmon for a burst of short
// loops as standalone: ~70 switches in 2 s here, against ~210 in the
// attached loop before the fix.
TEST(ScxPublish, IdleProcessBacksOffWhenTheLoaderIsGone) {
  auto loader = std::make_unique<FakeLoader>(Answer::kWelcome);
  Child c("idle", loader->env("scxdebug=1"));
  ASSERT_TRUE(c.wait_for("attached=1 pid=")) << c.output();
  int pid = 0;
  std::sscanf(c.output().c_str() + c.output().find("pid=") + 4, "%d", &pid);
  ASSERT_GT(pid, 0) << c.output();
  loader.reset();  // its instance ends, pin directory and socket go
  ASSERT_TRUE(c.wait_for("the loader hung up", 5000ms)) << c.output();
  std::this_thread::sleep_for(500ms);
  long before = voluntary_switches(pid);
  std::this_thread::sleep_for(2000ms);
  long after = voluntary_switches(pid);
  ASSERT_GE(before, 0);
  EXPECT_LT(after - before, 120) << "context switches in 2 s of idleness with no loader: sysmon did not back off";
  std::printf("context switches in 2 s, loader gone: %ld\n", after - before);
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// sysmon's word while it puts Gs from the netpoller on the run queues: the
// BPF stall check must see work on its way (GORO_MF_INJECTING), and the
// flag must go once sysmon is done. Fails if sysmon stops marking its
// injection (take scx_injecting out of sysmon's netpoll bracket).
std::uint64_t sysmon_word(const goro_proc_export* x, int* found) {
  *found = 0;
  std::uint64_t word = 0;
  std::uint32_t nm = ld(&x->hdr.nm);
  for (std::uint32_t i = 0; i < nm && i < GORO_MAX_M; i++) {
    std::uint64_t w = ld(&x->m[i].word);
    if (GORO_MW_STATE(w) == GORO_M_SYSMON) {
      word = w;
      ++*found;
    }
  }
  return word;
}

TEST(ScxPublish, SysmonInjectingNetpollGsIsFlagged) {
  FakeLoader loader(Answer::kWelcome);
  auto env = loader.env();
  env.push_back("GORO_MAXPROCS=1");
  Child c("inject", env);
  ASSERT_TRUE(c.wait_for("sysmon paused injecting", 15000ms)) << c.output();
  int found = 0;
  std::uint64_t w = sysmon_word(loader.x(), &found);
  ASSERT_EQ(found, 1) << "one sysmon record";
  EXPECT_TRUE(w & GORO_MF_INJECTING) << "sysmon inside its injection bracket, word " << std::hex << w;
  EXPECT_LT(GORO_MW_P(w), 0) << "sysmon holds no P while it injects";

  c.close_stdin();  // sysmon goes on: U runs
  ASSERT_TRUE(c.wait_for("U ran", 10000ms)) << c.output();
  // sysmon clears the flag just after injectglist, which may let U run
  // first: allow it a moment (the child lingers 300 ms).
  for (auto d = Clock::now() + 250ms; Clock::now() < d; std::this_thread::sleep_for(1ms)) {
    w = sysmon_word(loader.x(), &found);
    if (found == 1 && !(w & GORO_MF_INJECTING)) break;
  }
  ASSERT_EQ(found, 1);
  EXPECT_FALSE(w & GORO_MF_INJECTING) << "the flag outlived the injection, word " << std::hex << w;
  EXPECT_EQ(c.finish(), 0) << c.output();
}

// ---------------------------------------------------------------------------
// The in-kernel checkdead, runtime side: the test writes the kernel view.
// ---------------------------------------------------------------------------

// A record the runtime does not use (it hands out the lowest free ones).
constexpr int kFakeRecord = GORO_MAX_M - 1;
constexpr std::uint32_t kFakeTid = 424242;

void describe_fake_starting_m(goro_proc_export* x, std::uint32_t tid) {
  x->m[kFakeRecord].tid = tid;
  __atomic_store_n(&x->m[kFakeRecord].word, GORO_MW_MAKE(GORO_M_STARTING, 0, 0), __ATOMIC_RELEASE);
}

// A kernel view maintained for this attach (kv.gen == hdr.gen) in which an
// M that was handed P0 is runnable.
void describe_runnable_starting_m(goro_proc_export* x) {
  describe_fake_starting_m(x, kFakeTid);
  x->kv.km[kFakeRecord] = GORO_KM_RUNNABLE | (static_cast<std::uint64_t>(kFakeTid) << 32);
  __atomic_store_n(&x->kv.gen, FakeLoader::kGen, __ATOMIC_RELEASE);
}

TEST(ScxCheckdead, KernelSeesAnMHandedAPRunnable_VetoesUntilTheViewAgrees) {
  FakeLoader loader(Answer::kWelcome);
  goro_proc_export* x = loader.x();
  describe_runnable_starting_m(x);

  Child c("deadlock", loader.env("scxdebug=1"));
  ASSERT_TRUE(c.wait_for("goro: scx: checkdead veto #1: kernel sees M127 (tid 424242, STARTING P0) runnable"))
      << c.output();
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(c.alive()) << "vetoed: the process must live while the kernel says an M is coming\n" << c.output();
  EXPECT_TRUE(c.wait_for("veto #2", 2000ms)) << "sysmon re-checks a vetoed verdict\n" << c.output();
  EXPECT_EQ(c.output().find("fatal error"), std::string::npos) << c.output();

  // The M went away: the kernel view now agrees with the runtime's count.
  __atomic_store_n(&x->kv.km[kFakeRecord], 0ull, __ATOMIC_RELEASE);
  EXPECT_EQ(c.finish(5000ms), 2) << c.output();
  const std::string& out = c.output();
  auto confirm = out.find(
      "runtime: checkdead: scx_goro confirms: no thread of this process holding or carrying a P is runnable");
  auto fatal = out.find("fatal error: all goroutines are asleep - deadlock!");
  ASSERT_NE(confirm, std::string::npos) << out;
  ASSERT_NE(fatal, std::string::npos) << out;
  EXPECT_LT(confirm, fatal) << "the confirmation comes before the fatal error line";
}

// The block is the process's own memory, so a view can be forged -- by the
// process, or by anything that kept a mapping of it. No thread stays
// runnable past the sched_ext watchdog's timeout without the scheduler
// being ejected, so vetoes that last longer than that are not believed:
// the runtime gives its own verdict and says why.
TEST(ScxCheckdead, AViewThatVetoesForeverIsOverruledAfterTheWatchdogTimeout) {
  FakeLoader loader(Answer::kWelcome);
  goro_proc_export* x = loader.x();
  describe_runnable_starting_m(x);

  Child c("deadlock", loader.env("scxdebug=1"));
  ASSERT_TRUE(c.wait_for("checkdead veto #1")) << c.output();
  const auto t0 = Clock::now();
  EXPECT_EQ(c.finish(20000ms), 2) << "a view that never changes must not hang a deadlock for ever\n" << c.output();
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 4000ms) << "overruled before the watchdog's timeout\n" << c.output();
  const std::string& out = c.output();
  auto overruled = out.find("runtime: checkdead: the kernel view has vetoed this verdict for");
  auto fatal = out.find("fatal error: all goroutines are asleep - deadlock!");
  ASSERT_NE(overruled, std::string::npos) << out;
  ASSERT_NE(fatal, std::string::npos) << out;
  EXPECT_LT(overruled, fatal) << out;
  EXPECT_EQ(out.find("scx_goro confirms"), std::string::npos) << out;
}

TEST(ScxCheckdead, AnMBeingCreatedWithAnUnmatchedThreadRunnableVetoes) {
  FakeLoader loader(Answer::kWelcome);
  goro_proc_export* x = loader.x();
  describe_fake_starting_m(x, 0);  // no tid yet: the thread is being created
  x->kv.nr_unmatched_runnable = 1;
  __atomic_store_n(&x->kv.gen, FakeLoader::kGen, __ATOMIC_RELEASE);

  Child c("deadlock", loader.env("scxdebug=1"));
  ASSERT_TRUE(c.wait_for("checkdead veto #1: kernel sees M127 (tid 0, STARTING P0)")) << c.output();
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(c.alive()) << c.output();
  __atomic_store_n(&x->kv.nr_unmatched_runnable, 0u, __ATOMIC_RELEASE);
  EXPECT_EQ(c.finish(5000ms), 2) << c.output();
  EXPECT_NE(c.output().find("scx_goro confirms"), std::string::npos) << c.output();
}

TEST(ScxCheckdead, StaleOrMismatchedViewIsNoEvidence) {
  FakeLoader loader(Answer::kWelcome);
  goro_proc_export* x = loader.x();
  // A km entry about another thread than the record's (a reused record):
  // not evidence. And the view is maintained.
  describe_fake_starting_m(x, kFakeTid);
  x->kv.km[kFakeRecord] = GORO_KM_RUNNABLE | (static_cast<std::uint64_t>(kFakeTid + 1) << 32);
  __atomic_store_n(&x->kv.gen, FakeLoader::kGen, __ATOMIC_RELEASE);
  Child c("deadlock", loader.env("scxdebug=1"));
  EXPECT_EQ(c.finish(10000ms), 2) << c.output();
  EXPECT_EQ(c.output().find("veto"), std::string::npos) << c.output();
  EXPECT_NE(c.output().find("scx_goro confirms"), std::string::npos) << c.output();
}

TEST(ScxCheckdead, NoKernelViewMeansTodaysOutput) {
  FakeLoader loader(Answer::kWelcome);
  goro_proc_export* x = loader.x();
  // kv.gen != hdr.gen: the BPF side does not maintain the view (yet).
  describe_fake_starting_m(x, kFakeTid);
  x->kv.km[kFakeRecord] = GORO_KM_RUNNABLE | (static_cast<std::uint64_t>(kFakeTid) << 32);
  Child c("deadlock", loader.env());
  EXPECT_EQ(c.finish(10000ms), 2) << c.output();
  EXPECT_NE(c.output().find("fatal error: all goroutines are asleep - deadlock!"), std::string::npos) << c.output();
  EXPECT_EQ(c.output().find("scx"), std::string::npos) << c.output();
}

TEST(ScxCheckdead, StandaloneDeadlockOutputIsUnchanged) {
  Child c("deadlock", {"GORO_SCX_PIN_DIR=/nonexistent/goro-scx-test"});
  EXPECT_EQ(c.finish(10000ms), 2) << c.output();
  EXPECT_NE(c.output().find("fatal error: all goroutines are asleep - deadlock!"), std::string::npos) << c.output();
  EXPECT_EQ(c.output().find("scx"), std::string::npos) << c.output();
}

// ---------------------------------------------------------------------------
// #59600's pre-fix shape, vetoed through a kernel view built from /proc
// ---------------------------------------------------------------------------

// The BPF side's view, approximated from userspace: every described thread
// whose /proc state is R (running or on a run queue) is runnable. Refreshed
// every 100 µs; good enough for threads that stay in one state for seconds,
// as the paused ones of the #59600 test do.
class ProcKernelView {
 public:
  ProcKernelView(goro_proc_export* x, pid_t pid) : x_(x), pid_(pid), t_([this] { loop(); }) {}
  ~ProcKernelView() {
    stop_ = true;
    t_.join();
  }

 private:
  void loop() {
    __atomic_store_n(&x_->kv.gen, FakeLoader::kGen, __ATOMIC_RELEASE);
    while (!stop_) {
      for (int i = 0; i < GORO_MAX_M; i++) {
        std::uint32_t tid = ld(&x_->m[i].tid);
        std::uint64_t km = 0;
        if (tid != 0 && state(tid) == 'R') km = GORO_KM_RUNNABLE | (static_cast<std::uint64_t>(tid) << 32);
        __atomic_store_n(&x_->kv.km[i], km, __ATOMIC_RELEASE);
      }
      __atomic_store_n(&x_->kv.updated_ns, now_ns(), __ATOMIC_RELEASE);
      std::this_thread::sleep_for(100us);
    }
  }
  char state(std::uint32_t tid) const {
    std::string path = "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(tid) + "/stat";
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) return '?';
    char buf[512];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* rp = std::strrchr(buf, ')');  // "tid (comm) S ..."
    return rp && rp[1] == ' ' ? rp[2] : '?';
  }
  goro_proc_export* x_;
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

// Runs one of test_59600's scenarios attached to the fake loader, with the
// /proc kernel view and spinning pauses; returns the child's veto count.
unsigned long long run_59600_scenario(const std::string& scenario, bool legacy, std::vector<std::string> extra) {
  FakeLoader loader(Answer::kWelcome);
  auto env = loader.env(legacy ? "startmlegacy=1,scxdebug=1" : "scxdebug=1");
  env.push_back("GORO_59600_KERNEL=1");
  for (auto& e : extra) env.push_back(e);
  Child c(scenario, env, GORO_TEST_59600);
  auto view = std::make_unique<ProcKernelView>(loader.x(), c.pid());
  if (!c.wait_for("attached to scx_goro")) {
    ADD_FAILURE() << c.output();
    return 0;
  }
  EXPECT_EQ(c.finish(60000ms), 0) << c.output();
  EXPECT_EQ(c.output().find("fatal error"), std::string::npos) << c.output();
  auto pos = c.output().find("scx_vetoes=");
  if (pos == std::string::npos) {
    ADD_FAILURE() << c.output();
    return 0;
  }
  if (legacy) {
    EXPECT_NE(c.output().find("kernel sees M"), std::string::npos) << c.output();
  }
  return std::stoull(c.output().substr(pos + 11));
}

// test_59600's idle_m and no_idle_m scenarios with Go 1.20's lock handling
// (startmlegacy) and spinning pauses: sysmon takes the idle P, drops
// sched.lock and spins; the worker reaches checkdead with mcount - nmidle -
// nmidlelocked - nmsys == 0 and a runnable G. Standalone that is
// 'checkdead: runnable g'; here the kernel view shows sysmon runnable and
// CARRYING the P, so the verdict is vetoed and the program lives.
// The view is only as fresh as the sampling thread's last pass: under TSan
// on a 2-CPU host that thread has been seen to lag by 70 ms, long after
// sysmon started spinning, and a stale view rightly confirms the verdict.
// What these tests check is the runtime's use of a correct view, which the
// other sanitizer builds and the VM (where scx_goro keeps it current) do.
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() GTEST_SKIP() << "the /proc-sampled kernel view lags too much under TSan"
#else
#define SKIP_UNDER_TSAN() \
  do {                    \
  } while (0)
#endif

TEST(ScxCheckdead, Issue59600PreFixShapeIsVetoedWhenTheKernelSeesSysmonCarryingTheP_IdleM) {
  SKIP_UNDER_TSAN();
  EXPECT_GE(run_59600_scenario("idle_m", true, {}), 1u);
}

TEST(ScxCheckdead, Issue59600PreFixShapeIsVetoedWhenTheKernelSeesSysmonCarryingTheP_ReservedM) {
  SKIP_UNDER_TSAN();
  EXPECT_GE(run_59600_scenario("no_idle_m", true, {"GORO_MAXPROCS=1"}), 1u);
}

TEST(ScxCheckdead, Issue59600FixedShapeNeverReachesAVerdict) {
  SKIP_UNDER_TSAN();
  EXPECT_EQ(run_59600_scenario("idle_m", false, {}), 0u);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "--scenario=", 11) == 0) return run_scenario(argv[i] + 11);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
