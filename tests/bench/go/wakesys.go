// SPDX-License-Identifier: BSD-3-Clause
// Workload "wakesys": in the style of Go's BenchmarkWakeupParallelSyscall.
// Two goroutines alternate as sender and receiver on unbuffered channels;
// before each receive a goroutine sleeps DELAY and before each send
// DELAY+5us in a blocking nanosleep system call (syscall.Nanosleep goes
// through syscall.Syscall, i.e. entersyscall/exitsyscall; no time.Sleep).
// Reports ns per round (each goroutine sends once and receives once).
// Mirrors goro_workloads wakesys.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func sysNanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	syscall.Nanosleep(&ts, nil)
}

func main() {
	n, delayUs := 2000, 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		delayUs, _ = strconv.Atoi(os.Args[2])
	}
	delay := time.Duration(delayUs) * time.Microsecond
	const wakeDelay = 5 * time.Microsecond
	ping, pong := make(chan int), make(chan int)
	startc, done := make(chan int), make(chan int)
	go func() {
		<-startc
		for i := 0; i < n; i++ {
			sysNanosleep(delay + wakeDelay)
			ping <- 0
			sysNanosleep(delay)
			<-pong
		}
		done <- 0
	}()
	go func() {
		for i := 0; i < n; i++ {
			sysNanosleep(delay)
			<-ping
			sysNanosleep(delay + wakeDelay)
			pong <- 0
		}
		done <- 0
	}()
	start := time.Now()
	startc <- 0
	<-done
	<-done
	ns := time.Since(start).Nanoseconds()
	fmt.Printf("RESULT name=wakesys ns=%d n=%d delay_us=%d procs=%d\n", ns, n, delayUs, runtime.GOMAXPROCS(0))
}
