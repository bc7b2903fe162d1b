// SPDX-License-Identifier: BSD-3-Clause
// GORO_DEBUG: comma-separated key=value settings, like Go's GODEBUG.
//
//   schedtrace=MS     print a SCHED line every MS milliseconds (from sysmon)
//   scheddetail=1     with schedtrace: also every P, M and G
//   stacksize=KIB     goroutine stack size (virtual; committed lazily)
//   asyncpreemptoff=1 no signal-based preemption (cooperative only)
//   startmlegacy=1    pre-#59600 lock handling in injectglist's startIdle.
//                     Exists only to prove the #59600 regression test has
//                     teeth; honoured only in builds with test hooks
//                     (the Debug build and the builds ctest runs).
//   scx=0             never attach to a scx_goro loader (scx_export.h):
//                     run standalone even if one is there
//   scxdebug=1        one line on stderr for the attach outcome ("goro:
//                     scx: attached to scx_goro, slot N" or "goro: scx:
//                     standalone: <reason>"), per M switched to SCHED_EXT
//                     in partial mode, and per checkdead veto
//   dropwakeup=1      test builds only: the next startm that takes an idle
//                     M skips its wake-up -- a lost wake-up the process
//                     cannot notice, for the in-kernel checkdead's tests
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime.h"

namespace goro::detail {

void parsedebugvars() {
  const char* env = std::getenv("GORO_DEBUG");
  if (!env) return;
  std::string s(env);
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string kv = s.substr(pos, end - pos);
    pos = end + 1;
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string key = kv.substr(0, eq);
    const char* val = kv.c_str() + eq + 1;
    char* vend = nullptr;
    long v = std::strtol(val, &vend, 10);
    if (vend == val || *vend != '\0') {
      std::fprintf(stderr, "goro: GORO_DEBUG: invalid value for %s: %s\n", key.c_str(), val);
      continue;
    }
    if (key == "schedtrace") debug.schedtrace = static_cast<std::int32_t>(v);
    else if (key == "scheddetail") debug.scheddetail = static_cast<std::int32_t>(v);
    else if (key == "stacksize") debug.stacksize_kb = static_cast<std::int32_t>(v);
    else if (key == "asyncpreemptoff") debug.asyncpreemptoff = static_cast<std::int32_t>(v);
    else if (key == "startmlegacy") {
#if defined(GORO_TEST_HOOKS)
      debug.startmlegacy = static_cast<std::int32_t>(v);
#else
      std::fprintf(stderr, "goro: GORO_DEBUG=startmlegacy is only honoured in test builds; ignored\n");
#endif
    } else if (key == "scx") {
      debug.scx = static_cast<std::int32_t>(v);
    } else if (key == "scxdebug") {
      debug.scxdebug = static_cast<std::int32_t>(v);
    } else if (key == "dropwakeup") {
#if defined(GORO_TEST_HOOKS)
      debug.dropwakeup = static_cast<std::int32_t>(v);
#else
      std::fprintf(stderr, "goro: GORO_DEBUG=dropwakeup is only honoured in test builds; ignored\n");
#endif
    } else {
      std::fprintf(stderr, "goro: GORO_DEBUG: unknown setting %s\n", key.c_str());
    }
  }
}

}  // namespace goro::detail
