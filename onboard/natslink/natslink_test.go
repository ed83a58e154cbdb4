package natslink_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/natslink"
	"github.com/airtab/airtab/protocol"
)

var ctx = context.Background()

// runNATS starts an embedded nats-server on a random port and connects to
// it.
func runNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ground answers manifest and delta requests the way the ground service
// does, from what the test puts in it.
type ground struct {
	mu       sync.Mutex
	manifest []byte
	deltas   [][]byte // deltas of the manifest, in order
	errReply string
}

func (g *ground) serve(t *testing.T, nc *nats.Conn, f *ft.Flight) {
	t.Helper()
	_, err := nc.Subscribe(protocol.ManifestSubject(f.Aircraft, f.ID), func(m *nats.Msg) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.errReply != "" {
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(protocol.ErrorHeader, g.errReply)
			m.RespondMsg(reply)
			return
		}
		m.Respond(g.manifest)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.Subscribe(protocol.DeltaSubject(f.Aircraft, f.ID), func(m *nats.Msg) {
		req, err := protocol.DecodeDeltaRequest(m.Data)
		if err != nil {
			t.Errorf("delta request: %v", err)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		var b protocol.DeltaBatch
		if req.BaseSerial != f.Serial() {
			b.Superseded = true
		} else {
			for _, d := range g.deltas[min(req.AfterSeq, uint64(len(g.deltas))):] {
				if len(b.Deltas) == 2 { // small batches, to exercise paging
					break
				}
				b.Deltas = append(b.Deltas, d)
			}
		}
		out, err := protocol.EncodeDeltaBatch(b)
		if err != nil {
			t.Errorf("delta batch: %v", err)
			return
		}
		m.Respond(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestSync(t *testing.T) {
	nc := runNATS(t)
	f := ft.New(t, ft.Options{Passengers: 1})
	late := f.NewPassenger(false)
	g := &ground{manifest: f.SignManifest(nil)}
	for seq := uint64(1); seq <= 3; seq++ {
		g.deltas = append(g.deltas, f.SignDelta(seq, func(d *protocol.ManifestDelta) {
			if seq == 2 {
				d.Credentials = [][]byte{late.Credential.Raw}
			}
		}))
	}
	g.serve(t, nc, f)
	cabin, _ := f.OpenCabin(nil, nil)

	if err := natslink.Sync(ctx, nc, cabin); err != nil {
		t.Fatal(err)
	}
	m := cabin.Manifest()
	if m == nil || m.Serial() != 1 || m.DeltaSeq() != 3 {
		t.Fatalf("after sync: manifest %+v, want serial 1 with 3 deltas", m)
	}
	if _, ok := m.Credential(late.Credential.Body.ID); !ok {
		t.Fatal("late registrant's credential missing after sync")
	}

	// Ground issues a newer manifest: the delta request says superseded.
	g.mu.Lock()
	g.manifest, g.deltas = f.SignManifest(nil), nil
	g.mu.Unlock()
	if err := natslink.Sync(ctx, nc, cabin); err != nil {
		t.Fatal(err)
	}
	if got := cabin.Manifest().Serial(); got != 2 {
		t.Fatalf("serial after superseded = %d, want 2", got)
	}
}

func TestSyncErrors(t *testing.T) {
	nc := runNATS(t)
	f := ft.New(t, ft.Options{Passengers: 1})
	cabin, _ := f.OpenCabin(nil, nil)

	err := natslink.Sync(ctx, nc, cabin)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("sync with no ground = %v, want no responders", err)
	}
	g := &ground{errReply: "404 no manifest for this flight"}
	g.serve(t, nc, f)
	if err := natslink.Sync(ctx, nc, cabin); !errors.Is(err, natslink.ErrGround) {
		t.Fatalf("sync with an error reply = %v, want ErrGround", err)
	}
	// A manifest that does not verify is refused and not used.
	g.mu.Lock()
	g.errReply, g.manifest = "", []byte("forged")
	g.mu.Unlock()
	if err := natslink.Sync(ctx, nc, cabin); err == nil || cabin.Manifest() != nil {
		t.Fatalf("sync with a forged manifest = %v, manifest %v; want refused", err, cabin.Manifest())
	}
}

func TestSyncerRuns(t *testing.T) {
	nc := runNATS(t)
	f := ft.New(t, ft.Options{Passengers: 1})
	g := &ground{manifest: f.SignManifest(nil)}
	g.serve(t, nc, f)
	cabin, _ := f.OpenCabin(nil, nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		(&natslink.Syncer{Conn: nc, Cabin: cabin, Interval: 10 * time.Millisecond}).Run(rctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for cabin.Manifest() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no manifest after 10 s of syncing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestSyncerSyncsOnConnect: a cabin server started before its link is up
// (or before ground knows its aircraft) fetches the manifest as soon as the
// connection comes up, not at the next interval, which here is an hour.
func TestSyncerSyncsOnConnect(t *testing.T) {
	// Take a free port for a server that is not running yet.
	probe, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go probe.Start()
	if !probe.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Shutdown()
	probe.WaitForShutdown()

	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f := ft.New(t, ft.Options{Passengers: 1})
	cabin, _ := f.OpenCabin(nil, nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		(&natslink.Syncer{Conn: nc, Cabin: cabin, Interval: time.Hour}).Run(rctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // the syncer's first round finds no link
	if cabin.Manifest() != nil {
		t.Fatal("a manifest with no server running")
	}

	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	gc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gc.Close)
	g := &ground{manifest: f.SignManifest(nil)}
	g.serve(t, gc, f)
	if err := gc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The cabin's connection may come up before ground's responders
	// subscribe: then the sync on connect fails and is tried again within
	// seconds. Either way the manifest comes long before the hour.
	deadline := time.Now().Add(30 * time.Second)
	for cabin.Manifest() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no manifest 30 s after the link came up (interval 1 h); connection %s", nc.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSyncerPullsOnNotice: a Syncer that polls only hourly applies each
// delta once ground publishes the manifest change notice.
func TestSyncerPullsOnNotice(t *testing.T) {
	nc := runNATS(t)
	f := ft.New(t, ft.Options{Passengers: 1})
	g := &ground{manifest: f.SignManifest(nil)}
	g.serve(t, nc, f)
	cabin, _ := f.OpenCabin(nil, nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		(&natslink.Syncer{Conn: nc, Cabin: cabin, Interval: time.Hour}).Run(rctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "the manifest", func() bool { return cabin.Manifest() != nil })

	for seq := uint64(1); seq <= 3; seq++ {
		late := f.NewPassenger(false)
		g.mu.Lock()
		g.deltas = append(g.deltas, f.SignDelta(seq, func(d *protocol.ManifestDelta) { d.Credentials = [][]byte{late.Credential.Raw} }))
		g.mu.Unlock()
		if err := nc.Publish(protocol.NoticeSubject(f.Aircraft, f.ID), nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("delta %d applied after its notice", seq), func() bool {
			_, ok := cabin.Manifest().Credential(late.Credential.Body.ID)
			return ok && cabin.Manifest().DeltaSeq() == seq
		})
	}
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
