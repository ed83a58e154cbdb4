package natsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// hangGuard bounds a test's wait for something that happens on its own
// (a message, a login, a leader): only a hung test waits this long, so it
// is generous for a loaded machine running -race, and never a measure of
// speed.
const hangGuard = 2 * time.Minute

// dial connects to url with opts, and waits up to hangGuard for the
// login: nats.go gives up after 2 s by default, which a bcrypt password
// check or an auth callout round trip can take under -race on a loaded
// machine.
func dial(url string, opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(url, append([]nats.Option{nats.Timeout(hangGuard)}, opts...)...)
}

// waitFor polls cond until it holds; only a hung test waits hangGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, hangGuard)
		}
		time.Sleep(wait)
	}
}

// startNATS starts an embedded nats-server on a free port with JetStream in
// a temporary directory, and connects to it over TCP.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := dial(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fixedScore gives every passenger the same score.
type fixedScore int

func (s fixedScore) Score(context.Context, registry.Applicant) (int, error) { return int(s), nil }

type world struct {
	ctx    context.Context
	nc     *nats.Conn
	reg    *registry.Registry
	issuer crypto.PrivateKey
	flight protocol.FlightID
}

var flightDate = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// newWorld is a registry with aircraft D-AIUA flying XX123 and a responder
// serving it over a real nats-server.
func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ground.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	issuer, _ := crypto.GenerateKey(crypto.Issuer, nil)
	clock := func() time.Time { return flightDate.Add(-3 * time.Hour) }
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Clock: clock, Logger: quiet,
		Scorer: fixedScore(700)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []protocol.AircraftID{"D-AIUA", "D-AIUB"} {
		k, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		if _, err := reg.RegisterAircraft(ctx, registry.Aircraft{ID: id, Key: k.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	fl, _, err := reg.RegisterFlight(ctx, registry.FlightSpec{Carrier: "XX", Number: "123", Date: flightDate, Aircraft: "D-AIUA", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ctx: ctx, nc: startNATS(t), reg: reg, issuer: issuer, flight: fl.ID}
	r, err := StartResponder(ctx, ResponderConfig{Conn: w.nc, Source: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return w
}

// passenger registers an opted-in passenger and returns their id and
// credential.
func (w *world) passenger(t *testing.T, ref string) (protocol.ID, *protocol.SignedCredential) {
	t.Helper()
	dev, _ := crypto.GenerateKey(crypto.Device, nil)
	p, err := w.reg.CreatePassenger(w.ctx, dev.Public(), ref)
	if err != nil {
		t.Fatal(err)
	}
	// A card: a prepaid wallet's limit is the balance the registry holds,
	// and this world has no ledger money in it.
	card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_" + ref, Last4: "4242", ExpMonth: 12, ExpYear: 2030}
	if err := w.reg.SetFunding(w.ctx, p.ID, card); err != nil {
		t.Fatal(err)
	}
	ic, _, err := w.reg.OptIn(w.ctx, p.ID, dev.Public(), w.flight)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID, ic.Signed
}

// request sends a sync request and returns the reply body, or the error
// header's code and message.
func (w *world) request(t *testing.T, subject string, body []byte) ([]byte, registry.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, hangGuard)
	defer cancel()
	msg, err := w.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	if h := msg.Header.Get(protocol.ErrorHeader); h != "" {
		if len(msg.Data) != 0 {
			t.Fatalf("error reply %q has a body of %d bytes", h, len(msg.Data))
		}
		code, text := ParseErrorHeader(h)
		return nil, code, text
	}
	return msg.Data, "", ""
}

func (w *world) deltas(t *testing.T, a protocol.AircraftID, req protocol.DeltaRequest) protocol.DeltaBatch {
	t.Helper()
	body, err := protocol.EncodeDeltaRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, code, msg := w.request(t, protocol.DeltaSubject(a, w.flight), body)
	if code != "" {
		t.Fatalf("delta request: %s %s", code, msg)
	}
	batch, err := protocol.DecodeDeltaBatch(reply)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

func TestManifestOverNATS(t *testing.T) {
	w := newWorld(t)
	_, c1 := w.passenger(t, "p")
	raw, code, msg := w.request(t, protocol.ManifestSubject("D-AIUA", w.flight), nil)
	if code != "" {
		t.Fatalf("manifest request: %s %s", code, msg)
	}
	m, err := protocol.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The cabin server was given issuer.pub: that is all it trusts.
	tl, _ := crypto.NewTrustList(crypto.TrustedKey{Key: w.issuer.Public(), NotBefore: flightDate.Add(-365 * 24 * time.Hour), NotAfter: flightDate.Add(365 * 24 * time.Hour)})
	if _, err := m.VerifyTrusted(tl, flightDate, nil); err != nil {
		t.Fatal(err)
	}
	inside, err := m.Body.TrustList()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := m.Body.ParseCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].Body.ID != c1.Body.ID {
		t.Fatalf("manifest credentials = %d, want c1", len(creds))
	}
	if _, err := creds[0].VerifyTrusted(inside, flightDate, nil); err != nil {
		t.Fatal(err)
	}
	base := m.Body.Serial

	// A late registrant and an arrears entry come as gapless deltas.
	if got := w.deltas(t, "D-AIUA", protocol.DeltaRequest{BaseSerial: base}); len(got.Deltas) != 0 || got.Superseded {
		t.Fatalf("deltas before any change = %+v", got)
	}
	_, late := w.passenger(t, "")
	b1 := w.deltas(t, "D-AIUA", protocol.DeltaRequest{BaseSerial: base})
	p0, _ := w.passenger(t, "")
	if err := w.reg.MarkArrears(w.ctx, p0, protocol.ID{0xde, 0xad}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	b2 := w.deltas(t, "D-AIUA", protocol.DeltaRequest{BaseSerial: base, AfterSeq: 1})
	if len(b1.Deltas) != 1 || len(b2.Deltas) != 1 {
		t.Fatalf("batches = %d and %d deltas, want 1 and 1", len(b1.Deltas), len(b2.Deltas))
	}
	var seqs []uint64
	for _, rawd := range append(b1.Deltas, b2.Deltas...) {
		d, err := protocol.ParseManifestDelta(rawd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.VerifyTrusted(inside, flightDate, nil); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, d.Body.Seq)
		if d.Body.Seq == 1 {
			cs, _ := d.Body.ParseCredentials()
			if len(cs) != 1 || cs[0].Body.ID != late.Body.ID {
				t.Fatalf("delta 1 does not carry the late registrant")
			}
		}
		if d.Body.Seq == 2 && !slices.Contains(d.Body.Deny, protocol.DenyEntry{Passenger: p0, Reason: protocol.DenyArrears}) {
			t.Fatalf("delta 2 deny = %v, want the arrears entry", d.Body.Deny)
		}
	}
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("delta seqs = %v, want gapless from 1", seqs)
	}

	t.Run("Superseded", func(t *testing.T) {
		if _, err := w.reg.BuildManifest(w.ctx, w.flight); err != nil {
			t.Fatal(err)
		}
		if got := w.deltas(t, "D-AIUA", protocol.DeltaRequest{BaseSerial: base}); !got.Superseded {
			t.Fatalf("old base = %+v, want superseded", got)
		}
	})
}

func TestSyncRefusals(t *testing.T) {
	w := newWorld(t)
	okDelta, _ := protocol.EncodeDeltaRequest(protocol.DeltaRequest{BaseSerial: 1})
	for _, tc := range []struct {
		name    string
		subject string
		body    []byte
		code    registry.Code
	}{
		{"ErrWrongAircraftManifest", protocol.ManifestSubject("D-AIUB", w.flight), nil, registry.CodeForbidden},
		{"ErrWrongAircraftDelta", protocol.DeltaSubject("D-AIUB", w.flight), okDelta, registry.CodeForbidden},
		{"ErrUnknownFlight", protocol.ManifestSubject("D-AIUA", "XX999-2026-11-21"), nil, registry.CodeNotFound},
		{"ErrUnknownAircraft", protocol.ManifestSubject("N12345", w.flight), nil, registry.CodeForbidden},
		{"ErrManifestBody", protocol.ManifestSubject("D-AIUA", w.flight), []byte{1}, registry.CodeInvalid},
		{"ErrMalformedDelta", protocol.DeltaSubject("D-AIUA", w.flight), []byte{0xa1, 0x01}, registry.CodeInvalid},
		{"ErrNoManifestYet", protocol.DeltaSubject("D-AIUA", w.flight), okDelta, registry.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, code, msg := w.request(t, tc.subject, tc.body)
			if code != tc.code {
				t.Fatalf("reply = %d bytes, code %q %q; want code %s", len(body), code, msg, tc.code)
			}
			if msg == "" {
				t.Fatal("error reply without a message")
			}
		})
	}
}

func TestResponderStop(t *testing.T) {
	nc := startNATS(t)
	r, err := StartResponder(context.Background(), ResponderConfig{Conn: nc, Source: stubSource{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request(protocol.ManifestSubject("D-AIUA", "XX1-2026-11-21"), nil, hangGuard); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	_, err = nc.Request(protocol.ManifestSubject("D-AIUA", "XX1-2026-11-21"), nil, hangGuard)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request after Stop: %v, want no responders", err)
	}
}

type stubSource struct{}

func (stubSource) SyncManifest(context.Context, protocol.AircraftID, protocol.FlightID) (*protocol.SignedManifest, error) {
	return nil, errors.New("boom: internal detail")
}

func (stubSource) SyncDeltas(context.Context, protocol.AircraftID, protocol.FlightID, protocol.DeltaRequest) (protocol.DeltaBatch, error) {
	return protocol.DeltaBatch{}, nil
}

func TestInternalErrorHidden(t *testing.T) {
	nc := startNATS(t)
	r, err := StartResponder(context.Background(), ResponderConfig{Conn: nc, Source: stubSource{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	msg, err := nc.Request(protocol.ManifestSubject("D-AIUA", "XX1-2026-11-21"), nil, hangGuard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msg.Header.Get(protocol.ErrorHeader), "internal internal error"; got != want {
		t.Fatalf("error header = %q, want %q", got, want)
	}
}

func TestStreams(t *testing.T) {
	nc := startNATS(t)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := EnsureStreams(ctx, js, Streams{}); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := js.Stream(ctx, protocol.StreamInvoices)
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.CachedInfo().Config
	if !slices.Equal(cfg.Subjects, []string{protocol.AllInvoices, protocol.AllCloses}) || cfg.Storage != jetstream.FileStorage || cfg.Duplicates != 2*time.Minute {
		t.Fatalf("invoice stream config = subjects %v storage %v duplicates %v", cfg.Subjects, cfg.Storage, cfg.Duplicates)
	}
	// The duplicate window drops a replayed message id.
	for range 2 {
		if _, err := js.Publish(ctx, protocol.InvoiceSubject("D-AIUA", "XX1-2026-11-21"), []byte("x"), jetstream.WithMsgID("inv-1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, protocol.CloseSubject("D-AIUA", "XX1-2026-11-21"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	info, err := inv.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(2); got != want {
		t.Fatalf("invoice stream holds %d messages, want %d", got, want)
	}
	if _, err := js.Publish(ctx, protocol.ReceiptSubject("D-AIUA", "XX1-2026-11-21"), []byte("r")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, protocol.InvoiceSubject("D-AIUA", "XX1-2026-11-21"), make([]byte, InvoiceStreamMaxMsgSize+1)); err == nil {
		t.Fatal("an oversize invoice was accepted")
	}
}

func TestHeartbeat(t *testing.T) {
	nc := startNATS(t)
	sub, err := nc.SubscribeSync(protocol.HeartbeatSubject)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	h, err := StartHeartbeat(HeartbeatConfig{Conn: nc, Interval: 10 * time.Millisecond, Clock: func() time.Time { return at }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	for range 2 { // the first at start, then from the ticker
		msg, err := sub.NextMsg(hangGuard)
		if err != nil {
			t.Fatal(err)
		}
		hb, err := protocol.DecodeHeartbeat(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !hb.Time.Equal(at) {
			t.Fatalf("heartbeat time = %v, want %v", hb.Time, at)
		}
	}
}
