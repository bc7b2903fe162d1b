// SPDX-License-Identifier: BSD-3-Clause
// Workload "chanpc": in the style of Go's BenchmarkChanProdCons{0,10,100}:
// GOMAXPROCS producers and GOMAXPROCS consumers share one channel of
// capacity CAP; producers claim batches of 1000 sends from a shared count
// of N/1000 batches, then send a 0 that stops one consumer.
// Mirrors goro_workloads chanpc.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	n, cp := 1000000, 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		cp, _ = strconv.Atoi(os.Args[2])
	}
	const callsPerSched = 1000
	procs := runtime.GOMAXPROCS(0)
	var batches atomic.Int64
	batches.Store(int64(n / callsPerSched))
	c := make(chan int, cp)
	done := make(chan int, 2*procs)
	start := time.Now()
	for p := 0; p < procs; p++ {
		go func() {
			sent := 0
			for batches.Add(-1) >= 0 {
				for g := 0; g < callsPerSched; g++ {
					c <- 1
				}
				sent += callsPerSched
			}
			c <- 0
			done <- sent
		}()
		go func() {
			got := 0
			for {
				v := <-c
				if v == 0 {
					break
				}
				got += v
			}
			done <- -got
		}()
	}
	sum := 0
	for p := 0; p < 2*procs; p++ {
		sum += <-done
	}
	ns := time.Since(start).Nanoseconds()
	if sum != 0 {
		fmt.Fprintf(os.Stderr, "chanpc: sent - received = %d\n", sum)
		os.Exit(1)
	}
	fmt.Printf("RESULT name=chanpc ns=%d n=%d cap=%d procs=%d\n", ns, n/callsPerSched*callsPerSched, cp, procs)
}
