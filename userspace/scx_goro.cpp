// SPDX-License-Identifier: GPL-2.0-only
//
// scx_goro - loader for the scx_goro sched_ext scheduler (bpf/scx_goro.bpf.c).
//
// It opens the BPF skeleton, writes the tunables into .rodata, loads the
// programs, creates the per-process export blocks (attach_server.cpp),
// pins what `scx_goro --monitor` reads under GORO_SCX_PIN_DIR, attaches the
// struct_ops map (which makes the kernel switch tasks to our scheduler),
// starts the attach server at GORO_SCX_SOCK, and then loops: printing
// stall events from the `events` ring buffer and periodic stats, until
// SIGINT/SIGTERM or until the kernel ejects the scheduler. Either way it
// closes the link and reports why the kernel says it exited; if the exit
// code carries GORO_ECODE_ACT_RESTART, it starts over.
//
// `--monitor SECS` loads nothing: it opens the pinned maps of a running
// instance and prints the same stats.
//
// Exit status: 0 after an orderly unload (our own SIGINT/SIGTERM, or a
// SysRq-S / kernel-requested unregister); 1 when the scheduler was ejected
// with an error (watchdog stall, scx_bpf_error, ...), failed to load, or
// the command line was bad.
//
// See the top-level comment in bpf/scx_goro.bpf.c for the policy, and
// bpf/scx_goro.h for everything the sides exchange.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "attach_server.h"
#include "goro/version.h"  // the version, from CMake project(VERSION)
#include "scx_goro.h"
#include "scx_goro.skel.h"

namespace {

constexpr const char* kVersion = GORO_VERSION_STRING;
constexpr const char* kSchedExtDir = "/sys/kernel/sched_ext";
constexpr const char* kBpfFs = "/sys/fs/bpf";
// Held (flock) by the running loader: one at a time.
constexpr const char* kLockFile = "/run/scx_goro.lock";
constexpr uint64_t kDefaultSliceUs = 7000;
constexpr uint64_t kDefaultStallMs = 100;
// The BPF side's max_lag_ns and wake_preempt_lag_ns (the loader always sets them).
constexpr uint64_t kDefaultLagUs = 2000;
constexpr uint64_t kDefaultSpinSliceUs = 200;
constexpr uint64_t kDefaultWakePreemptUs = 1000;
// The main loop's longest sleep (ring buffer poll): how quickly it sees a
// signal or an ejection.
constexpr int kPollMs = 100;
// Pinned under GORO_SCX_PIN_DIR for --monitor.
constexpr const char* kPinStats = "stats";
constexpr const char* kPinHist = "hist";
constexpr const char* kPinProcs = "goro_procs";
constexpr const char* kPinOwner = "goro_slot_owner";

void usage(FILE* out, const char* argv0) {
  std::fprintf(out,
               "A weighted-vtime sched_ext scheduler that knows goro's Ms and Ps.\n"
               "\n"
               "Usage: %s [-s SLICE_US] [-p] [--stats SECS] [--stats-json] [--stall-ms N]\n"
               "       [--events-file PATH] [--lag-us N] [--wake-preempt MODE] [--wake-preempt-us N]\n"
               "       [--wake-victim-us N] [-v]\n"
               "       %s --monitor SECS [--stats-json]\n"
               "\n"
               "  -s, --slice-us N      time slice in microseconds (default %" PRIu64 ")\n"
               "  -p, --partial         schedule only SCHED_EXT tasks (goro processes switch their Ms)\n"
               "      --stats SECS      print one line of scheduler stats every SECS seconds\n"
               "      --stats-json      stats and stall events as one JSON object per line\n"
               "                        (every second unless --stats says otherwise)\n"
               "      --stall-ms N      report a goro process whose runnable goroutines have had no\n"
               "                        runnable M for N ms (in-kernel checkdead; default %" PRIu64 ")\n"
               "      --events-file PATH  also append stall events to PATH\n"
               "      --lag-us N        the most CPU time a task can be owed when it goes to sleep,\n"
               "                        i.e. how far ahead of the others it may wake (default %" PRIu64 ")\n"
               "      --wake-preempt all|goro|off\n"
               "                        which waking tasks may preempt a running one when they are\n"
               "                        owed CPU: every task, only goro Ms woken to start work, or\n"
               "                        none (default goro)\n"
               "      --wake-preempt-us N  how much CPU a waking task must be owed, relative to a\n"
               "                        running task, to preempt it (default %" PRIu64 ")\n"
               "      --wake-victim-us N  ... and how long that task must have been on its CPU\n"
               "                        (0: any time; default 1000)\n"
               "      --wake-preempt-netpoll on|off  whether an M the netpoller woke may preempt\n"
               "                        (default off)\n"
               "      --spin-slice-us N  time slice of a spinning M (default %" PRIu64 ")\n"
               "      --max-procs N     how many goro processes can attach at once (default %d, at most %d)\n"
               "      --max-procs-per-user N  how many of them one user other than root may have\n"
               "                        attached (default a quarter of --max-procs; the last eighth\n"
               "                        of the slots are kept for root)\n"
               "      --policies LIST   the runtime-aware policies to use: 'e' (wake kicks: an M the\n"
               "                        runtime wakes to start work gets an idle or preempted CPU)\n"
               "                        or 'none' (default e)\n"
               "      --monitor SECS    print the stats of the running scx_goro every SECS seconds;\n"
               "                        loads nothing\n"
               "  -v, --verbose         print libbpf's debug output (verifier log on failure)\n"
               "  -V, --version         print the version and exit\n"
               "  -h, --help            show this message\n"
               "      --fail-after-enqueues N\n"
               "                        tests only: make the scheduler abort itself (scx_bpf_error)\n"
               "                        at its N-th enqueue, to exercise the error-exit path\n"
               "\n"
               "Runs until SIGINT/SIGTERM or until the kernel ejects the scheduler.\n"
               "See the top-level comment in bpf/scx_goro.bpf.c for more details.\n",
               argv0, argv0, kDefaultSliceUs, kDefaultStallMs, kDefaultLagUs, kDefaultWakePreemptUs,
               kDefaultSpinSliceUs, GORO_MAX_PROCS, GORO_MAX_PROCS_LIMIT);
}

volatile sig_atomic_t exit_req = 0;
bool verbose = false;

void on_signal(int) { exit_req = 1; }

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !verbose) return 0;
  return std::vfprintf(stderr, fmt, args);
}

