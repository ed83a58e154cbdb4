package harness

import (
	"context"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// TestClusterFailoverStreamLeader is the NATS failover trial of issue 13:
// ground on a three-node JetStream cluster with R3 streams, a cabin server
// given a link to every node, and the node leading the invoice stream
// killed while a bandwidth-limited replay is under way. The aircraft's
// receipt consumer is led from that same node, so its leader changes too.
// The replay resumes on the nodes left, every invoice is charged exactly
// once (ledger and clearing report agree), and the receipt consumer is the
// same one it was, with a new leader.
func TestClusterFailoverStreamLeader(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cluster, err := StartNATSCluster(ctx, t.TempDir(), 3, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // registered first: runs after the ground and cabin have closed
	tr := newTrial(t, ctx, trialOptions{ground: GroundOptions{NATSCluster: cluster, Logger: testLogger()},
		// The receipt consumer keeps the cabin server's AckWait (10 s): the
		// receipts the killed leader had delivered but not seen acked are
		// delivered again by the new one, and on this slow link a second's
		// AckWait would have them sent again before the first copies
		// arrive, over and over.
		cabin: CabinOptions{ReconnectWait: 20 * time.Millisecond, Logger: testLogger()}})
	if got, want := len(tr.c.Links), 3; got != want {
		t.Fatalf("cabin links = %d, want one per node (%d)", got, want)
	}
	js := tr.groundJS()
	for _, name := range []string{protocol.StreamInvoices, protocol.StreamReceipts} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.CachedInfo().Config.Replicas, 3; got != want {
			t.Fatalf("%s replicas = %d, want %d", name, got, want)
		}
	}
	receipts := protocol.ReceiptConsumer(tr.a.ID)
	if err := Poll(ctx, 30*time.Second, "the aircraft's receipt consumer", func() (bool, error) {
		_, err := js.Consumer(ctx, protocol.StreamReceipts, receipts)
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, protocol.StreamReceipts, receipts)
	if err != nil {
		t.Fatal(err)
	}
	created := cons.CachedInfo().Created

	tr.c.Links.SetState(linkemu.Down)
	tr.sell(300)
	tr.closeFlight()

	leader, err := cluster.WaitStreamLeader(ctx, protocol.StreamInvoices, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.MoveConsumerLeader(ctx, tr.g.Main.NATS(), protocol.StreamReceipts, receipts, leader); err != nil {
		t.Fatal(err)
	}
	tr.c.Links.SetConfig(linkemu.Config{BitsPerSecond: 256_000, Latency: 20 * time.Millisecond})
	tr.c.Links.SetState(linkemu.Up)
	if err := Poll(ctx, time.Minute, "a third of the invoices acknowledged", func() (bool, error) {
		c := tr.counts()
		return c.Sent+c.Cleared >= 100, nil
	}); err != nil {
		t.Fatalf("%v (counts %+v, replay %+v, links %+v)", err, tr.counts(), tr.c.Main.Replayer().Status(), linkStats(tr.c.Links))
	}
	before := tr.counts()
	if before.Pending == 0 {
		t.Fatalf("every invoice was acknowledged before the kill (counts %+v): it did not fall mid-replay", before)
	}
	if err := cluster.Kill(leader); err != nil {
		t.Fatal(err)
	}
	next, err := cluster.WaitStreamLeader(ctx, protocol.StreamInvoices, leader)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("invoice stream leader %s killed with counts %+v; %s leads now", cluster.NodeName(leader), before, cluster.NodeName(next))

	defer func() {
		if !t.Failed() {
			return
		}
		// What the receipt consumer looked like, to tell a stall from a
		// slow link.
		if c, err := js.Consumer(context.Background(), protocol.StreamReceipts, receipts); err == nil {
			ci := c.CachedInfo()
			t.Logf("receipt consumer: %d pending, %d awaiting ack, %d waiting pulls, delivered %+v, ack floor %+v, cluster %+v",
				ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.Delivered, ci.AckFloor, ci.Cluster)
		} else {
			t.Logf("receipt consumer: %v", err)
		}
	}()
	tr.waitCleared(3 * time.Minute)
	after := tr.counts()
	if after.Cleared <= before.Cleared {
		t.Fatalf("no receipt reached the aircraft after the kill: cleared %d before, %d after", before.Cleared, after.Cleared)
	}
	tr.assertExactlyOnce()

	cons, err = js.Consumer(ctx, protocol.StreamReceipts, receipts)
	if err != nil {
		t.Fatalf("receipt consumer after the leader change: %v", err)
	}
	info := cons.CachedInfo()
	if !info.Created.Equal(created) {
		t.Fatalf("receipt consumer created %v, was %v: it was made again, not kept", info.Created, created)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == cluster.NodeName(leader) {
		t.Fatalf("receipt consumer cluster %+v, want a leader other than the killed %s", info.Cluster, cluster.NodeName(leader))
	}
	// Acks the killed leader took but had not yet replicated are lost with
	// it: the new leader delivers those receipts again after their
	// AckWait, and the aircraft, holding them already, acks them again.
	if err := Poll(ctx, time.Minute, "every receipt acked on the new leader", func() (bool, error) {
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0, err
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.counts().Cleared, int64(len(tr.approved)); got != want {
		t.Fatalf("cleared after the redelivered receipts = %d, want %d", got, want)
	}
	if bad := tr.c.Main.Replayer().Status().ReceiptsBad; bad != 0 {
		t.Fatalf("%d receipts refused by the aircraft, want 0", bad)
	}

	// The node comes back and catches up: the invoice stream has three
	// current replicas again, with every message.
	if err := cluster.Restart(leader); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(tr.approved) + 1) // and the flight-close report
	if err := Poll(ctx, time.Minute, "the restarted node current on the invoice stream", func() (bool, error) {
		s, err := js.Stream(ctx, protocol.StreamInvoices)
		if err != nil {
			return false, nil // during the node's rejoin
		}
		info := s.CachedInfo()
		if info.Cluster == nil || len(info.Cluster.Replicas) != 2 || info.State.Msgs != want {
			return false, nil
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// linkStats is what each link carried.
func linkStats(links LinkGroup) []linkemu.Stats {
	var st []linkemu.Stats
	for _, l := range links {
		st = append(st, l.Stats())
	}
	return st
}
