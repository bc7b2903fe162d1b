// SPDX-License-Identifier: BSD-3-Clause
// Workload "selectu": uncontended select. Each of GOMAXPROCS goroutines owns
// K channels (K = 2 or 4) of capacity 1 and one token; it selects over its K
// receives and passes the token to the next channel, N/GOMAXPROCS times.
// Mirrors goro_workloads selectu.
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
	n, k := 1000000, 2
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		k, _ = strconv.Atoi(os.Args[2])
	}
	if k != 2 && k != 4 {
		fmt.Fprintln(os.Stderr, "selectu: K must be 2 or 4")
		os.Exit(2)
	}
	procs := runtime.GOMAXPROCS(0)
	per := n / procs
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(procs)
	for p := 0; p < procs; p++ {
		go func() {
			cs := make([]chan int, k)
			for i := range cs {
				cs[i] = make(chan int, 1)
			}
			cs[0] <- 0
			for j := 0; j < per; j++ {
				if k == 2 {
					select {
					case <-cs[0]:
						cs[1] <- 0
					case <-cs[1]:
						cs[0] <- 0
					}
				} else {
					select {
					case <-cs[0]:
						cs[1] <- 0
					case <-cs[1]:
						cs[2] <- 0
					case <-cs[2]:
						cs[3] <- 0
					case <-cs[3]:
						cs[0] <- 0
					}
				}
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	fmt.Printf("RESULT name=selectu ns=%d n=%d k=%d procs=%d\n", ns, per*procs, k, procs)
}
