// Package pgtest runs a throwaway PostgreSQL server from the machine's
// installed binaries: initdb into a temporary directory, postgres on a free
// loopback port with its unix socket in that directory, a fresh database per
// test. Tests call Start; the simulator and other programs call StartServer.
//
// initdb and postgres refuse to run as root, so when the process is root the
// server runs as the "postgres" user (Debian's package creates it) and the
// temporary directory is handed to that user.
//
// Nothing here is for production: the server trusts every local connection.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned (wrapped) by Find and StartServer when no
// PostgreSQL installation is found.
var ErrNotFound = errors.New("PostgreSQL not found (install Debian package postgresql)")

// Options configure StartServer.
type Options struct {
	// Dir is where the data directory, the socket and the log go. Default:
	// a new temporary directory, removed by Close.
	Dir string
	// Durable keeps fsync and synchronous_commit on, as a production server
	// has them; use it when measuring. Default: off, for fast tests (a
	// restart, even after Kill, still keeps every commit: only an operating
	// system crash would lose some).
	Durable bool
	// BinDir holds initdb and postgres. Default: Find.
	BinDir string
	// Log receives the server's log lines. Default: the file postgres.log in
	// Dir.
	Log *os.File
}

// Server is a running (or stopped) throwaway PostgreSQL server.
type Server struct {
	opts    Options
	dir     string // holds data/, the socket and postgres.log
	ownDir  bool   // dir was made by StartServer and is removed by Close
	port    int
	cred    credential // whom postgres runs as; nil: this process's user
	logFile *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	nDB  atomic.Int64
}

