// SPDX-License-Identifier: BSD-3-Clause
// Uses the public API the way an outside program would; exits 0 when the
// runtime computed the right answer.
#include <goro/goro.h>

int main() {
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
