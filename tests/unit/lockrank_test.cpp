// SPDX-License-Identifier: BSD-3-Clause
// The runtime's lock order (runtime/src/lockrank.h) is enforced in checked
// builds: every pair taken in table order is allowed, any other nesting is
// the runtime's fatal error, naming both locks. (The whole unit suite runs
// the real runtime under the same check.)
#include <gtest/gtest.h>

#include <string>

#include "export_test.h"

namespace {

namespace tx = goro::testexport;

class LockRankDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST(LockRank, EveryPairInTableOrderMayNest) {
  auto names = tx::lock_rank_names();
  ASSERT_GE(names.size(), 10u);
  for (std::size_t i = 0; i < names.size(); i++)
    for (std::size_t j = i + 1; j < names.size(); j++) {
      SCOPED_TRACE(names[i] + " then " + names[j]);
      tx::lock_two(names[i].c_str(), names[j].c_str(), true);
      tx::lock_two(names[i].c_str(), names[j].c_str(), false);
    }
}

TEST_F(LockRankDeathTest, ReverseOrderIsFatal) {
  EXPECT_EXIT(tx::lock_two("allg", "sched", true), ::testing::ExitedWithCode(2),
              "lock ordering problem: acquiring sched .* while holding allg");
}

TEST_F(LockRankDeathTest, TimersUnderSchedLockIsAllowedButNotTheOtherWay) {
  tx::lock_two("sched", "timers", true);  // procresize moving timers
  EXPECT_EXIT(tx::lock_two("timers", "sched", true), ::testing::ExitedWithCode(2),
              "acquiring sched .* while holding timers");
}

TEST_F(LockRankDeathTest, ASingleRankLockTakenTwiceIsFatal) {
  EXPECT_EXIT(tx::lock_two("allg", "allg", true), ::testing::ExitedWithCode(2),
              "acquiring allg .* while holding allg");
}

TEST_F(LockRankDeathTest, MultiRankLocksNestOnlyInAddressOrder) {
  tx::lock_two("hchan", "hchan", true);
  tx::lock_two("timers", "timers", true);
  EXPECT_EXIT(tx::lock_two("hchan", "hchan", false), ::testing::ExitedWithCode(2),
              "acquiring hchan .* while holding hchan");
}

}  // namespace
