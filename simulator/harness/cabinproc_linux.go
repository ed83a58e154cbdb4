package harness

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel kill a cabin server child when the
// program that started it dies, however it dies: a child left behind would
// hold its journal and its port. (Linux sends the signal when the thread
// that started the child exits; the Go runtime does not end its threads
// unless a goroutine locked to one exits, which the harness never does.)
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
