// SPDX-License-Identifier: BSD-3-Clause
// Workload "sleep": N goroutines each sleep a pseudo-random 1..10 ms
// (splitmix64 from SEED, the same stream as goro_workloads sleep). Reports
// the total wall time and the overshoot (wake time - deadline): mean, p50,
// p99, max, min. Mirrors goro_workloads sleep.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func pct(v []int64, p float64) int64 {
	i := int(p * float64(len(v)))
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}

func main() {
	n, seed := 100000, 1
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		seed, _ = strconv.Atoi(os.Args[2])
	}
	dur := make([]time.Duration, n)
	st := uint64(seed)
	for i := range dur {
		dur[i] = time.Duration(1000000 + int64(splitmix64(&st)%9000001))
	}
	over := make([]int64, n)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			d := dur[i]
			deadline := time.Now().Add(d)
			time.Sleep(d)
			over[i] = time.Since(deadline).Nanoseconds()
			wg.Done()
		}(i)
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	s := append([]int64(nil), over...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	fmt.Printf("RESULT name=sleep ns=%d n=%d procs=%d mean_over_ns=%.0f p50_over_ns=%d p99_over_ns=%d max_over_ns=%d min_over_ns=%d\n",
		ns, n, runtime.GOMAXPROCS(0), sum/float64(n), pct(s, 0.50), pct(s, 0.99), s[len(s)-1], s[0])
}
