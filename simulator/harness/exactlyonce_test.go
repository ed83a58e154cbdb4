package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// The exactly-once trials of issue 5. Each flies a flight with every real
// part (embedded nats-server with JetStream, SQLite files on both sides,
// real signatures, the link emulator between aircraft and ground), does
// something a real link or a real operator does to the replay, and ends in
// the same state (trial.assertExactlyOnce): every invoice the handhelds saw
// approved is cleared on the aircraft, posted and charged exactly once in
// the ledger, the ledger balances and the flight reconciles.

// TestExactlyOnceResets replays through a link that resets the connection
// every 8 KiB, so the replay is cut many times mid-window.
func TestExactlyOnceResets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{ground: GroundOptions{Logger: testLogger()}, cabin: CabinOptions{ReconnectWait: 20 * time.Millisecond, ReceiptAckWait: time.Second, Logger: testLogger()}})
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(160)
	tr.closeFlight()

	tr.c.Link.SetConfig(linkemu.Config{ResetEveryBytes: 8192})
	tr.c.Link.SetState(linkemu.Up)
	// Resets every 8 KiB until every invoice is acknowledged; then the link
	// steadies (as at the gate) and the receipts come home.
	if err := Poll(ctx, time.Minute, "every invoice acknowledged through resets", func() (bool, error) {
		st, err := tr.c.Main.Cabin().Status(ctx)
		return err == nil && st.Invoices.Pending == 0, err
	}); err != nil {
		t.Fatal(err)
	}
	tr.c.Link.SetConfig(linkemu.Config{})
	tr.waitCleared(time.Minute)
	st := tr.c.Link.Stats()
	t.Logf("link: %d connections, %d resets, %d bytes up, %d down", st.Conns, st.Resets, st.BytesUp, st.BytesDown)
	if st.Resets < 10 {
		t.Fatalf("only %d resets: the trial did not cut the replay", st.Resets)
	}
	tr.assertExactlyOnce()
}

// TestExactlyOncePublishedTwice has the replayer send every invoice again
// while it waits for its receipt (ResendAfter far below the clearing time),
// and once all are cleared publishes every invoice once more with the
// aircraft's own NATS identity: JetStream drops the copies within its
// duplicate window, and nothing is posted twice.
func TestExactlyOncePublishedTwice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{cabin: CabinOptions{ResendAfter: time.Millisecond,
		Link: linkemu.Config{Latency: 50 * time.Millisecond}}})
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(150)
	tr.closeFlight()
	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(time.Minute)

	nc, _ := tr.aircraftConn(tr.a)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	items := tr.journalRaws()
	dups, err := republish(ctx, js, tr.a.ID, tr.flight, items)
	if err != nil {
		t.Fatal(err)
	}
	if dups != len(items) {
		t.Fatalf("JetStream reported %d of %d re-published invoices as duplicates, want all", dups, len(items))
	}
	tr.assertExactlyOnce()
}

// TestExactlyOnceGroundRestart restarts the whole ground process (NATS,
// clearing, database) while a bandwidth-limited replay is under way.
func TestExactlyOnceGroundRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{ground: GroundOptions{Logger: testLogger()}, cabin: CabinOptions{ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second, Logger: testLogger()}})
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(150)
	tr.closeFlight()

	tr.c.Link.SetConfig(linkemu.Config{BitsPerSecond: 192_000, Latency: 20 * time.Millisecond})
	tr.c.Link.SetState(linkemu.Up)
	if err := Poll(ctx, time.Minute, "a third of the invoices acknowledged", func() (bool, error) {
		c := tr.counts()
		return c.Sent+c.Cleared >= 50, nil
	}); err != nil {
		t.Fatal(err)
	}
	if c := tr.counts(); c.Pending == 0 {
		t.Fatalf("every invoice was acknowledged before the restart (counts %+v): it did not fall mid-stream", c)
	}
	if err := tr.g.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	tr.waitCleared(time.Minute)
	tr.assertExactlyOnce()
}

