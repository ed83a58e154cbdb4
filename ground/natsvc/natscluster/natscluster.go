// Package natscluster runs a JetStream cluster of in-process nats-server
// nodes on loopback ports, for tests, the failover trials and the
// simulator (--nats-cluster 3): each node has its own JetStream directory,
// routes to every other node, and fixed client and route ports, so a node
// stopped with Kill comes back with Restart where clients and peers expect
// it.
//
// The nodes do not advertise one another to clients (cluster no_advertise):
// a client connects only to the URLs it was given, which lets a link
// emulator stand between a cabin server and each node.
package natscluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Account is the NATS account the cluster's clients and streams live in
// when no accounts are configured: nats-server's global account.
const Account = "$G"

// MaxNodes bounds Config.Nodes.
const MaxNodes = 7

// Config configures Start.
type Config struct {
	// Nodes is the number of servers. Default 3; at most MaxNodes.
	Nodes int
	// Dir holds each node's JetStream files, in node-1, node-2, ….
	// Required.
	Dir string
	// Name is the cluster's name. Default "airtab".
	Name string
	// Callout, when set, turns on authorization by ground's auth callout
	// (natsvc.Callout) on every node. Default: none, any client may
	// connect with full rights.
	Callout *Callout
	// Configure, when set, edits each node's options before it starts (and
	// again before a Restart), after Callout is applied.
	Configure func(node int, opts *server.Options) error
	// ReadyTimeout bounds the wait for a node to accept connections and for
	// the cluster to elect its JetStream meta leader. Default 30 s.
	ReadyTimeout time.Duration
	// Logger receives the servers' warnings and errors. Default: discarded.
	Logger *slog.Logger
}

// Callout is the authorization of a cluster whose clients are let in by
// ground's auth callout, as in production (see natsvc's callout.go):
// ground logs in with its own nkey and answers for everyone else.
type Callout struct {
	// GroundNKey is ground's public user nkey ("U…"), the one auth user.
	GroundNKey string
	// Issuer is the public key of the account nkey ("A…") that signs the
	// callout's answers.
	Issuer string
}

// apply writes the callout authorization into opts. Listing ground's nkey
// also makes the server send every client a nonce to sign.
func (a *Callout) apply(opts *server.Options) {
	opts.Nkeys = []*server.NkeyUser{{Nkey: a.GroundNKey}}
	opts.AuthCallout = &server.AuthCallout{Issuer: a.Issuer, AuthUsers: []string{a.GroundNKey}}
}

// Cluster is a running in-process JetStream cluster.
type Cluster struct {
	cfg         Config
	clientPorts []int
	routePorts  []int

	mu      sync.Mutex
	servers []*server.Server // nil: the node is down
}

// Start starts cfg.Nodes servers, each routed to all the others, and waits
// until every one accepts connections and the cluster has a JetStream meta
// leader with every node as a current peer.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("natscluster: Config.Dir is required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("natscluster: %d nodes: want 1 to %d", cfg.Nodes, MaxNodes)
	}
	if cfg.Name == "" {
		cfg.Name = "airtab"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg, servers: make([]*server.Server, cfg.Nodes)}
	ports, err := freePorts(2 * cfg.Nodes)
	if err != nil {
		return nil, err
	}
	c.clientPorts, c.routePorts = ports[:cfg.Nodes], ports[cfg.Nodes:]
	// Start every node before waiting on any: a node with routes to peers
	// not yet listening keeps retrying them.
	for i := range cfg.Nodes {
		s, err := c.newServer(i)
		if err != nil {
			c.Close()
			return nil, err
		}
		s.Start()
		c.servers[i] = s
	}
	for i, s := range c.servers {
		if !s.ReadyForConnections(cfg.ReadyTimeout) {
			c.Close()
			return nil, fmt.Errorf("natscluster: node %d not ready within %s", i+1, cfg.ReadyTimeout)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newServer makes node i's server from its options.
func (c *Cluster) newServer(i int) (*server.Server, error) {
	var routes []string
	for j, p := range c.routePorts {
		if j != i {
			routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	opts := &server.Options{
		ServerName: c.NodeName(i),
		Host:       "127.0.0.1",
		Port:       c.clientPorts[i],
		JetStream:  true,
		StoreDir:   filepath.Join(c.cfg.Dir, "node-"+strconv.Itoa(i+1)),
		MaxPayload: 1 << 20,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: c.cfg.Name, Host: "127.0.0.1", Port: c.routePorts[i],
			NoAdvertise: true, // clients use only the URLs they were given
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
	}
	if c.cfg.Callout != nil {
		c.cfg.Callout.apply(opts)
	}
	if c.cfg.Configure != nil {
		if err := c.cfg.Configure(i, opts); err != nil {
			return nil, fmt.Errorf("natscluster: configure node %d: %w", i+1, err)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natscluster: node %d: %w", i+1, err)
	}
	s.SetLoggerV2(logger{l: c.cfg.Logger.With("component", "nats-server", "node", c.NodeName(i))}, false, false, false)
	return s, nil
}

// NodeName is node i's server name: "n1", "n2", ….
func (c *Cluster) NodeName(i int) string { return "n" + strconv.Itoa(i+1) }

// Nodes is the number of nodes, up or down.
func (c *Cluster) Nodes() int { return len(c.clientPorts) }

// Addrs are the nodes' client addresses ("127.0.0.1:port"), up or down.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.clientPorts))
	for i, p := range c.clientPorts {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return addrs
}

// URLs are the nodes' client URLs ("nats://127.0.0.1:port").
func (c *Cluster) URLs() []string {
	urls := c.Addrs()
	for i, a := range urls {
		urls[i] = (&url.URL{Scheme: "nats", Host: a}).String()
	}
	return urls
}

// URL is the comma-separated list of the nodes' client URLs, the form
// ground's --nats-url and nats.Connect take.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Server is node i's running server, or nil while it is down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Kill stops node i: its clients are disconnected, its routes dropped and
// its JetStream stopped, as when the machine goes away (its files stay for
// Restart). The server shuts down in process; nothing is fsynced beyond
// what JetStream already wrote.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		return fmt.Errorf("natscluster: node %d is already down", i+1)
	}
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// Restart starts node i again on its ports and JetStream directory, and
// waits until it accepts connections. It rejoins the cluster and catches
// up the streams it holds on its own.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		return fmt.Errorf("natscluster: node %d is running", i+1)
	}
	s, err := c.newServer(i)
	if err != nil {
		return err
	}
	s.Start()
	if !s.ReadyForConnections(c.cfg.ReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("natscluster: node %d not ready within %s after restart", i+1, c.cfg.ReadyTimeout)
	}
	c.servers[i] = s
	return nil
}

// running returns the servers that are up, with their node numbers.
func (c *Cluster) running() map[int]*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	up := map[int]*server.Server{}
	for i, s := range c.servers {
		if s != nil {
			up[i] = s
		}
	}
	return up
}

// WaitReady waits until a running node is the JetStream meta leader, every
// running node is current with it, and the leader counts every node of the
// cluster as a peer: until then a stream with as many replicas as nodes
// cannot be placed.
func (c *Cluster) WaitReady(ctx context.Context) error {
	return c.poll(ctx, "JetStream meta leader", func() bool {
		up := c.running()
		leader := false
		for _, s := range up {
			if !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leader = len(s.JetStreamClusterPeers()) >= c.Nodes()
			}
		}
		return leader
	})
}

