//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs the child as cred (when not nil) in its own process
// group.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