// TestExactlyOnceAfterDuplicateWindow shortens the streams' duplicate
// window to a second and, once every invoice is cleared, publishes them
// all again after the window: JetStream stores them as new messages,
// clearing sees each invoice id again, posts nothing, and sends the
// receipts again, which the aircraft takes and acknowledges without
// change: receipts_applied still counts each invoice once.
func TestExactlyOnceAfterDuplicateWindow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{ground: GroundOptions{StreamDuplicates: time.Second}})
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(40)
	tr.closeFlight()
	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(time.Minute)
	applied := tr.c.Main.Replayer().Status().ReceiptsApplied

	nc, _ := tr.aircraftConn(tr.a)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Past the window for the receipts too, or JetStream would drop the
	// receipts sent again (harmlessly: the aircraft holds them) and this
	// trial could not see them come back.
	gjs := tr.groundJS()
	var before uint64 // receipts in the stream before the invoices come again
	if err := Poll(ctx, 30*time.Second, "receipts' duplicate window passed", func() (bool, error) {
		si, err := tr.receiptStream(gjs).Info(ctx)
		if err == nil {
			before = si.State.Msgs
		}
		return err == nil && time.Since(si.State.LastTime) > 2*time.Second, err
	}); err != nil {
		t.Fatal(err)
	}
	// Publish every invoice until JetStream takes each as a new message:
	// the window has passed for it.
	items := tr.journalRaws()
	left := items
	if err := Poll(ctx, 30*time.Second, "duplicate window passed", func() (bool, error) {
		var err error
		left, err = republishNew(ctx, js, tr.a.ID, tr.flight, left)
		return len(left) == 0, err
	}); err != nil {
		t.Fatal(err)
	}
	// Clearing sends a receipt for each again, and the cabin's receipt
	// consumer takes and acknowledges every one.
	cons, err := gjs.Consumer(ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(tr.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 30*time.Second, "receipts sent again and acknowledged", func() (bool, error) {
		si, err := tr.receiptStream(gjs).Info(ctx)
		if err != nil || si.State.Msgs < before+uint64(len(items)) {
			return false, err
		}
		ci, err := cons.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= si.State.LastSeq && ci.NumAckPending == 0, err
	}); err != nil {
		si, _ := tr.receiptStream(gjs).Info(ctx)
		ci, _ := cons.Info(ctx)
		t.Fatalf("%v: %d receipts before, %d invoices sent again; receipt stream %+v; consumer %+v", err, before, len(items), si.State, ci)
	}
	st := tr.c.Main.Replayer().Status()
	if st.ReceiptsApplied != applied {
		t.Fatalf("receipts_applied = %d after every receipt came twice, want %d: distinct invoices", st.ReceiptsApplied, applied)
	}
	if st.ReceiptsBad != 0 {
		t.Fatalf("%d receipts refused", st.ReceiptsBad)
	}
	tr.assertExactlyOnce()
}

// gateAcquirer holds every card capture until the gate opens, so a test
// can decide when clearing finishes.
type gateAcquirer struct {
	clearing.Acquirer
	open chan struct{}
}

func (g *gateAcquirer) Capture(ctx context.Context, req clearing.CaptureRequest) (clearing.CaptureResult, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return clearing.CaptureResult{}, ctx.Err()
	}
	return g.Acquirer.Capture(ctx, req)
}

