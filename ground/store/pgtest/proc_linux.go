//go:build linux

package pgtest

import "syscall"

// sysProcAttr runs the child as cred (when not nil) in its own process
// group, so a terminal's Ctrl-C reaches the test and not the server
// directly, and has the kernel kill it if this process dies without Close
// (a test binary's timeout panic, say).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
