//go:build unix

package httpapi_test

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU this process has used so far
// (getrusage RUSAGE_SELF), and false where that is not available.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