// TestExactlyOnceReceiptsLost lets the aircraft deliver every invoice, then
// black-holes its link while ground clears them, so every receipt is
// published while the aircraft cannot read it. When the link comes back
// the receipts that waited in the durable stream are applied. Then each
// receipt is delivered a second time, and applying it changes nothing.
func TestExactlyOnceReceiptsLost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gate := &gateAcquirer{Acquirer: clearing.NewSimAcquirer(clearing.SimConfig{}), open: make(chan struct{})}
	tr := newTrial(t, ctx, trialOptions{cardsOnly: true, ground: GroundOptions{Acquirer: gate},
		cabin: CabinOptions{ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second}})
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(60)
	tr.closeFlight()
	tr.c.Link.SetState(linkemu.Up)
	if err := Poll(ctx, 30*time.Second, "every invoice acknowledged", func() (bool, error) {
		return tr.counts().Pending == 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	tr.c.Link.SetState(linkemu.Blackhole)
	if got := tr.counts().Cleared; got != 0 {
		t.Fatalf("%d invoices cleared with every capture held", got)
	}
	close(gate.open)
	js := tr.groundJS()
	n := len(tr.approved)
	if err := Poll(ctx, 30*time.Second, "every receipt published", func() (bool, error) {
		info, err := tr.receiptStream(js).Info(ctx)
		return err == nil && info.State.Msgs >= uint64(n), err
	}); err != nil {
		t.Fatal(err)
	}
	if got := tr.counts().Cleared; got != 0 {
		t.Fatalf("%d receipts crossed a black-holed link", got)
	}
	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(time.Minute)

	// Every receipt once more, as a redelivery would bring it.
	applied := tr.c.Main.Replayer().Status().ReceiptsApplied
	stream := tr.receiptStream(js)
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data},
			jetstream.WithMsgID(fmt.Sprintf("again-%d", seq))); err != nil {
			t.Fatal(err)
		}
	}
	// The cabin's receipt consumer has taken and acked every copy, and
	// receipts_applied still counts each invoice once.
	last := info.State.LastSeq + (info.State.LastSeq - info.State.FirstSeq + 1)
	cons, err := js.Consumer(ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(tr.c.Aircraft.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 30*time.Second, "receipts applied again", func() (bool, error) {
		ci, err := cons.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= last && ci.NumAckPending == 0, err
	}); err != nil {
		t.Fatal(err)
	}
	if got := tr.c.Main.Replayer().Status().ReceiptsApplied; got != applied {
		t.Fatalf("receipts_applied = %d after every receipt came twice, want %d: distinct invoices", got, applied)
	}
	if bad := tr.c.Main.Replayer().Status().ReceiptsBad; bad != 0 {
		t.Fatalf("%d receipts refused", bad)
	}
	tr.assertExactlyOnce()
}

func (tr *trial) receiptStream(js jetstream.JetStream) jetstream.Stream {
	tr.t.Helper()
	s, err := js.Stream(tr.ctx, protocol.StreamReceipts)
	if err != nil {
		tr.t.Fatal(err)
	}
	return s
}

// TestExactlyOnceImpostor has aircraft D-AIUA, connected with its own
// nkey, publish its signed invoices on D-AIUB's invoice subject. The
// embedded server of the real ground Main refuses the publish (permissions
// violation), nothing is stored for D-AIUB and clearing sees nothing; the
// invoices still clear once, as D-AIUA's, through D-AIUA's own replay.
func TestExactlyOnceImpostor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{passengers: 1})
	b, flightB := tr.registerFlight("D-AIUB", "456")
	tr.c.Link.SetState(linkemu.Down)
	tr.sell(5)
	tr.closeFlight()

	nc, errs := tr.aircraftConn(tr.a)
	subject := protocol.InvoiceSubject(b.ID, flightB)
	for _, it := range tr.journalRaws() {
		m := nats.NewMsg(subject)
		m.Data = it.Raw
		m.Header.Set(jetstream.MsgIDHeader, protocol.InvoiceMsgID(it.ID))
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("server said %v, want a permissions violation", err)
		}
	case <-ctx.Done():
		t.Fatal("no permissions violation")
	}
	// Nothing for D-AIUB in the stream; nothing in clearing.
	s, err := tr.groundJS().Stream(ctx, protocol.StreamInvoices)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 0 {
		t.Fatalf("stream holds %v for %s", info.State.Subjects, b.ID)
	}

	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(time.Minute)
	tr.assertExactlyOnce()
	var held, rejects int
	db := tr.g.Main.DB()
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clearing_invoices WHERE flight = ? OR aircraft = ?`, flightB, b.ID).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clearing_rejects WHERE flight = ? OR aircraft = ?`, flightB, b.ID).Scan(&rejects); err != nil {
		t.Fatal(err)
	}
	if held != 0 || rejects != 0 {
		t.Fatalf("clearing holds %d invoices and %d rejects for %s", held, rejects, b.ID)
	}
}