// "on" or "off"; false on anything else.
bool parse_on_off(const char* s, bool* out) {
  if (std::strcmp(s, "on") == 0) *out = true;
  else if (std::strcmp(s, "off") == 0) *out = false;
  else return false;
  return true;
}

// Parses a positive decimal integer no larger than max; false on anything else.
bool parse_u64(const char* s, uint64_t max, uint64_t* out) {
  if (s == nullptr || *s == '\0' || *s == '-') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > max) return false;
  *out = v;
  return true;
}

// --policies: a subset of the letters a, b, ... naming the bits of
// GORO_POLICY_ALL (scx_goro.bpf.c's policies), or "none".
bool parse_policies(const char* s, uint32_t* out) {
  if (s == nullptr || *s == '\0') return false;
  if (std::strcmp(s, "none") == 0) {
    *out = 0;
    return true;
  }
  uint32_t m = 0;
  for (const char* c = s; *c; c++) {
    if (*c < 'a' || *c > 'z' || !((GORO_POLICY_ALL >> (*c - 'a')) & 1u)) return false;
    m |= 1u << (*c - 'a');
  }
  *out = m;
  return true;
}

std::string read_sysfs(const std::string& name) {
  std::ifstream in(std::string(kSchedExtDir) + "/" + name);
  std::string line;
  if (!in || !std::getline(in, line)) return "?";
  return line;
}

const char* exit_kind_name(int32_t kind) {
  switch (kind) {
    case GORO_EXIT_NONE: return "NONE";
    case GORO_EXIT_DONE: return "DONE";
    case GORO_EXIT_UNREG: return "UNREG";
    case GORO_EXIT_UNREG_BPF: return "UNREG_BPF";
    case GORO_EXIT_UNREG_KERN: return "UNREG_KERN";
    case GORO_EXIT_SYSRQ: return "SYSRQ";
    case GORO_EXIT_PARENT: return "PARENT";
    case GORO_EXIT_PARENT_KILL: return "PARENT_KILL";
    case GORO_EXIT_ERROR: return "ERROR";
    case GORO_EXIT_ERROR_BPF: return "ERROR_BPF";
    case GORO_EXIT_ERROR_STALL: return "ERROR_STALL";
    case GORO_EXIT_ERROR_REENQ: return "ERROR_REENQ";
    case GORO_EXIT_ERROR_RESCUE: return "ERROR_RESCUE";
    default: return kind >= GORO_EXIT_ERROR ? "ERROR_(other)" : "(other)";
  }
}

const char* m_state_name(uint32_t st) {
  static const char* const names[GORO_M_NR_STATES] = {"FREE",    "RUNNING", "SPINNING",
                                                        "IDLE",    "SYSCALL", "SYSMON",
                                                        "LOCKED",  "STARTING", "NETPOLL"};
  return st < GORO_M_NR_STATES ? names[st] : "INVALID";
}

const char* p_status_name(uint32_t st) {
  static const char* const names[] = {"idle", "running", "syscall", "gcstop", "dead"};
  return st <= GORO_P_DEAD ? names[st] : "invalid";
}

// The kernel's view of an M from its km word, for event lines.
const char* km_name(uint64_t km, uint32_t tid) {
  if (tid == 0 || GORO_KM_TID(km) != tid) return "unseen";
  if (km & GORO_KM_RUNNING) return "running";
  if (km & GORO_KM_RUNNABLE) return "runnable";
  return "asleep";
}

// The kernel's exit info, once ops.exit() has published it (kind != 0).
// The acquire pairs with the BPF side's compare-and-swap of kind, which it
// does after writing the strings.
bool exited(const scx_goro* skel) {
  return __atomic_load_n(&skel->bss->goro_uei.kind, __ATOMIC_ACQUIRE) != GORO_EXIT_NONE;
}

// ---------------------------------------------------------------------------
// Stats: per-CPU counters and histograms summed over CPUs, plus the M states
// of the attached processes read off their blocks.

constexpr const char* kStatNames[GORO_NR_STATS] = {
    "direct_idle",     // GORO_STAT_DIRECT_IDLE
    "enqueue",         // GORO_STAT_ENQUEUE
    "lag_clamped",     // GORO_STAT_LAG_CLAMPED
    "debt_clamped",    // GORO_STAT_DEBT_CLAMPED
    "dispatch",        // GORO_STAT_DISPATCH
    "keep_running",    // GORO_STAT_KEEP_RUNNING
    "dispatch_idle",   // GORO_STAT_DISPATCH_IDLE
    "wake_idle",       // GORO_STAT_WAKE_IDLE
    "wake_kick",       // GORO_STAT_WAKE_KICK
    "wake_preempt",    // GORO_STAT_WAKE_PREEMPT
    "m_matched",       // GORO_STAT_M_MATCHED
    "m_scan_miss",     // GORO_STAT_M_SCAN_MISS
    "stale_block",     // GORO_STAT_STALE_BLOCK
    "stall_events",    // GORO_STAT_STALL_EVENTS
    "events_dropped",  // GORO_STAT_EVENTS_DROPPED
    "wake_preempt_other",  // GORO_STAT_WAKE_PREEMPT_OTHER
    "starve_rescue",   // GORO_STAT_STARVE_RESCUE
};
static_assert(sizeof(kStatNames) / sizeof(kStatNames[0]) == GORO_NR_STATS, "a name per stat");