// StreamLeader is the node leading stream (in Account): its replica that
// takes the writes. It fails when no running node leads it.
func (c *Cluster) StreamLeader(stream string) (int, error) {
	for i, s := range c.running() {
		if s.JetStreamIsStreamLeader(Account, stream) {
			return i, nil
		}
	}
	return -1, fmt.Errorf("natscluster: stream %s has no leader on a running node", stream)
}

// WaitStreamLeader waits until a running node other than not leads stream
// (pass -1 for any node), and returns it.
func (c *Cluster) WaitStreamLeader(ctx context.Context, stream string, not int) (int, error) {
	leader := -1
	err := c.poll(ctx, "stream "+stream+" leader", func() bool {
		i, err := c.StreamLeader(stream)
		if err != nil || i == not {
			return false
		}
		leader = i
		return true
	})
	return leader, err
}

// ConsumerLeader is the node leading consumer on stream (in Account).
func (c *Cluster) ConsumerLeader(stream, consumer string) (int, error) {
	for i, s := range c.running() {
		if s.JetStreamIsConsumerLeader(Account, stream, consumer) {
			return i, nil
		}
	}
	return -1, fmt.Errorf("natscluster: consumer %s on %s has no leader on a running node", consumer, stream)
}

// MoveConsumerLeader has consumer on stream step down, asking JetStream
// to make node its new leader, and waits until node leads it. The request
// goes over nc, which needs the rights to the JetStream API.
func (c *Cluster) MoveConsumerLeader(ctx context.Context, nc *nats.Conn, stream, consumer string, node int) error {
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": c.NodeName(node)}})
	if err != nil {
		return err
	}
	return c.poll(ctx, fmt.Sprintf("consumer %s leader on %s", consumer, c.NodeName(node)), func() bool {
		if i, err := c.ConsumerLeader(stream, consumer); err == nil && i == node {
			return true
		}
		// A stepdown during an election is refused; the next round asks
		// again.
		_, _ = nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN."+stream+"."+consumer, req, 2*time.Second)
		return false
	})
}

// poll calls cond until it is true, ctx ends or ReadyTimeout passes.
func (c *Cluster) poll(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(c.cfg.ReadyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natscluster: %s: not within %s", what, c.cfg.ReadyTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natscluster: %s: %w", what, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Close stops every running node.
func (c *Cluster) Close() {
	c.mu.Lock()
	all := c.servers
	c.servers = make([]*server.Server, len(all))
	c.mu.Unlock()
	for _, s := range all {
		if s != nil {
			s.Shutdown()
		}
	}
	for _, s := range all {
		if s != nil {
			s.WaitForShutdown()
		}
	}
}

// freePorts returns n distinct free loopback TCP ports. They are free when
// returned; a node binds its own a moment later.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natscluster: free port: %w", err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// logger routes a node's warnings and errors to slog; its notices, debug
// and trace lines are dropped (a cluster is chatty about elections).
type logger struct{ l *slog.Logger }

func (a logger) Noticef(string, ...any)         {}
func (a logger) Debugf(string, ...any)          {}
func (a logger) Tracef(string, ...any)          {}
func (a logger) Warnf(format string, v ...any)  { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a logger) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a logger) Fatalf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
