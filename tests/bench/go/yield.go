// SPDX-License-Identifier: BSD-3-Clause
// Workload "yield": G goroutines (default 2) each call runtime.Gosched N/G
// times; N yields in all. Mirrors goro_workloads yield.
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
	gs := 2
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		gs, _ = strconv.Atoi(os.Args[2])
	}
	per := n / gs
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(gs)
	for g := 0; g < gs; g++ {
		go func() {
			for i := 0; i < per; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	fmt.Printf("RESULT name=yield ns=%d n=%d gs=%d procs=%d\n", ns, per*gs, gs, runtime.GOMAXPROCS(0))
}
