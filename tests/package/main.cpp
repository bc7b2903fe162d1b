// SPDX-License-Identifier: BSD-3-Clause
// Uses the public API the way an outside program would; exits 0 when the
// runtime computed the right answer (and, given GORO_EXPECT_VERSION, when
// <goro/goro.h> states that version).
#include <goro/goro.h>

#include <cstdio>
#include <cstring>

static_assert(GORO_VERSION_MAJOR >= 0 && GORO_VERSION_MINOR >= 0 && GORO_VERSION_PATCH >= 0);

int main() {
  char parts[64];
  std::snprintf(parts, sizeof parts, "%d.%d.%d", GORO_VERSION_MAJOR, GORO_VERSION_MINOR, GORO_VERSION_PATCH);
  if (std::strcmp(parts, GORO_VERSION_STRING) != 0) {
    std::fprintf(stderr, "GORO_VERSION_MAJOR/MINOR/PATCH (%s) disagree with GORO_VERSION_STRING (%s)\n", parts,
                 GORO_VERSION_STRING);
    return 1;
  }
#ifdef GORO_EXPECT_VERSION
  if (std::strcmp(GORO_VERSION_STRING, GORO_EXPECT_VERSION) != 0) {
    std::fprintf(stderr, "<goro/goro.h> says version %s, expected %s\n", GORO_VERSION_STRING, GORO_EXPECT_VERSION);
    return 1;
  }
#endif
  return goro::run([] {
    goro::Chan<int> results;
    goro::WaitGroup wg;
    for (int i = 0; i < 10; i++) {
      wg.add(1);
      goro::go([=, &wg]() mutable {
        results.send(i * i);
        wg.done();
      });
    }
    goro::go([&] {
      wg.wait();
      results.close();
    });
    int sum = 0;
    while (auto v = results.recv()) sum += *v;
    return sum == 285 ? 0 : 1;
  });
}
