// SPDX-License-Identifier: GPL-2.0
//
// scx_goro - loader for the scx_goro sched_ext scheduler (bpf/scx_goro.bpf.c).
//
// It opens the BPF skeleton, writes the tunables into .rodata, loads the
// programs, attaches the struct_ops map (which makes the kernel switch every
// task to our scheduler), and then waits: for SIGINT/SIGTERM, or for the
// kernel to eject the scheduler. Either way it closes the link (which
// unloads the scheduler if it is still loaded; the kernel moves all tasks
// back to the fair class) and reports why the kernel says it exited.
//
// Exit status: 0 after an orderly unload (our own SIGINT/SIGTERM, or a
// SysRq-S / kernel-requested unregister); 1 when the scheduler was ejected
// with an error (watchdog stall, scx_bpf_error, ...), failed to load, or
// the command line was bad.
//
// See the top-level comment in bpf/scx_goro.bpf.c for the policy, and
// bpf/scx_goro.h for everything the two sides exchange.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <getopt.h>
#include <signal.h>
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

#include "scx_goro.h"
#include "scx_goro.skel.h"

namespace {

constexpr const char* kSchedExtDir = "/sys/kernel/sched_ext";
constexpr uint64_t kDefaultSliceUs = 5000;
// How often the main loop looks for a signal or an ejection.
constexpr auto kPollInterval = std::chrono::milliseconds(100);

void usage(FILE* out, const char* argv0) {
  std::fprintf(out,
               "A weighted-vtime sched_ext scheduler; the base of goro's runtime-aware scheduler.\n"
               "\n"
               "Usage: %s [-s SLICE_US] [--stats SECS] [-v]\n"
               "\n"
               "  -s, --slice-us N  time slice in microseconds (default %" PRIu64 ")\n"
               "      --stats SECS  print one line of scheduler counters every SECS seconds\n"
               "  -v, --verbose     print libbpf's debug output (verifier log on failure)\n"
               "  -h, --help        show this message\n"
               "      --fail-after-enqueues N\n"
               "                    tests only: make the scheduler abort itself (scx_bpf_error)\n"
               "                    at its N-th enqueue, to exercise the error-exit path\n"
               "\n"
               "Runs until SIGINT/SIGTERM or until the kernel ejects the scheduler.\n"
               "See the top-level comment in bpf/scx_goro.bpf.c for more details.\n",
               argv0, kDefaultSliceUs);
}

volatile sig_atomic_t exit_req = 0;
bool verbose = false;

void on_signal(int) { exit_req = 1; }

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !verbose) return 0;
  return std::vfprintf(stderr, fmt, args);
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

// The kernel's exit info, once ops.exit() has published it (kind != 0).
// The acquire pairs with the BPF side's compare-and-swap of kind, which it
// does after writing the strings.
bool exited(const scx_goro* skel) {
  return __atomic_load_n(&skel->bss->goro_uei.kind, __ATOMIC_ACQUIRE) != GORO_EXIT_NONE;
}

// ---------------------------------------------------------------------------
// Stats: the per-CPU `stats` map summed over CPUs.

constexpr const char* kStatNames[GORO_NR_STATS] = {
    "direct_idle",    // GORO_STAT_DIRECT_IDLE
    "enqueue",        // GORO_STAT_ENQUEUE
    "credit_clamped", // GORO_STAT_CREDIT_CLAMPED
    "debt_clamped",   // GORO_STAT_DEBT_CLAMPED
    "dispatch",       // GORO_STAT_DISPATCH
    "keep_running",   // GORO_STAT_KEEP_RUNNING
    "dispatch_idle",  // GORO_STAT_DISPATCH_IDLE
};

struct Stats {
  uint64_t v[GORO_NR_STATS] = {};
};

