// SPDX-License-Identifier: BSD-3-Clause
//
// goro_export_writer MODE NTHREADS SECONDS
//
// A stand-in for a goro process, for scx_goro's VM tests: it speaks the
// attach handshake of bpf/scx_goro.h itself (no goro runtime) and then
// publishes into its block what MODE says, with NTHREADS worker threads,
// for SECONDS seconds. At exit it prints one line:
//
//   export_writer: mode MODE pid PID threads N cpu_ms C wall_ms W attached 0|1 workers_cpu_ms WC
//
// (cpu_ms: the whole process; workers_cpu_ms: the NTHREADS workers only.)
// Modes:
//   honest   every worker burns CPU and publishes RUNNING with P i (its own P),
//            fresh heartbeat and counters: what a busy goro process looks like.
//   liar     every worker claims RUNNING|LOCKHELD|CARRYING with P 0, the
//            counters claim huge run queues, heartbeat fresh; all spin. Must
//            get no more CPU than an honest CPU hog with as many threads.
//   garbage  one worker writes random bytes over the whole block, continuously,
//            while the others burn CPU. Must be harmless and gain nothing.
//   stall    workers register as IDLE Ms, P0 claims one runnable G (g17) and
//            nothing else can run it; then everybody sleeps. A sysmon thread
//            keeps the heartbeat fresh. scx_goro must report a stall.
//   idle     like stall but with empty queues: must report nothing.
//   stallflap  like stall, but the runnable G comes and goes every 150 ms:
//            a new stall episode (and event) every 300 ms, for ever.
//            What a process flooding the loader's log with events does.
//   plain    does not attach: NTHREADS plain CPU hogs (the fairness baseline).
//   waker    every worker loops: publish STARTING with its P (as startm does
//            before waking an M), sleep until an absolute time 1 ms ahead,
//            publish RUNNING, burn 300 us. Reports how late its wakeups ran
//            (wake_p50_us / wake_p99_us): the M wake latency under load.
//   waker-plain  the same without attaching (the baseline).
//   spinner  every worker alternates 2 ms SPINNING (no P) and 2 ms RUNNING
//            with its P, burning CPU throughout: exercises the spin queue.
//   snoop    (NTHREADS ignored) attaches, closes its connection but keeps its
//            mapping, and watches the block for SECONDS: exit 3 with
//            "snoop: saw another owner ..." if anyone else's pid or
//            generation shows up in it (the slot went to another process and
//            the memory with it); else 0 with "snoop: only its own block".
//   swarm    NTHREADS child processes (fork, no exec) each attach and hold
//            their slot for SECONDS; the parent prints "swarm: attached A
//            refused R" once all have tried and exits 0 when they are done.
//            With GORO_WRITER_ORPHAN=1 each child hands its connection to a
//            grandchild that keeps it for SECONDS, and exits at once: slots
//            held by connections whose processes are dead.
//   dstate   (no attach; NTHREADS ignored) prints "dstate: tid T" and sits in
//            an uninterruptible sleep (a vfork parent waiting for its child)
//            for SECONDS: a thread in D state for the probe test.
//   probe    (NTHREADS = a foreign tid) describes that tid as its M holding
//            P0, with one runnable G on P0 and no other M: the stall check's
//            condition. Prints "probe: stall_events N" after SECONDS: if the
//            kernel looked the foreign thread up, N tells its owner whether
//            that thread was in D state (0: it was).
//   spinall  every worker claims SPINNING for ever and burns CPU (a hostile
//            process: more spinners than CPUs must not starve anybody).
//            Up to 4 * GORO_MAX_M threads; those beyond the M table just burn.
//
// Exit status: 0; 2 if attaching failed (except in plain mode); 1 on bad usage.
// GORO_WRITER_SELF_STOP=1 in the environment: the writer SIGSTOPs itself
// 50 ms after its workers started (for the SIGSTOP test).

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "scx_goro.h"