// Find returns the directory holding initdb and postgres: the one on PATH
// when both are there, else the newest /usr/lib/postgresql/<version>/bin.
// The environment variable AIRTAB_PG_BIN overrides both.
func Find() (string, error) {
	if d := os.Getenv("AIRTAB_PG_BIN"); d != "" {
		return checkBinDir(d)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if d, err := checkBinDir(filepath.Dir(real)); err == nil {
				return d, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if d, err := checkBinDir(d); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb and postgres on PATH or in /usr/lib/postgresql/*/bin", ErrNotFound)
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func checkBinDir(d string) (string, error) {
	for _, name := range []string{"initdb", "postgres"} {
		if st, err := os.Stat(filepath.Join(d, name)); err != nil || st.IsDir() {
			return "", fmt.Errorf("%w: no %s in %s", ErrNotFound, name, d)
		}
	}
	return d, nil
}

// StartServer makes a new cluster with initdb and starts postgres on a free
// loopback port. Close stops it and removes what it made.
func StartServer(ctx context.Context, opts Options) (*Server, error) {
	if opts.BinDir == "" {
		d, err := Find()
		if err != nil {
			return nil, err
		}
		opts.BinDir = d
	}
	s := &Server{opts: opts, dir: opts.Dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "airtab-pg-")
		if err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		s.dir, s.ownDir = d, true
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	s.cred = cred
	if err := s.chown(s.dir); err != nil {
		return nil, err
	}
	s.logFile = opts.Log
	if s.logFile == nil {
		if s.logFile, err = os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := s.Restart(ctx)
		if err == nil {
			break
		}
		// Another process took the free port before postgres bound it:
		// try another.
		if attempt < 3 && strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			s.port = 0
			continue
		}
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Server) chown(path string) error {
	if err := chown(path, s.cred); err != nil {
		return fmt.Errorf("pgtest: hand %s to the postgres user: %w", path, err)
	}
	return nil
}

func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.opts.BinDir, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = sysProcAttr(s.cred)
	return cmd
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) initdb(ctx context.Context) error {
	cmd := s.command(ctx, "initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before postgres binds it; Restart then fails and says so, and
// StartServer tries another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts postgres again on the same data and port after Stop or
// Kill (or for the first time), and waits until it accepts connections.
// A running server is stopped first.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port == 0 {
		p, err := freePort()
		if err != nil {
			return fmt.Errorf("pgtest: free port: %w", err)
		}
		s.port = p
	}
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + s.dir,
		"-c", "max_connections=200", "-c", "log_min_messages=warning"}
	if !s.opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// Not CommandContext: the server outlives the context of its start.
	cmd := s.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	return s.waitReady(ctx, done)
}

func (s *Server) waitReady(ctx context.Context, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited at start: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready: %v (%w); log: %s", last, ctx.Err(), s.logTail())
		default:
		}
		c, err := s.connectOwn(ctx)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		case <-done:
		}
	}
}

// connectOwn connects to the server over its unix socket in s.dir: this
// server's and no other's. Over TCP, a server that could not bind its port
// would pass for ready while another one listens on it.
func (s *Server) connectOwn(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.URL("postgres"))
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Fallbacks = s.dir, nil
	return pgx.ConnectConfig(ctx, cfg)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop shuts the server down the fast way (SIGINT: open transactions are
// rolled back, clients disconnected) and waits for it; the data stays for
// Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

// Kill ends the server with SIGKILL, as a crash would; Restart recovers it
// from its write-ahead log.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: stop postgres: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if sig == syscall.SIGKILL {
		// The postmaster's children notice it is gone and exit; a new
		// postmaster refuses to start while they still hold the shared
		// memory, so wait for them.
		waitChildrenGone(s.dataDir())
	}
	s.cmd, s.done = nil, nil
	return nil
}

// waitChildrenGone waits (at most 10 s) until no process has the data
// directory as its working directory, which every postgres backend has.
func waitChildrenGone(dataDir string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !anyProcessIn(dataDir) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func anyProcessIn(dir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, p := range procs {
		if d, err := os.Readlink(p); err == nil && d == dir {
			return true
		}
	}
	return false
}

// Close stops the server and removes the directory StartServer made.
func (s *Server) Close() error {
	err := s.Stop()
	if s.logFile != nil && s.logFile != s.opts.Log {
		s.logFile.Close()
	}
	if s.ownDir {
		if rerr := os.RemoveAll(s.dir); err == nil {
			err = rerr
		}
	}
	return err
}

// Port is the loopback TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Dir is the directory holding the data directory, socket and log.
func (s *Server) Dir() string { return s.dir }

// URL is the connection URL of database name on this server, as the
// superuser postgres over loopback TCP.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDatabase creates a new empty database whose name starts with hint
// (lowercased, other characters replaced) and returns its URL. It copies
// template1, which initdb made empty: about 25 ms where template0 takes
// several times that.
func (s *Server) CreateDatabase(ctx context.Context, hint string) (string, error) {
	name := notIdent.ReplaceAllString(strings.ToLower(hint), "_")
	name = fmt.Sprintf("t%d_%s", s.nDB.Add(1), name)
	if len(name) > 60 {
		name = name[:60]
	}
	if err := s.admin(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// DropDatabase drops the database of a URL CreateDatabase returned,
// disconnecting its clients first.
func (s *Server) DropDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := s.admin(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{cfg.Database}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", cfg.Database, err)
	}
	return nil
}

func (s *Server) admin(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// Start starts a server for tb and stops it when tb ends. Without
// PostgreSQL installed it skips tb, saying so, except under CI=true, where
// it fails: CI installs PostgreSQL, so a missing one is a broken CI.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartServer(context.Background(), Options{})
	if err != nil {
		SkipOrFail(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// SkipOrFail ends tb for a server that could not start: a skip when
// PostgreSQL is not installed (outside CI), a failure otherwise.
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNotFound) && os.Getenv("CI") != "true" {
		tb.Skipf("%v: the PostgreSQL run is skipped", err)
	}
	tb.Fatalf("pgtest: %v", err)
}

// NewDatabase creates a fresh database for tb on s and drops it when tb
// ends; it returns the database's URL.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	url, err := s.CreateDatabase(context.Background(), tb.Name())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.DropDatabase(context.Background(), url); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return url
}
