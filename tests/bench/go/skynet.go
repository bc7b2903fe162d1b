// SPDX-License-Identifier: BSD-3-Clause
// Workload "skynet": a 10-ary tree of goroutines with N leaves (default 1M);
// each leaf sends its number, each inner node sums its children's values from
// one unbuffered channel and sends the sum up. Mirrors goro_workloads skynet.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func skynet(c chan<- int64, num, size, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	var sum int64
	for i := int64(0); i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	n := int64(1000000)
	if len(os.Args) > 1 {
		v, _ := strconv.Atoi(os.Args[1])
		n = int64(v)
	}
	c := make(chan int64)
	start := time.Now()
	go skynet(c, 0, n, 10)
	s := <-c
	ns := time.Since(start).Nanoseconds()
	if want := n * (n - 1) / 2; s != want {
		fmt.Fprintf(os.Stderr, "skynet: got %d want %d\n", s, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT name=skynet ns=%d n=%d procs=%d\n", ns, n, runtime.GOMAXPROCS(0))
}