constexpr uint32_t kHistKeys = GORO_HIST_NR_CLASSES * GORO_HIST_BUCKETS;

struct Counters {
  uint64_t st[GORO_NR_STATS] = {};
  uint64_t hist[kHistKeys] = {};
};

bool sum_percpu(int fd, uint32_t key, int nr_cpus, uint64_t* out) {
  std::vector<uint64_t> percpu(static_cast<size_t>(nr_cpus));
  if (bpf_map_lookup_elem(fd, &key, percpu.data()) != 0) return false;
  uint64_t sum = 0;
  for (uint64_t c : percpu) sum += c;
  *out = sum;
  return true;
}

Counters read_counters(int stats_fd, int hist_fd, int nr_cpus) {
  Counters c;
  for (uint32_t i = 0; i < GORO_NR_STATS; i++) sum_percpu(stats_fd, i, nr_cpus, &c.st[i]);
  for (uint32_t i = 0; i < kHistKeys; i++) sum_percpu(hist_fd, i, nr_cpus, &c.hist[i]);
  return c;
}

struct Procs {
  uint32_t attached = 0;
  uint32_t m_states[GORO_M_NR_STATES] = {};
};

void add_block(const goro_m_export* m, Procs* p) {
  p->attached++;
  for (uint32_t i = 0; i < GORO_MAX_M; i++) {
    if (m[i].tid == 0) continue;
    const uint32_t st = GORO_MW_STATE(m[i].word);
    if (st < GORO_M_NR_STATES) p->m_states[st]++;
  }
}

// Percentile @q (0..1) of class @cls in the histogram delta, in ns (the
// lower edge of the bucket); 0 if empty. *n gets the sample count.
uint64_t percentile(const Counters& now, const Counters& prev, uint32_t cls, double q, uint64_t* n) {
  uint64_t total = 0;
  for (uint32_t b = 0; b < GORO_HIST_BUCKETS; b++) {
    const uint32_t k = cls * GORO_HIST_BUCKETS + b;
    total += now.hist[k] - prev.hist[k];
  }
  *n = total;
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  uint64_t cum = 0;
  for (uint32_t b = 0; b < GORO_HIST_BUCKETS; b++) {
    const uint32_t k = cls * GORO_HIST_BUCKETS + b;
    cum += now.hist[k] - prev.hist[k];
    if (static_cast<double>(cum) >= want) return goro_hist_lower(b);
  }
  return goro_hist_lower(GORO_HIST_BUCKETS - 1);
}

