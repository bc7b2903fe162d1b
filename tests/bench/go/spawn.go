// SPDX-License-Identifier: BSD-3-Clause
// Workload "spawn": start N goroutines that each call wg.Done, wait for all.
// Mirrors goro_workloads spawn (tests/bench/workloads.cpp).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	fmt.Printf("RESULT name=spawn ns=%d n=%d procs=%d\n", ns, n, runtime.GOMAXPROCS(0))
}
