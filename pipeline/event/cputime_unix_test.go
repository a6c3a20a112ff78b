//go:build unix

package event_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used (user + system), so a
// benchmark can report throughput per CPU-second, which stays meaningful on
// a machine shared with other work, unlike wall-clock records/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
