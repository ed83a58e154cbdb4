//go:build !linux

package harness

import "os/exec"

// setChildAttrs does nothing here: only Linux can tie a child's life to
// its parent's, so a child may outlive a parent killed outright.
func setChildAttrs(cmd *exec.Cmd) {}