namespace {

enum class Mode { kHonest, kLiar, kGarbage, kStall, kIdle, kPlain, kWaker, kWakerPlain, kSpinner, kSpinAll, kSnoop, kSwarm, kStallFlap, kDState, kProbe };

// Shutdown is two-phase (see the end of main): sysmon_done stops sysmon
// and the scribbler, done the workers.
std::atomic<bool> done{false};
std::atomic<bool> sysmon_done{false};
std::atomic<bool> scribbler_stopped{false};
goro_proc_export* blk = nullptr;
int conn_fd = -1;  // the connection to the loader, once attached
uint64_t own_gen = 0;

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t gettid_u32() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

// Plain stores to shared memory the kernel reads; volatile keeps them real.
void store64(volatile __u64* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
void store32(volatile __u32* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// Publishes the counters under their sequence count (odd while writing).
void publish_counters(uint32_t gomaxprocs, uint32_t npidle, uint32_t runqsize, uint64_t head) {
  goro_sched_counters* sc = &blk->sc;
  const uint64_t seq = sc->seq;
  store64(&sc->seq, seq + 1);
  std::atomic_thread_fence(std::memory_order_release);
  sc->gomaxprocs = gomaxprocs;
  sc->npidle = npidle;
  sc->runqsize = runqsize;
  sc->runq_head_goid = head;
  sc->published_ns = mono_ns();
  std::atomic_thread_fence(std::memory_order_release);
  store64(&sc->seq, seq + 2);
}

// Attaches: returns the block, or nullptr with a message.
goro_proc_export* attach(uint32_t* flags) {
  const uint64_t t0 = mono_ns();
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", GORO_SCX_SOCK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::fprintf(stderr, "export_writer: connect %s: %s\n", GORO_SCX_SOCK, std::strerror(errno));
    return nullptr;
  }
  goro_hello hello = {GORO_EXPORT_MAGIC, GORO_EXPORT_ABI};
  if (send(fd, &hello, sizeof(hello), 0) != static_cast<ssize_t>(sizeof(hello))) {
    std::fprintf(stderr, "export_writer: send hello: %s\n", std::strerror(errno));
    return nullptr;
  }
  goro_welcome w = {};
  iovec iov = {&w, sizeof(w)};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n != static_cast<ssize_t>(sizeof(w)) || w.magic != GORO_EXPORT_MAGIC) {
    std::fprintf(stderr, "export_writer: bad welcome (%zd bytes): %s\n", n, std::strerror(errno));
    return nullptr;
  }
  if (w.status != 0) {
    std::fprintf(stderr, "export_writer: attach refused: %s\n", std::strerror(-w.status));
    return nullptr;
  }
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) {
    std::fprintf(stderr, "export_writer: welcome without a map fd\n");
    return nullptr;
  }
  int map_fd;
  std::memcpy(&map_fd, CMSG_DATA(c), sizeof(int));
  void* p = mmap(nullptr, w.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "export_writer: mmap: %s\n", std::strerror(errno));
    return nullptr;
  }
  close(map_fd);
  // The connection stays open (close-on-exec) for our whole life: closing
  // it is how the loader learns we are gone.
  conn_fd = fd;
  own_gen = w.gen;
  std::printf("export_writer: attached: slot %u gen %" PRIu64 " flags %#x attach_ms %" PRIu64 "\n", w.slot,
              static_cast<uint64_t>(w.gen), w.flags, (mono_ns() - t0) / 1000000);
  std::fflush(stdout);
  *flags = w.flags;
  return static_cast<goro_proc_export*>(p);
}

void burn_until_done() {
  volatile uint64_t x = 0;
  while (!done.load(std::memory_order_relaxed))
    for (int i = 0; i < 100000; i++) x = x + 1;
}

std::mutex done_mu;
std::condition_variable done_cv;

// Blocks (in a futex) until main says done: a parked M, not a polling one.
void sleep_until_done() {
  std::unique_lock<std::mutex> lk(done_mu);
  done_cv.wait(lk, [] { return done.load(); });
}

// Garbage mode: random bytes over the whole block, all the time.
std::atomic<uint32_t> garbage_tids[GORO_MAX_M];

void scribbler() {
  std::mt19937_64 rng(static_cast<uint64_t>(getpid()) * 7919 + mono_ns());
  volatile uint64_t* words = reinterpret_cast<volatile uint64_t*>(blk);
  const size_t n = sizeof(goro_proc_export) / sizeof(uint64_t);
  while (!sysmon_done.load(std::memory_order_relaxed)) {
    for (size_t i = 0; i < n; i++) words[i] = rng();
    // Random words on records that do name our burning threads, and a
    // fresh heartbeat: the BPF side matches the threads and reads the
    // random words as their states (the worst case, not random tids that
    // match nobody).
    for (int i = 0; i < GORO_MAX_M; i++) {
      const uint32_t tid = garbage_tids[i].load(std::memory_order_relaxed);
      if (tid != 0) store32(&blk->m[i].tid, tid);
    }
    store64(&blk->hdr.heartbeat_ns, mono_ns());
  }
  scribbler_stopped = true;
  burn_until_done();
}