Stats read_stats(const scx_goro* skel, int nr_cpus) {
  Stats st;
  std::vector<uint64_t> percpu(static_cast<size_t>(nr_cpus));
  for (uint32_t i = 0; i < GORO_NR_STATS; i++) {
    if (bpf_map__lookup_elem(skel->maps.stats, &i, sizeof(i), percpu.data(),
                             percpu.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t c : percpu) st.v[i] += c;
  }
  return st;
}

void print_stats(const Stats& now, const Stats& prev, double secs) {
  std::printf("scx_goro: stats %.1fs:", secs);
  for (int i = 0; i < GORO_NR_STATS; i++)
    std::printf(" %s=%" PRIu64, kStatNames[i], now.v[i] - prev.v[i]);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t slice_us = kDefaultSliceUs;
  uint64_t stats_secs = 0;  // 0: no periodic stats
  uint64_t fail_after_enqueues = 0;  // 0: no fault injection

  enum { kOptStats = 256, kOptFailAfterEnqueues };
  static const option long_opts[] = {
      {"slice-us", required_argument, nullptr, 's'},
      {"stats", required_argument, nullptr, kOptStats},
      {"fail-after-enqueues", required_argument, nullptr, kOptFailAfterEnqueues},
      {"verbose", no_argument, nullptr, 'v'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "s:vh", long_opts, nullptr)) != -1) {
    switch (opt) {
      case 's':
        // Up to one second; the kernel's watchdog would make more pointless.
        if (!parse_u64(optarg, 1000000, &slice_us)) {
          std::fprintf(stderr, "scx_goro: bad --slice-us '%s' (want 1..1000000)\n", optarg);
          usage(stderr, argv[0]);
          return 1;
        }
        break;
      case kOptStats:
        if (!parse_u64(optarg, 3600, &stats_secs)) {
          std::fprintf(stderr, "scx_goro: bad --stats '%s' (want 1..3600 seconds)\n", optarg);
          usage(stderr, argv[0]);
          return 1;
        }
        break;
      case kOptFailAfterEnqueues:
        if (!parse_u64(optarg, UINT64_MAX, &fail_after_enqueues)) {
          std::fprintf(stderr, "scx_goro: bad --fail-after-enqueues '%s' (want a positive count)\n", optarg);
          usage(stderr, argv[0]);
          return 1;
        }
        break;
      case 'v':
        verbose = true;
        break;
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

  if (access(kSchedExtDir, F_OK) != 0) {
    std::fprintf(stderr,
                 "scx_goro: this kernel has no sched_ext (%s is missing; needs "
                 "CONFIG_SCHED_CLASS_EXT=y, e.g. the kernel vmtest/run boots)\n",
                 kSchedExtDir);
    return 1;
  }

  libbpf_set_print(libbpf_print);
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  scx_goro* skel = scx_goro__open();
  if (skel == nullptr) {
    std::fprintf(stderr, "scx_goro: opening the BPF skeleton failed: %s\n", std::strerror(errno));
    return 1;
  }
  skel->rodata->slice_ns = slice_us * 1000;
  skel->rodata->fail_after_enqueues = fail_after_enqueues;

  if (int err = scx_goro__load(skel); err != 0) {
    std::fprintf(stderr, "scx_goro: loading the BPF programs failed: %s%s\n", std::strerror(-err),
                 verbose ? "" : " (run with -v for the verifier log)");
    scx_goro__destroy(skel);
    return 1;
  }

  bpf_link* link = bpf_map__attach_struct_ops(skel->maps.goro_ops);
  if (link == nullptr) {
    int err = errno;
    std::fprintf(stderr, "scx_goro: attaching the scheduler failed: %s", std::strerror(err));
    if (err == EBUSY || err == EEXIST)
      std::fprintf(stderr, " (another sched_ext scheduler is loaded: ops '%s')",
                   read_sysfs("root/ops").c_str());
    std::fprintf(stderr, "\n");
    scx_goro__destroy(skel);
    return 1;
  }
  std::printf("scx_goro: attached (slice %" PRIu64 " us); sched_ext state '%s', ops '%s'\n",
              slice_us, read_sysfs("state").c_str(), read_sysfs("root/ops").c_str());
  std::fflush(stdout);

  const int nr_cpus = libbpf_num_possible_cpus();
  const auto start = std::chrono::steady_clock::now();
  auto last_stats_at = start;
  Stats last_stats;
  while (!exit_req && !exited(skel)) {
    std::this_thread::sleep_for(kPollInterval);
    if (stats_secs == 0 || nr_cpus <= 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_stats_at >= std::chrono::seconds(stats_secs)) {
      Stats st = read_stats(skel, nr_cpus);
      print_stats(st, last_stats, std::chrono::duration<double>(now - last_stats_at).count());
      last_stats = st;
      last_stats_at = now;
    }
  }

  // Closing the link unregisters the scheduler if it is still loaded; the
  // kernel has finished disabling it (and called ops.exit) when this returns.
  bpf_link__destroy(link);

  if (nr_cpus > 0) {
    Stats total = read_stats(skel, nr_cpus);
    std::printf("scx_goro: totals over %.1fs:",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    for (int i = 0; i < GORO_NR_STATS; i++) std::printf(" %s=%" PRIu64, kStatNames[i], total.v[i]);
    std::printf("\n");
  }

  int status = 0;
  if (!exited(skel)) {
    std::fprintf(stderr, "scx_goro: EXIT: the kernel left no exit info\n");
    status = 1;
  } else {
    const goro_exit_info& uei = skel->bss->goro_uei;
    const bool error = uei.kind >= GORO_EXIT_ERROR;
    std::fprintf(error ? stderr : stdout, "scx_goro: EXIT: kind %s (%d): %s%s%s%s\n",
                 exit_kind_name(uei.kind), uei.kind, uei.reason, uei.msg[0] ? " (" : "", uei.msg,
                 uei.msg[0] ? ")" : "");
    if (uei.exit_code != 0) std::printf("scx_goro: exit code %" PRId64 "\n", static_cast<int64_t>(uei.exit_code));
    if (error && uei.dump[0] != '\0')
      std::fprintf(stderr, "scx_goro: kernel debug dump:\n%.*s\n", static_cast<int>(sizeof(uei.dump)), uei.dump);
    status = error ? 1 : 0;
  }
  std::printf("scx_goro: sched_ext state now '%s'\n", read_sysfs("state").c_str());
  scx_goro__destroy(skel);
  return status;
}
