package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc"
	"github.com/airtab/airtab/ground/store/pgtest"
)

// TestServeRoleFlag: --role takes all, api or clearing, all by default, and
// anything else is a bad command line naming the choices.
func TestServeRoleFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want app.Role
	}{
		{nil, app.RoleAll},
		{[]string{"--role", "all"}, app.RoleAll},
		{[]string{"--role", "api"}, app.RoleAPI},
		{[]string{"--role", "clearing"}, app.RoleClearing},
	} {
		cfg, err := parseServeFlags(tc.args, io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.Role != tc.want {
			t.Errorf("%v: role %q, want %q", tc.args, cfg.Role, tc.want)
		}
	}
	_, err := parseServeFlags([]string{"--role", "worker"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "want all, api or clearing") {
		t.Fatalf("--role worker: %v, want an error naming the roles", err)
	}
}

// TestRolesNeedSharedParts: a process that runs only part of ground is
// refused, with an error saying what it lacks, when the other parts could
// not share its database and NATS: without an external NATS, or on SQLite.
// Nothing is left behind: the data directory starts a whole ground after.
func TestRolesNeedSharedParts(t *testing.T) {
	ns, err := natsvc.StartServer(natsvc.ServerConfig{Port: -1, StoreDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  app.Config
		want string
	}{
		{"APIWithoutExternalNATS", app.Config{Role: app.RoleAPI}, "needs an external NATS"},
		{"ClearingWithoutExternalNATS", app.Config{Role: app.RoleClearing}, "needs an external NATS"},
		{"APIOnSQLite", app.Config{Role: app.RoleAPI, NATSURL: ns.ClientURL()}, "needs a database shared by every ground process"},
		{"ClearingOnSQLite", app.Config{Role: app.RoleClearing, NATSURL: ns.ClientURL()}, "needs a database shared by every ground process"},
		{"UnknownRole", app.Config{Role: "worker"}, "want all, api or clearing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir, cfg.HTTPAddr, cfg.NATSListen, cfg.Logger = dir, "127.0.0.1:0", "127.0.0.1:0", quiet
			m := &app.Main{Config: cfg}
			err := m.Run(context.Background())
			if err == nil {
				m.Close()
				t.Fatalf("Run = nil, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "issuer.key")); !os.IsNotExist(err) {
				t.Fatalf("a refused start made an issuer key: %v", err)
			}
		})
	}
	m := startMain(t, dir, nil)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRolesShareDataDir: an API server and a clearing worker on one
// PostgreSQL database and an external NATS run side by side on one data
// directory (their keys), and a key change is refused while they run.
func TestRolesShareDataDir(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	ns, err := natsvc.StartServer(natsvc.ServerConfig{Port: -1, StoreDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	dir := t.TempDir()
	var mains []*app.Main
	defer func() {
		for _, m := range mains {
			m.Close()
		}
	}()
	for _, role := range []app.Role{app.RoleAPI, app.RoleClearing, app.RoleClearing} {
		m := &app.Main{Config: app.Config{Role: role, DataDir: dir, Postgres: dsn, NATSURL: ns.ClientURL(),
			HTTPAddr: "127.0.0.1:0", HeartbeatInterval: 50 * time.Millisecond, Logger: quiet}}
		if err := m.Run(context.Background()); err != nil {
			t.Fatalf("role %s beside the others: %v", role, err)
		}
		mains = append(mains, m)
	}
	err = keysRun(dir, "add", "", time.Now(), time.Time{}, 0, 0, true, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stop the ground service first") {
		t.Fatalf("ground keys add while they run: %v, want refused", err)
	}
	// A worker answers /healthz and /metrics, and nothing of the API.
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusOK, "/v1/arrears": http.StatusNotFound} {
		resp, err := http.Get("http://" + mains[1].HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("worker GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	for _, m := range mains {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := keysRun(dir, "add", "", time.Now(), time.Time{}, 0, 0, true, io.Discard); err != nil {
		t.Fatalf("ground keys add once they stopped: %v", err)
	}
}