std::atomic<int> nr_sched_ext{0};
std::mutex lat_mu;
std::vector<uint64_t> wake_lat_ns;

void burn_for_ns(uint64_t ns) {
  const uint64_t end = mono_ns() + ns;
  volatile uint64_t x = 0;
  while (mono_ns() < end)
    for (int i = 0; i < 1000; i++) x = x + 1;
}

// One M that is woken again and again with a P: see "waker" above.
void waker(goro_m_export* rec, uint32_t idx) {
  std::vector<uint64_t> lat;
  if (rec != nullptr) {
    store32(&rec->tid, gettid_u32());
    store64(&blk->p[idx].word, GORO_PW_MAKE(GORO_P_RUNNING, idx + 1, 0));
  }
  while (!done.load(std::memory_order_relaxed)) {
    if (rec != nullptr) store64(&rec->word, GORO_MW_MAKE(GORO_M_STARTING, idx, 0));
    const uint64_t due = mono_ns() + 1000000;
    timespec ts = {static_cast<time_t>(due / 1000000000ULL), static_cast<long>(due % 1000000000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    lat.push_back(mono_ns() - due);
    if (rec != nullptr) store64(&rec->word, GORO_MW_MAKE(GORO_M_RUNNING, idx, 0));
    burn_for_ns(300000);
  }
  std::lock_guard<std::mutex> lk(lat_mu);
  wake_lat_ns.insert(wake_lat_ns.end(), lat.begin(), lat.end());
}

std::atomic<uint64_t> workers_cpu_ns{0};

uint64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void worker_body(Mode mode, uint32_t idx, uint32_t nthreads, bool partial);

// The NTHREADS workers' own CPU time is summed apart from the process's:
// an attached writer also has a sysmon thread, which a plain one lacks.
void worker(Mode mode, uint32_t idx, uint32_t nthreads, bool partial) {
  worker_body(mode, idx, nthreads, partial);
  workers_cpu_ns += thread_cpu_ns();
}

void worker_body(Mode mode, uint32_t idx, uint32_t nthreads, bool partial) {
  if (partial) {
    // The loader runs with -p: only SCHED_EXT tasks are scx_goro's.
    sched_param sp = {};
    if (sched_setscheduler(0, GORO_SCHED_EXT, &sp) == 0) nr_sched_ext++;
  }
  if (mode == Mode::kPlain) {
    burn_until_done();
    return;
  }
  if (mode == Mode::kWaker || mode == Mode::kWakerPlain) {
    waker(mode == Mode::kWaker ? &blk->m[idx + 1] : nullptr, idx);
    return;
  }
  if (mode == Mode::kGarbage) {
    // Worker 0 is the scribbler, the others burn: NTHREADS CPU-bound
    // threads in all, like plain mode, so their CPU times compare.
    if (idx == 0) {
      scribbler();
    } else {
      garbage_tids[idx + 1].store(gettid_u32());
      burn_until_done();
    }
    return;
  }
  const uint32_t m = idx + 1;  // record 0 is the sysmon thread
  if (mode == Mode::kSpinAll && m >= GORO_MAX_M) {
    burn_until_done();
    return;
  }
  goro_m_export* rec = &blk->m[m];
  store32(&rec->tid, gettid_u32());
  switch (mode) {
    case Mode::kHonest:
      store64(&blk->p[idx].word, GORO_PW_MAKE(GORO_P_RUNNING, m, 0));
      store64(&rec->word, GORO_MW_MAKE(GORO_M_RUNNING, idx, 0));
      burn_until_done();
      break;
    case Mode::kLiar:
      store64(&rec->word, GORO_MW_MAKE(GORO_M_RUNNING, 0, GORO_MF_LOCKHELD | GORO_MF_CARRYING));
      store64(&blk->p[idx % GORO_MAX_P].word, GORO_PW_MAKE(GORO_P_RUNNING, m, 1000000));
      burn_until_done();
      break;
    case Mode::kSpinner:
      store64(&blk->p[idx].word, GORO_PW_MAKE(GORO_P_RUNNING, m, 0));
      while (!done.load(std::memory_order_relaxed)) {
        store64(&rec->word, GORO_MW_MAKE(GORO_M_SPINNING, -1, 0));
        burn_for_ns(2000000);
        store64(&rec->word, GORO_MW_MAKE(GORO_M_RUNNING, idx, 0));
        burn_for_ns(2000000);
      }
      break;
    case Mode::kSpinAll:
      store64(&rec->word, GORO_MW_MAKE(GORO_M_SPINNING, -1, 0));
      burn_until_done();
      break;
    case Mode::kStall:
    case Mode::kIdle:
    case Mode::kStallFlap:
      store64(&rec->word, GORO_MW_MAKE(GORO_M_IDLE, -1, 0));
      sleep_until_done();
      break;
    default:
      break;
  }
  // Records stay as they are: main marks the whole block stale first (see
  // the end of main), as a runtime that is exiting would.
  (void)nthreads;
}

// The sysmon stand-in: record 0, keeps the heartbeat fresh (every 10 ms,
// like Go's sysmon at its fastest) and, except in garbage mode, republishes
// the counters.
void sysmon(Mode mode, uint32_t nthreads) {
  if (mode != Mode::kGarbage) {
    store32(&blk->m[0].tid, gettid_u32());
    store64(&blk->m[0].word, GORO_MW_MAKE(GORO_M_SYSMON, -1, 0));
  }
  while (!sysmon_done.load(std::memory_order_relaxed)) {
    if (mode != Mode::kGarbage) {
      store64(&blk->hdr.heartbeat_ns, mono_ns());
      switch (mode) {
        case Mode::kHonest:
        case Mode::kSpinner:
        case Mode::kSpinAll:
          publish_counters(nthreads > GORO_MAX_P ? GORO_MAX_P : nthreads, 0, 0, 0);
          break;
        case Mode::kLiar:
          publish_counters(nthreads, 0, 1000000000U, 12345);
          break;
        case Mode::kStall:
        case Mode::kIdle:
          publish_counters(nthreads, nthreads, 0, 0);
          break;
        case Mode::kStallFlap:
          publish_counters(nthreads, nthreads, 0, 0);
          // One runnable G nobody runs during even 150 ms periods.
          store64(&blk->p[0].word, GORO_PW_MAKE(GORO_P_IDLE, -1, (mono_ns() / 150000000ULL) % 2 == 0 ? 1 : 0));
          break;
        default:
          break;
      }
    }
    timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

// dstate mode: the caller sits in D state (waiting for its vfork child)
// while the child sleeps @secs. Its own function: nothing of main's frame
// lives across the vfork.
[[gnu::noinline]] void vfork_and_sleep(long secs) {
  if (vfork() == 0) {
    // Only system calls until _exit: the parent's memory is ours.
    timespec ts = {static_cast<time_t>(secs), 0};
    syscall(SYS_nanosleep, &ts, nullptr);
    _exit(0);
  }
}

// Swarm mode: see the top. Children report 'A' (attached) or 'R' over a pipe.
int swarm(int n, double secs) {
  const bool orphan = std::getenv("GORO_WRITER_ORPHAN") != nullptr;
  int p[2];
  if (pipe(p) != 0) return 1;
  std::fflush(stdout);
  std::vector<pid_t> kids;
  for (int i = 0; i < n; i++) {
    pid_t c = fork();
    if (c < 0) break;
    if (c == 0) {
      close(p[0]);
      uint32_t flags = 0;
      // Quiet: the parent counts.
      if (freopen("/dev/null", "w", stdout) == nullptr || freopen("/dev/null", "w", stderr) == nullptr) _exit(1);
      blk = attach(&flags);
      char r = blk != nullptr ? 'A' : 'R';
      if (blk != nullptr) store64(&blk->hdr.heartbeat_ns, mono_ns());
      if (blk != nullptr && orphan && fork() == 0) {
        // The grandchild keeps the connection; its parent, the owner, dies.
        close(p[1]);
        setsid();
        timespec ts = {static_cast<time_t>(secs), 0};
        nanosleep(&ts, nullptr);
        _exit(0);
      }
      (void)!write(p[1], &r, 1);
      if (!orphan) {
        timespec ts = {static_cast<time_t>(secs), 0};
        nanosleep(&ts, nullptr);
      }
      _exit(0);
    }
    kids.push_back(c);
  }
  close(p[1]);
  int attached = 0, refused = 0;
  char r;
  while (attached + refused < static_cast<int>(kids.size()) && read(p[0], &r, 1) == 1) (r == 'A' ? attached : refused)++;
  std::printf("export_writer: swarm: attached %d refused %d%s\n", attached, refused, orphan ? " (orphaned)" : "");
  std::fflush(stdout);
  for (pid_t c : kids) waitpid(c, nullptr, 0);
  return 0;
}

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s honest|liar|garbage|stall|idle|plain|waker|waker-plain|spinner|spinall|snoop|swarm|stallflap|dstate|probe NTHREADS SECONDS\n",
                 argv[0]);
    return 1;
  }
  const std::string m = argv[1];
  Mode mode;
  if (m == "honest") mode = Mode::kHonest;
  else if (m == "liar") mode = Mode::kLiar;
  else if (m == "garbage") mode = Mode::kGarbage;
  else if (m == "stall") mode = Mode::kStall;
  else if (m == "idle") mode = Mode::kIdle;
  else if (m == "plain") mode = Mode::kPlain;
  else if (m == "waker") mode = Mode::kWaker;
  else if (m == "waker-plain") mode = Mode::kWakerPlain;
  else if (m == "spinner") mode = Mode::kSpinner;
  else if (m == "spinall") mode = Mode::kSpinAll;
  else if (m == "snoop") mode = Mode::kSnoop;
  else if (m == "swarm") mode = Mode::kSwarm;
  else if (m == "stallflap") mode = Mode::kStallFlap;
  else if (m == "dstate") mode = Mode::kDState;
  else if (m == "probe") mode = Mode::kProbe;
  else {
    std::fprintf(stderr, "export_writer: unknown mode '%s'\n", argv[1]);
    return 1;
  }
  const int nthreads = std::atoi(argv[2]);
  const double secs = std::atof(argv[3]);
  const int max_threads = mode == Mode::kProbe                              ? INT32_MAX
                          : mode == Mode::kSpinAll || mode == Mode::kSwarm ? 4 * GORO_MAX_M
                                                                           : GORO_MAX_P;
  if (nthreads < 1 || nthreads > max_threads || secs <= 0) {
    std::fprintf(stderr, "export_writer: want 1..%d threads and a positive duration\n", max_threads);
    return 1;
  }

  if (mode == Mode::kSwarm) return swarm(nthreads, secs);
  if (mode == Mode::kDState) {
    std::printf("export_writer: dstate: tid %u\n", gettid_u32());
    std::fflush(stdout);
    vfork_and_sleep(static_cast<long>(secs));
    return 0;
  }
  if (mode == Mode::kProbe) {
    uint32_t fl = 0;
    blk = attach(&fl);
    if (blk == nullptr) return 2;
    store32(&blk->hdr.abi, GORO_EXPORT_ABI);
    store32(&blk->hdr.nm, 2);
    store32(&blk->m[1].tid, static_cast<uint32_t>(nthreads));  // somebody else's thread
    store64(&blk->m[1].word, GORO_MW_MAKE(GORO_M_RUNNING, 0, 0));
    store64(&blk->p[0].word, GORO_PW_MAKE(GORO_P_RUNNING, 1, 1));
    const uint64_t end = mono_ns() + static_cast<uint64_t>(secs * 1e9);
    while (mono_ns() < end) {
      store64(&blk->hdr.heartbeat_ns, mono_ns());
      publish_counters(1, 0, 0, 0);
      timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
    std::printf("export_writer: probe: stall_events %" PRIu64 "\n",
                static_cast<uint64_t>(__atomic_load_n(&blk->kv.stall_events, __ATOMIC_ACQUIRE)));
    return 0;
  }
  uint32_t flags = 0;
  const bool attaching = mode != Mode::kPlain && mode != Mode::kWakerPlain;
  if (attaching) {
    blk = attach(&flags);
    if (blk == nullptr) return 2;
    store32(&blk->hdr.abi, GORO_EXPORT_ABI);
    store32(&blk->hdr.pid, static_cast<uint32_t>(getpid()));
    store32(&blk->hdr.nm, std::min<uint32_t>(static_cast<uint32_t>(nthreads) + 1, GORO_MAX_M));
    store64(&blk->hdr.heartbeat_ns, mono_ns());
    if (mode == Mode::kStall) {
      // One runnable G on P0, which nobody owns: a lost wake-up.
      blk->p[0].runnext_goid = 17;
      store64(&blk->p[0].word, GORO_PW_MAKE(GORO_P_IDLE, -1, 1));
    }
  }
  const bool partial = (flags & GORO_ATTACH_PARTIAL) != 0;
  if (mode == Mode::kSnoop) {
    close(conn_fd);  // the loader frees the slot; our mapping stays
    const uint32_t me = static_cast<uint32_t>(getpid());
    const uint64_t end = mono_ns() + static_cast<uint64_t>(secs * 1e9);
    while (mono_ns() < end) {
      const uint32_t magic = __atomic_load_n(&blk->hdr.magic, __ATOMIC_ACQUIRE);
      const uint64_t gen = __atomic_load_n(&blk->hdr.gen, __ATOMIC_ACQUIRE);
      const uint32_t pid = __atomic_load_n(&blk->hdr.pid, __ATOMIC_ACQUIRE);
      if ((magic == GORO_EXPORT_MAGIC && gen != own_gen) || (pid != 0 && pid != me)) {
        std::printf("export_writer: snoop: saw another owner: pid %u gen %" PRIu64 " (ours: pid %u gen %" PRIu64
                    "), tid of M0 %u\n",
                    pid, gen, me, own_gen, blk->m[0].tid);
        return 3;
      }
      timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
    std::printf("export_writer: snoop: only its own block\n");
    return 0;
  }

  const uint64_t t0 = mono_ns();
  std::vector<std::thread> threads;
  if (attaching) threads.emplace_back(sysmon, mode, static_cast<uint32_t>(nthreads));
  for (int i = 0; i < nthreads; i++)
    threads.emplace_back(worker, mode, static_cast<uint32_t>(i), static_cast<uint32_t>(nthreads), partial);

  if (std::getenv("GORO_WRITER_SELF_STOP") != nullptr) {
    // Tests: stop ourselves (SIGSTOP, the whole group) once the workers
    // have published their states; whoever sent us here kills us.
    timespec settle = {0, 50 * 1000 * 1000};
    nanosleep(&settle, nullptr);
    kill(getpid(), SIGSTOP);
  }
  timespec ts = {static_cast<time_t>(secs), static_cast<long>((secs - static_cast<double>(static_cast<time_t>(secs))) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  // Shut down like a runtime that exits: sysmon (threads[0]) and the
  // scribbler stop, the block is marked stale (heartbeat 0), and only then
  // do the Ms go. Otherwise Ms that are gone next to counters that still
  // claim work would be, for a moment, exactly what the in-kernel
  // checkdead reports (it did, under stress, for `liar`).
  sysmon_done = true;
  if (attaching) {
    threads[0].join();
    while (mode == Mode::kGarbage && !scribbler_stopped.load()) std::this_thread::yield();
    store64(&blk->hdr.heartbeat_ns, 0);
  }
  {
    std::lock_guard<std::mutex> lk(done_mu);
    done = true;
  }
  done_cv.notify_all();
  for (std::thread& t : threads)
    if (t.joinable()) t.join();
  const double wall_ms = static_cast<double>(mono_ns() - t0) / 1e6;
  if (!wake_lat_ns.empty()) {
    std::sort(wake_lat_ns.begin(), wake_lat_ns.end());
    const size_t n = wake_lat_ns.size();
    std::printf("export_writer: wakeups %zu wake_p50_us %.0f wake_p99_us %.0f wake_max_us %.0f\n", n,
                static_cast<double>(wake_lat_ns[n / 2]) / 1e3, static_cast<double>(wake_lat_ns[n * 99 / 100]) / 1e3,
                static_cast<double>(wake_lat_ns[n - 1]) / 1e3);
  }
  if (partial) std::printf("export_writer: %d threads switched to SCHED_EXT\n", nr_sched_ext.load());
  std::printf("export_writer: mode %s pid %d threads %d cpu_ms %.0f wall_ms %.0f attached %d workers_cpu_ms %.0f\n",
              argv[1], static_cast<int>(getpid()), nthreads, cpu_ms(), wall_ms, blk != nullptr ? 1 : 0,
              static_cast<double>(workers_cpu_ns.load()) / 1e6);
  std::fflush(stdout);
  return 0;
}
