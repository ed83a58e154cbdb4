//go:build !linux

package bench

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("bench: the cabin server's CPU is read from /proc and getrusage(RUSAGE_THREAD): Linux only")

func procCPU(int) (time.Duration, error) { return 0, errNotLinux }

func threadCPU() (time.Duration, error) { return 0, errNotLinux }
