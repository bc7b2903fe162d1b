// SPDX-License-Identifier: BSD-3-Clause
// Workload "pingpong": two goroutines bounce a value over two unbuffered
// channels N round trips. Run with GOMAXPROCS=1 and 2.
// Mirrors goro_workloads pingpong.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan bool)
	start := time.Now()
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		done <- true
	}()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	close(ping)
	<-done
	ns := time.Since(start).Nanoseconds()
	if v != n {
		fmt.Fprintf(os.Stderr, "pingpong: got %d want %d\n", v, n)
		os.Exit(1)
	}
	fmt.Printf("RESULT name=pingpong ns=%d n=%d procs=%d\n", ns, n, runtime.GOMAXPROCS(0))
}
