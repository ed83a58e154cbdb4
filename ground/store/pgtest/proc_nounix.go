//go:build !unix

package pgtest

import (
	"errors"
	"syscall"
)

// credential is whom the server runs as: always this process's user here.
type credential = *struct{}

func chown(string, credential) error { return nil }

// serverCredential refuses: starting postgres from here is written for
// Unix (a user to run it as, a unix socket).
func serverCredential() (credential, error) {
	return nil, errors.New("pgtest: starting PostgreSQL is supported on Unix only")
}

func sysProcAttr(credential) *syscall.SysProcAttr { return nil }
