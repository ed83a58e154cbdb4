package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc"
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