void print_stats(const Counters& now, const Counters& prev, const Procs& procs, double secs, bool json) {
  uint64_t d[GORO_NR_STATS];
  for (int i = 0; i < GORO_NR_STATS; i++) d[i] = now.st[i] - prev.st[i];
  uint64_t ng, no;
  const uint64_t g50 = percentile(now, prev, GORO_HIST_GORO, 0.50, &ng);
  const uint64_t g99 = percentile(now, prev, GORO_HIST_GORO, 0.99, &ng);
  const uint64_t o50 = percentile(now, prev, GORO_HIST_OTHER, 0.50, &no);
  const uint64_t o99 = percentile(now, prev, GORO_HIST_OTHER, 0.99, &no);
  // The bucket of the longest wait (within 25%).
  const uint64_t gmax = percentile(now, prev, GORO_HIST_GORO, 1.0, &ng);
  const uint64_t omax = percentile(now, prev, GORO_HIST_OTHER, 1.0, &no);
  if (json) {
    std::printf("{\"type\":\"stats\",\"interval_s\":%.3f,\"procs\":%u,\"m_states\":{", secs, procs.attached);
    for (uint32_t s = 1; s < GORO_M_NR_STATES; s++)
      std::printf("%s\"%s\":%u", s > 1 ? "," : "", m_state_name(s), procs.m_states[s]);
    std::printf("},\"wake_ns\":{\"goro\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
                ",\"max\":%" PRIu64 "},\"other\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
                ",\"max\":%" PRIu64 "}},\"stats\":{",
                ng, g50, g99, gmax, no, o50, o99, omax);
    for (int i = 0; i < GORO_NR_STATS; i++)
      std::printf("%s\"%s\":%" PRIu64, i ? "," : "", kStatNames[i], d[i]);
    std::printf("}}\n");
  } else {
    std::printf("scx_goro: stats %.1fs: procs=%u Ms[run=%u spin=%u idle=%u sys=%u sysmon=%u locked=%u "
                "start=%u netpoll=%u] kicks=%" PRIu64
                " preempt_kicks=%" PRIu64 " wake p50/p99/max goro=%.1f/%.1f/%.1fus(n=%" PRIu64
                ") other=%.1f/%.1f/%.1fus(n=%" PRIu64
                ") dispatch=%" PRIu64 " stalls=%" PRIu64 " |",
                secs, procs.attached, procs.m_states[GORO_M_RUNNING], procs.m_states[GORO_M_SPINNING],
                procs.m_states[GORO_M_IDLE], procs.m_states[GORO_M_SYSCALL], procs.m_states[GORO_M_SYSMON],
                procs.m_states[GORO_M_LOCKED], procs.m_states[GORO_M_STARTING], procs.m_states[GORO_M_NETPOLL],
                d[GORO_STAT_WAKE_KICK] + d[GORO_STAT_WAKE_IDLE],
                d[GORO_STAT_WAKE_PREEMPT], g50 / 1e3, g99 / 1e3, gmax / 1e3, ng, o50 / 1e3, o99 / 1e3, omax / 1e3, no,
                d[GORO_STAT_DISPATCH], d[GORO_STAT_STALL_EVENTS]);
    for (int i = 0; i < GORO_NR_STATS; i++) std::printf(" %s=%" PRIu64, kStatNames[i], d[i]);
    std::printf("\n");
  }
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// Stall events (in-kernel checkdead), one line each.

struct EventSink {
  bool json = false;
  FILE* file = nullptr;  // --events-file, or null
};

std::string format_stall(const goro_event& ev, bool json) {
  std::string out;
  char buf[512];
  uint64_t runnable = ev.sc.runqsize;
  const uint32_t np = ev.sc.gomaxprocs > GORO_MAX_P ? GORO_MAX_P : ev.sc.gomaxprocs;
  for (uint32_t i = 0; i < np; i++)
    if (GORO_PW_STATUS(ev.p[i].word) < GORO_P_DEAD) runnable += GORO_PW_RUNQ(ev.p[i].word);

  auto owner = [&](int32_t m, std::string* o) {
    if (m < 0 || m >= GORO_MAX_M) {
      *o = "none";
      return;
    }
    const goro_m_export& r = ev.m[m];
    std::snprintf(buf, sizeof(buf), json ? "{\"m\":%d,\"tid\":%u,\"state\":\"%s\",\"kernel\":\"%s\"}"
                                         : "M%d(tid %u,%s,%s)",
                  m, r.tid, m_state_name(GORO_MW_STATE(r.word)), km_name(ev.km[m], r.tid));
    *o = buf;
  };

  if (json) {
    std::snprintf(buf, sizeof(buf),
                  "{\"type\":\"stall\",\"pid\":%u,\"slot\":%u,\"stalled_ms\":%" PRIu64 ",\"runnable_gs\":%" PRIu64
                  ",\"global_runq\":%u,\"global_head\":%" PRIu64 ",\"gomaxprocs\":%u,\"ps\":[",
                  ev.tgid, ev.slot, static_cast<uint64_t>(ev.stalled_ns / 1000000), runnable, ev.sc.runqsize,
                  static_cast<uint64_t>(ev.sc.runq_head_goid), ev.sc.gomaxprocs);
    out = buf;
    bool first = true;
    for (uint32_t i = 0; i < np; i++) {
      const uint64_t w = ev.p[i].word;
      std::string o;
      owner(GORO_PW_M(w), &o);
      std::snprintf(buf, sizeof(buf), "%s{\"p\":%u,\"status\":\"%s\",\"runq\":%u,\"next\":%" PRIu64 ",\"owner\":%s}",
                    first ? "" : ",", i, p_status_name(GORO_PW_STATUS(w)), GORO_PW_RUNQ(w),
                    static_cast<uint64_t>(ev.p[i].runnext_goid), o.c_str());
      out += buf;
      first = false;
    }
    out += "],\"ms\":[";
    first = true;
    for (int32_t m = 0; m < GORO_MAX_M; m++) {
      if (ev.m[m].tid == 0 && GORO_MW_STATE(ev.m[m].word) == GORO_M_FREE) continue;
      std::string o;
      owner(m, &o);
      out += (first ? "" : ",") + o;
      first = false;
    }
    out += "]}";
    return out;
  }

  std::snprintf(buf, sizeof(buf), "scx_goro: stall: pid %u: %" PRIu64 " runnable G%s for %" PRIu64
                " ms, no M runnable/running/in a syscall;",
                ev.tgid, runnable, runnable == 1 ? "" : "s", static_cast<uint64_t>(ev.stalled_ns / 1000000));
  out = buf;
  for (uint32_t i = 0; i < np; i++) {
    const uint64_t w = ev.p[i].word;
    if (GORO_PW_RUNQ(w) == 0) continue;
    std::string o;
    owner(GORO_PW_M(w), &o);
    std::snprintf(buf, sizeof(buf), " P%u runq=%u next=g%" PRIu64 " owner %s;", i, GORO_PW_RUNQ(w),
                  static_cast<uint64_t>(ev.p[i].runnext_goid), o.c_str());
    out += buf;
  }
  // Ms that hold or carry a P and are not running: the usual suspects.
  for (int32_t m = 0; m < GORO_MAX_M; m++) {
    const uint64_t w = ev.m[m].word;
    if (GORO_MW_P(w) < 0 || GORO_MW_STATE(w) == GORO_M_FREE) continue;
    std::snprintf(buf, sizeof(buf), " M%d(tid %u,%s%s,P%d,%s);", m, ev.m[m].tid, m_state_name(GORO_MW_STATE(w)),
                  (w & GORO_MF_CARRYING) ? "|CARRYING" : "", GORO_MW_P(w), km_name(ev.km[m], ev.m[m].tid));
    out += buf;
  }
  std::snprintf(buf, sizeof(buf), " global runq %u", ev.sc.runqsize);
  out += buf;
  if (ev.sc.runqsize) {
    std::snprintf(buf, sizeof(buf), " head=g%" PRIu64, static_cast<uint64_t>(ev.sc.runq_head_goid));
    out += buf;
  }
  return out;
}

int on_event(void* ctx, void* data, size_t size) {
  const EventSink* sink = static_cast<const EventSink*>(ctx);
  if (size < sizeof(goro_event)) return 0;
  goro_event ev;
  std::memcpy(&ev, data, sizeof(ev));
  if (ev.kind != GORO_EV_STALL) return 0;
  const std::string line = format_stall(ev, sink->json);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (sink->file != nullptr) {
    std::fprintf(sink->file, "%s\n", line.c_str());
    std::fflush(sink->file);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Pins.

std::string pin_path(const char* name) { return std::string(GORO_SCX_PIN_DIR) + "/" + name; }

// The pin directory is a name in bpffs, and bpffs may be writable by others
// (mounted with the kernel's default mode 01777): nothing here follows a
// symlink or trusts what it finds. remove_pins opens the directory with
// O_NOFOLLOW and unlinks entries relative to it; a symlink planted at
// GORO_SCX_PIN_DIR is removed itself, never followed; pin_maps creates the
// directory afresh and checks it is a real directory owned by root, mode
// 0755, before pinning into it.
constexpr const char* kPinDirName = "scx_goro";  // GORO_SCX_PIN_DIR = kBpfFs + "/" + this

// Removes GORO_SCX_PIN_DIR and what is pinned in it (a SIGKILLed loader's
// leftovers), or whatever else sits at that name.
void remove_pins() {
  int parent = open(kBpfFs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (parent < 0) return;
  int d = openat(parent, kPinDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) {
    // Not a directory (a symlink, a file): remove the name, nothing it points at.
    if (errno == ELOOP || errno == ENOTDIR) unlinkat(parent, kPinDirName, 0);
    close(parent);
    return;
  }
  if (DIR* dir = fdopendir(d)) {
    while (dirent* e = readdir(dir)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      unlinkat(d, e->d_name, 0);  // never follows; a subdirectory stays (and so does the directory)
    }
    closedir(dir);
  } else {
    close(d);
  }
  unlinkat(parent, kPinDirName, AT_REMOVEDIR);
  close(parent);
}

// bpffs at kBpfFs, mounted (not world-writable) if it is not there.
bool ensure_bpffs(std::string* err) {
  struct statfs sfs;
  constexpr long kBpfFsMagic = 0xcafe4a11;
  if (statfs(kBpfFs, &sfs) == 0 && sfs.f_type == kBpfFsMagic) return true;
  if (mount("bpf", kBpfFs, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") != 0) {
    *err = std::string("mounting bpffs at ") + kBpfFs + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool pin_maps(scx_goro* skel, std::string* err) {
  remove_pins();
  struct stat st;
  if (stat(kBpfFs, &st) != 0 || ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
    // World-writable without the sticky bit: anyone could swap our directory.
    *err = std::string(kBpfFs) + " is writable by everyone (and not sticky): not pinning there";
    return false;
  }
  const mode_t old_umask = umask(022);
  const int rc = mkdir(GORO_SCX_PIN_DIR, 0755);
  umask(old_umask);
  if (rc != 0) {
    *err = std::string("mkdir ") + GORO_SCX_PIN_DIR + ": " + std::strerror(errno) +
           (errno == EEXIST ? " (something that is not ours is there and could not be removed)" : "");
    return false;
  }
  if (lstat(GORO_SCX_PIN_DIR, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 07777) != 0755) {
    *err = std::string(GORO_SCX_PIN_DIR) + " is not the directory we just made (owner root, mode 0755)";
    return false;
  }
  const std::pair<const char*, bpf_map*> pins[] = {
      {kPinStats, skel->maps.stats},
      {kPinHist, skel->maps.hist},
      {kPinProcs, skel->maps.goro_procs},
      {kPinOwner, skel->maps.goro_slot_owner},
  };
  for (const auto& [name, map] : pins) {
    if (bpf_obj_pin(bpf_map__fd(map), pin_path(name).c_str()) != 0) {
      *err = "pinning " + pin_path(name) + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// --monitor: the stats of a running instance, from its pins.

int monitor(uint64_t secs, bool json) {
  const int nr_cpus = libbpf_num_possible_cpus();
  int stats_fd = bpf_obj_get(pin_path(kPinStats).c_str());
  int hist_fd = bpf_obj_get(pin_path(kPinHist).c_str());
  int procs_fd = bpf_obj_get(pin_path(kPinProcs).c_str());
  int owner_fd = bpf_obj_get(pin_path(kPinOwner).c_str());
  if (stats_fd < 0 || hist_fd < 0 || procs_fd < 0 || owner_fd < 0 || nr_cpus <= 0) {
    std::fprintf(stderr, "scx_goro: --monitor: no running scx_goro (cannot open the maps pinned under %s: %s)\n",
                 GORO_SCX_PIN_DIR, std::strerror(errno));
    return 1;
  }
  const size_t map_size = AttachServer::block_map_size();
  Counters prev = read_counters(stats_fd, hist_fd, nr_cpus);
  auto last = std::chrono::steady_clock::now();
  while (!exit_req) {
    for (uint64_t i = 0; i < secs * 10 && !exit_req; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (access(pin_path(kPinStats).c_str(), F_OK) != 0) {
      std::printf("scx_goro: --monitor: the scheduler is gone\n");
      break;
    }
    Procs procs;
    bpf_map_info info = {};
    uint32_t info_len = sizeof(info);
    const uint32_t nr_slots = bpf_map_get_info_by_fd(owner_fd, &info, &info_len) == 0 ? info.max_entries : 0;
    for (uint32_t slot = 0; slot < nr_slots; slot++) {
      goro_slot_owner own = {};
      uint32_t inner_id = 0;
      if (bpf_map_lookup_elem(owner_fd, &slot, &own) != 0 || own.tgid == 0) continue;
      if (bpf_map_lookup_elem(procs_fd, &slot, &inner_id) != 0) continue;
      int fd = bpf_map_get_fd_by_id(inner_id);
      if (fd < 0) continue;
      void* p = mmap(nullptr, map_size, PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        add_block(static_cast<const goro_proc_export*>(p)->m, &procs);
        munmap(p, map_size);
      }
      close(fd);
    }
    Counters now = read_counters(stats_fd, hist_fd, nr_cpus);
    const auto t = std::chrono::steady_clock::now();
    print_stats(now, prev, procs, std::chrono::duration<double>(t - last).count(), json);
    prev = now;
    last = t;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// One life of the scheduler: load, attach, loop, report.

struct Options {
  uint64_t slice_us = kDefaultSliceUs;
  uint64_t stats_secs = 0;  // 0: no periodic stats
  bool stats_json = false;
  uint64_t stall_ms = kDefaultStallMs;
  uint64_t fail_after_enqueues = 0;  // 0: no fault injection
  uint64_t lag_us = kDefaultLagUs;
  uint64_t wake_preempt_us = kDefaultWakePreemptUs;
  uint64_t wake_victim_us = 1000;
  uint64_t spin_slice_us = kDefaultSpinSliceUs;
  bool wake_preempt_netpoll = false;
  uint32_t wake_preempt = GORO_WAKE_PREEMPT_GORO;
  uint32_t policies = GORO_POLICY_ALL;
  uint64_t max_procs = GORO_MAX_PROCS;
  uint64_t max_procs_per_user = 0;  // 0: a quarter of max_procs
  bool partial = false;
  std::string events_file;
};

enum class Outcome { kOk, kError, kRestart };

Outcome run_once(const Options& o) {
  scx_goro* skel = scx_goro__open();
  if (skel == nullptr) {
    std::fprintf(stderr, "scx_goro: opening the BPF skeleton failed: %s\n", std::strerror(errno));
    return Outcome::kError;
  }
  skel->rodata->slice_ns = o.slice_us * 1000;
  skel->rodata->stall_threshold_ns = o.stall_ms * 1000 * 1000;
  skel->rodata->fail_after_enqueues = o.fail_after_enqueues;
  skel->rodata->max_lag_ns = o.lag_us * 1000;
  skel->rodata->wake_preempt_lag_ns = o.wake_preempt_us * 1000;
  skel->rodata->wake_victim_min_run_ns = o.wake_victim_us * 1000;
  skel->rodata->spin_slice_ns = o.spin_slice_us * 1000;
  skel->rodata->wake_preempt_netpoll = o.wake_preempt_netpoll;
  skel->rodata->wake_preempt_mode = o.wake_preempt;
  skel->rodata->policies = o.policies;
  skel->rodata->nr_slots = static_cast<uint32_t>(o.max_procs);
  bpf_map__set_max_entries(skel->maps.goro_procs, static_cast<uint32_t>(o.max_procs));
  bpf_map__set_max_entries(skel->maps.goro_slot_owner, static_cast<uint32_t>(o.max_procs));
  bpf_map__set_max_entries(skel->maps.slot_privs, static_cast<uint32_t>(o.max_procs));
  bpf_map__set_max_entries(skel->maps.goro_tgid_slot, static_cast<uint32_t>(o.max_procs * 2));
  if (o.partial) skel->struct_ops.goro_ops->flags |= GORO_OPS_SWITCH_PARTIAL;

  if (int err = scx_goro__load(skel); err != 0) {
    std::fprintf(stderr, "scx_goro: loading the BPF programs failed: %s%s\n", std::strerror(-err),
                 verbose ? "" : " (run with -v for the verifier log)");
    scx_goro__destroy(skel);
    return Outcome::kError;
  }

  std::string err;
  AttachServer server;
  const AttachServer::Maps maps = {bpf_map__fd(skel->maps.goro_procs), bpf_map__fd(skel->maps.goro_slot_owner),
                                   bpf_map__fd(skel->maps.goro_tgid_slot), &skel->bss->attach_seq};
  AttachServer::Limits limits;
  limits.nr_slots = static_cast<uint32_t>(o.max_procs);
  limits.per_user = static_cast<uint32_t>(o.max_procs_per_user);
  server.set_maps(maps, limits);
  if (!ensure_bpffs(&err) || !pin_maps(skel, &err)) {
    std::fprintf(stderr, "scx_goro: %s\n", err.c_str());
    remove_pins();
    scx_goro__destroy(skel);
    return Outcome::kError;
  }

  bpf_link* link = bpf_map__attach_struct_ops(skel->maps.goro_ops);
  if (link == nullptr) {
    int e = errno;
    std::fprintf(stderr, "scx_goro: attaching the scheduler failed: %s", std::strerror(e));
    if (e == EBUSY || e == EEXIST)
      std::fprintf(stderr, " (another sched_ext scheduler is loaded: ops '%s')", read_sysfs("root/ops").c_str());
    std::fprintf(stderr, "\n");
    remove_pins();
    scx_goro__destroy(skel);
    return Outcome::kError;
  }
  if (!server.start(o.partial ? GORO_ATTACH_PARTIAL : 0, &err)) {
    // Not fatal: the scheduler works, goro processes just cannot attach.
    std::fprintf(stderr, "scx_goro: attach server not started (goro processes run unattached): %s\n", err.c_str());
  }
  std::printf("scx_goro: attached (slice %" PRIu64 " us, %s, stall %" PRIu64
              " ms); sched_ext state '%s', ops '%s'; attach socket %s\n",
              o.slice_us, o.partial ? "partial: SCHED_EXT tasks only" : "all tasks", o.stall_ms,
              read_sysfs("state").c_str(), read_sysfs("root/ops").c_str(), GORO_SCX_SOCK);
  std::fflush(stdout);

  EventSink sink;
  sink.json = o.stats_json;
  if (!o.events_file.empty()) {
    sink.file = std::fopen(o.events_file.c_str(), "a");
    if (sink.file == nullptr)
      std::fprintf(stderr, "scx_goro: --events-file %s: %s (events go to stdout only)\n", o.events_file.c_str(),
                   std::strerror(errno));
  }
  ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &sink, nullptr);
  if (rb == nullptr) std::fprintf(stderr, "scx_goro: no ring buffer for events: %s\n", std::strerror(errno));

  const int nr_cpus = libbpf_num_possible_cpus();
  const int stats_fd = bpf_map__fd(skel->maps.stats), hist_fd = bpf_map__fd(skel->maps.hist);
  const auto start = std::chrono::steady_clock::now();
  auto last_stats_at = start;
  Counters last = nr_cpus > 0 ? read_counters(stats_fd, hist_fd, nr_cpus) : Counters{};
  while (!exit_req && !exited(skel)) {
    if (rb != nullptr)
      ring_buffer__poll(rb, kPollMs);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    if (o.stats_secs == 0 || nr_cpus <= 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_stats_at >= std::chrono::seconds(o.stats_secs)) {
      Procs procs;
      for (const AttachServer::Attached& a : server.attached()) add_block(a.m, &procs);
      Counters c = read_counters(stats_fd, hist_fd, nr_cpus);
      print_stats(c, last, procs, std::chrono::duration<double>(now - last_stats_at).count(), o.stats_json);
      last = c;
      last_stats_at = now;
    }
  }
  if (rb != nullptr) {
    ring_buffer__consume(rb);  // events raised just before the end
    ring_buffer__free(rb);
  }

  // Detach the processes first (they fall back to running standalone),
  // then close the link: that unregisters the scheduler if it is still
  // loaded; the kernel has finished disabling it (and called ops.exit)
  // when this returns.
  server.stop();
  bpf_link__destroy(link);
  remove_pins();
  if (sink.file != nullptr) std::fclose(sink.file);

  if (nr_cpus > 0) {
    Counters total = read_counters(stats_fd, hist_fd, nr_cpus);
    std::printf("scx_goro: totals over %.1fs:",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    for (int i = 0; i < GORO_NR_STATS; i++) std::printf(" %s=%" PRIu64, kStatNames[i], total.st[i]);
    std::printf("\n");
  }

  Outcome outcome = Outcome::kOk;
  if (!exited(skel)) {
    std::fprintf(stderr, "scx_goro: EXIT: the kernel left no exit info\n");
    outcome = Outcome::kError;
  } else {
    const goro_exit_info& uei = skel->bss->goro_uei;
    const bool error = uei.kind >= GORO_EXIT_ERROR;
    std::fprintf(error ? stderr : stdout, "scx_goro: EXIT: kind %s (%d): %s%s%s%s\n", exit_kind_name(uei.kind),
                 uei.kind, uei.reason, uei.msg[0] ? " (" : "", uei.msg, uei.msg[0] ? ")" : "");
    if (uei.exit_code != 0)
      std::printf("scx_goro: exit code %" PRId64 "\n", static_cast<int64_t>(uei.exit_code));
    if (error && uei.dump[0] != '\0')
      std::fprintf(stderr, "scx_goro: kernel debug dump:\n%.*s\n", static_cast<int>(sizeof(uei.dump)), uei.dump);
    outcome = error ? Outcome::kError : Outcome::kOk;
    if (!exit_req && (static_cast<uint64_t>(uei.exit_code) & GORO_ECODE_ACT_RESTART)) outcome = Outcome::kRestart;
  }
  std::printf("scx_goro: sched_ext state now '%s'\n", read_sysfs("state").c_str());
  std::fflush(stdout);
  scx_goro__destroy(skel);
  return outcome;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  uint64_t monitor_secs = 0;

  enum {
    kOptStats = 256,
    kOptStatsJson,
    kOptStallMs,
    kOptEventsFile,
    kOptMonitor,
    kOptFailAfterEnqueues,
    kOptLagUs,
    kOptWakePreempt,
    kOptWakePreemptUs,
    kOptWakeVictimUs,
    kOptSpinSliceUs,
    kOptWakePreemptNetpoll,
    kOptPolicies,
    kOptMaxProcs,
    kOptMaxProcsPerUser,
  };
  static const option long_opts[] = {
      {"slice-us", required_argument, nullptr, 's'},
      {"partial", no_argument, nullptr, 'p'},
      {"stats", required_argument, nullptr, kOptStats},
      {"stats-json", no_argument, nullptr, kOptStatsJson},
      {"stall-ms", required_argument, nullptr, kOptStallMs},
      {"events-file", required_argument, nullptr, kOptEventsFile},
      {"monitor", required_argument, nullptr, kOptMonitor},
      {"fail-after-enqueues", required_argument, nullptr, kOptFailAfterEnqueues},
      {"lag-us", required_argument, nullptr, kOptLagUs},
      {"wake-preempt", required_argument, nullptr, kOptWakePreempt},
      {"wake-preempt-us", required_argument, nullptr, kOptWakePreemptUs},
      {"wake-victim-us", required_argument, nullptr, kOptWakeVictimUs},
      {"spin-slice-us", required_argument, nullptr, kOptSpinSliceUs},
      {"wake-preempt-netpoll", required_argument, nullptr, kOptWakePreemptNetpoll},
      {"policies", required_argument, nullptr, kOptPolicies},
      {"max-procs", required_argument, nullptr, kOptMaxProcs},
      {"max-procs-per-user", required_argument, nullptr, kOptMaxProcsPerUser},
      {"verbose", no_argument, nullptr, 'v'},
      {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  auto bad = [&](const char* what, const char* val, const std::string& want) {
    std::fprintf(stderr, "scx_goro: bad %s '%s' (want %s)\n", what, val ? val : "", want.c_str());
    usage(stderr, argv[0]);
    return 1;
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "s:pvVh", long_opts, nullptr)) != -1) {
    switch (opt) {
      case 's':
        // Up to one second; the kernel's watchdog would make more pointless.
        if (!parse_u64(optarg, 1000000, &o.slice_us)) return bad("--slice-us", optarg, "1..1000000");
        break;
      case 'p':
        o.partial = true;
        break;
      case kOptStats:
        if (!parse_u64(optarg, 3600, &o.stats_secs)) return bad("--stats", optarg, "1..3600 seconds");
        break;
      case kOptStatsJson:
        o.stats_json = true;
        break;
      case kOptStallMs:
        // Below the watchdog's 5 s is the useful range; a minute is the cap.
        if (!parse_u64(optarg, 60000, &o.stall_ms)) return bad("--stall-ms", optarg, "1..60000 milliseconds");
        break;
      case kOptEventsFile:
        if (optarg[0] == '\0') return bad("--events-file", optarg, "a path");
        o.events_file = optarg;
        break;
      case kOptMonitor:
        if (!parse_u64(optarg, 3600, &monitor_secs)) return bad("--monitor", optarg, "1..3600 seconds");
        break;
      case kOptFailAfterEnqueues:
        if (!parse_u64(optarg, UINT64_MAX, &o.fail_after_enqueues))
          return bad("--fail-after-enqueues", optarg, "a positive count");
        break;
      case kOptLagUs:
        if (!parse_u64(optarg, 1000000, &o.lag_us)) return bad("--lag-us", optarg, "1..1000000");
        break;
      case kOptWakePreempt:
        if (std::strcmp(optarg, "all") == 0) {
          o.wake_preempt = GORO_WAKE_PREEMPT_ALL;
        } else if (std::strcmp(optarg, "goro") == 0) {
          o.wake_preempt = GORO_WAKE_PREEMPT_GORO;
        } else if (std::strcmp(optarg, "off") == 0) {
          o.wake_preempt = GORO_WAKE_PREEMPT_OFF;
        } else {
          return bad("--wake-preempt", optarg, "all, goro or off");
        }
        break;
      case kOptWakePreemptNetpoll:
        if (!parse_on_off(optarg, &o.wake_preempt_netpoll)) return bad("--wake-preempt-netpoll", optarg, "on or off");
        break;
      case kOptSpinSliceUs:
        if (!parse_u64(optarg, 1000000, &o.spin_slice_us)) return bad("--spin-slice-us", optarg, "1..1000000");
        break;
      case kOptWakeVictimUs:
        if (std::strcmp(optarg, "0") == 0)
          o.wake_victim_us = 0;
        else if (!parse_u64(optarg, 1000000, &o.wake_victim_us))
          return bad("--wake-victim-us", optarg, "0..1000000");
        break;
      case kOptWakePreemptUs:
        if (!parse_u64(optarg, 1000000, &o.wake_preempt_us)) return bad("--wake-preempt-us", optarg, "1..1000000");
        break;
      case kOptMaxProcs:
        if (!parse_u64(optarg, GORO_MAX_PROCS_LIMIT, &o.max_procs))
          return bad("--max-procs", optarg, "1.." + std::to_string(GORO_MAX_PROCS_LIMIT));
        break;
      case kOptMaxProcsPerUser:
        if (!parse_u64(optarg, GORO_MAX_PROCS_LIMIT, &o.max_procs_per_user))
          return bad("--max-procs-per-user", optarg, "1.." + std::to_string(GORO_MAX_PROCS_LIMIT));
        break;
      case kOptPolicies:
        if (!parse_policies(optarg, &o.policies)) return bad("--policies", optarg, "'e' or 'none'");
        break;
      case 'v':
        verbose = true;
        break;
      case 'V':
        std::printf("scx_goro %s (runtime export ABI %d)\n", kVersion, GORO_EXPORT_ABI);
        return 0;
      case 'h':
        usage(stdout, argv[0]);
        return 0;
      default:
        usage(stderr, argv[0]);
        return 1;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "scx_goro: unexpected argument '%s'\n", argv[optind]);
    usage(stderr, argv[0]);
    return 1;
  }
  if (o.stats_json && o.stats_secs == 0) o.stats_secs = 1;
  if (o.max_procs_per_user == 0) o.max_procs_per_user = o.max_procs >= 4 ? o.max_procs / 4 : 1;

  libbpf_set_print(libbpf_print);
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A goro process that hangs up while we answer must not kill us.
  signal(SIGPIPE, SIG_IGN);

  if (monitor_secs != 0) return monitor(monitor_secs, o.stats_json);
  // Each attached process costs the attach server three fds (connection,
  // block, pidfd): take what the hard limit allows.
  if (rlimit rl; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  if (access(kSchedExtDir, F_OK) != 0) {
    std::fprintf(stderr,
                 "scx_goro: this kernel has no sched_ext (%s is missing; needs "
                 "CONFIG_SCHED_CLASS_EXT=y, e.g. the kernel vmtest/run boots)\n",
                 kSchedExtDir);
    return 1;
  }

  // One loader at a time, and never one that touches another's files: the
  // lock is taken before anything is pinned or bound, and a sched_ext
  // scheduler already loaded (scx_goro or another) is refused up front.
  // (Before, a second scx_goro deleted the running one's pins on its way to
  // failing: new goro processes then ran standalone.)
  const int lock_fd = open(kLockFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    std::fprintf(stderr, "scx_goro: opening %s: %s\n", kLockFile, std::strerror(errno));
    return 1;
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr, "scx_goro: scx_goro is already running (it holds %s); leaving it alone\n", kLockFile);
    return 1;
  }
  if (const std::string state = read_sysfs("state"); state != "disabled") {
    const std::string ops = read_sysfs("root/ops");
    std::fprintf(stderr, "scx_goro: a sched_ext scheduler is already loaded (state '%s', ops '%s')%s; leaving it alone\n",
                 state.c_str(), ops.c_str(), ops == "goro" ? ": scx_goro is already running" : "");
    return 1;
  }

  for (;;) {
    switch (run_once(o)) {
      case Outcome::kOk:
        return 0;
      case Outcome::kError:
        return 1;
      case Outcome::kRestart:
        std::printf("scx_goro: the kernel asked for a restart; loading again\n");
        std::fflush(stdout);
        continue;
    }
  }
}
