//go:build !unix

package bench

import "time"

// selfCPU is not available here: the clearing section reports no CPU
// figure.
func selfCPU() (time.Duration, bool) { return 0, false }
