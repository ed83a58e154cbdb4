package pgtest

import (
	"context"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRestartOnTakenPort: a server whose port another server holds does
// not start, and Restart says so instead of handing out the other server.
func TestRestartOnTakenPort(t *testing.T) {
	ctx := context.Background()
	other := Start(t)
	s := Start(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s.port = other.port
	err := s.Restart(ctx)
	if err == nil {
		t.Fatalf("Restart on the port of another running server (%d) succeeded", other.port)
	}
	// StartServer tries another port on this error.
	if !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
		t.Fatalf("Restart on a taken port = %v, want postgres's bind failure", err)
	}
}

// TestServerGroups: run as root, the server runs as the postgres user with
// that user's groups, none of root's.
func TestServerGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the server runs as this user")
	}
	s := Start(t)
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	want, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var got []string
	for _, line := range strings.Split(string(status), "\n") {
		if g, ok := strings.CutPrefix(line, "Groups:"); ok {
			got = strings.Fields(g)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("postgres runs with groups %v, want the postgres user's %v", got, want)
	}
}
