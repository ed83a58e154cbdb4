package onboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Config configures a Cabin.
type Config struct {
	// Flight and Aircraft are who this cabin server is. Required.
	Flight   protocol.FlightID
	Aircraft protocol.AircraftID
	// AircraftKey signs invoices and the flight-close report. Required.
	AircraftKey crypto.PrivateKey
	// Issuer is the trust anchor for manifests and deltas: the issuer keys
	// this aircraft trusts before it has any manifest. Required.
	Issuer *crypto.TrustList
	// Journal is the durable store. Required.
	Journal Journal
	// Clock gives the time. Default: time.Now.
	Clock Clock
	// Rand is the source of order ids. Default: crypto/rand.
	Rand io.Reader
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Observer receives sale decisions for metrics. Default: none.
	Observer Observer
	// QueueLen bounds the requests waiting for the writer. Default: 1024.
	QueueLen int
	// MaxBatch bounds the requests in one group commit. Default: 256.
	MaxBatch int
	// OrderTTL is how long an order for two-way mode stays open.
	// Default: 10 minutes.
	OrderTTL time.Duration
	// MaxOrders bounds the open orders. Default: 1024.
	MaxOrders int
	// PINConcurrency bounds the crew PIN hashes computed at once. Each
	// takes the memory its hash parameters say (19 MiB with
	// crypto.DefaultPINParams), so one at a time keeps the cabin server
	// within its memory budget. Default: 1.
	PINConcurrency int
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.OrderTTL <= 0 {
		c.OrderTTL = 10 * time.Minute
	}
	if c.MaxOrders <= 0 {
		c.MaxOrders = 1024
	}
	if c.PINConcurrency <= 0 {
		c.PINConcurrency = 1
	}
}

func (c *Config) check() error {
	switch {
	case c.Journal == nil:
		return errors.New("cabin: no journal")
	case c.AircraftKey.Purpose() != crypto.Aircraft:
		return errors.New("cabin: the aircraft key must be an aircraft private key")
	case c.Issuer.Len() == 0:
		return errors.New("cabin: no issuer trust anchor")
	}
	if err := c.Flight.Validate(); err != nil {
		return fmt.Errorf("cabin: %w", err)
	}
	if err := c.Aircraft.Validate(); err != nil {
		return fmt.Errorf("cabin: %w", err)
	}
	return nil
}

// Cabin is the cabin server's core: the manifest cache, the authorization
// rules and the invoice journal behind one writer. Its methods are safe for
// concurrent use; the handheld API calls them from many goroutines.
type Cabin struct {
	cfg Config
	id  Identity
	log *slog.Logger

	manifestMu sync.Mutex // serializes manifest loads and deltas
	manifest   atomic.Pointer[Manifest]

	// state and broken are written only by the writer, under stateMu; the
	// writer reads them without the lock, everyone else with RLock.
	stateMu sync.RWMutex
	state   *state
	broken  error // the journal cannot be trusted: sales are off until a restart

	queueMu    sync.RWMutex // guards stopped against sends on a closed queue
	stopped    bool
	queue      chan *job
	writerDone chan struct{}
	writerGate sync.Mutex // held by tests to let a batch build up
	pending    atomic.Int64

	orders *orderBook
	pins   chan struct{} // PIN hash slots
	link   atomic.Value  // LinkState
	replay atomic.Value  // func() ReplayProgress
	stats  statCounters
}

// statCounters are the writer's counters.
type statCounters struct {
	commits, approved, declined, failedCommits atomic.Uint64
	maxBatchN                                  atomic.Int64
}

func (s *statCounters) maxBatch(n int) {
	if int64(n) > s.maxBatchN.Load() {
		s.maxBatchN.Store(int64(n)) // only the writer stores
	}
}

// Open opens the cabin server on cfg.Journal: it loads the cached manifest
// and its deltas (a stored manifest that no longer verifies is logged and
// not used: sales stay off), rebuilds the state from the invoices, checking
// every signature, the sequence and the hash chain, and starts the writer.
// A journal that fails those checks is refused.
func Open(ctx context.Context, cfg Config) (*Cabin, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c := &Cabin{
		cfg:        cfg,
		id:         Identity{Flight: cfg.Flight, Aircraft: cfg.Aircraft, AircraftKey: cfg.AircraftKey.Public()},
		log:        cfg.Logger,
		queue:      make(chan *job, cfg.QueueLen),
		writerDone: make(chan struct{}),
		orders:     newOrderBook(cfg.MaxOrders, cfg.OrderTTL),
		pins:       make(chan struct{}, cfg.PINConcurrency),
	}
	c.link.Store(LinkUnknown)
	s, err := loadState(ctx, cfg.Journal, c.id)
	if err != nil {
		return nil, fmt.Errorf("open cabin: %w", err)
	}
	c.state = s
	declined, err := cfg.Journal.Declines(ctx)
	if err != nil {
		return nil, fmt.Errorf("open cabin: count declines: %w", err)
	}
	c.stats.declined.Store(declined)
	if err := c.loadStoredManifest(ctx); err != nil {
		c.log.Error("stored manifest not used: sales are off until a valid one is loaded", "err", err)
	}
	go c.writer()
	return c, nil
}

// Close stops taking requests, lets the writer finish every queued one, and
// returns when it has. It does not close the journal.
func (c *Cabin) Close() error {
	c.queueMu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.queue)
	}
	c.queueMu.Unlock()
	<-c.writerDone
	return nil
}

// Identity returns who this cabin server is.
func (c *Cabin) Identity() Identity { return c.id }

// Manifest returns the manifest in use, or nil when there is none.
func (c *Cabin) Manifest() *Manifest { return c.manifest.Load() }

// SetLinkState records the state of the link to the ground, for Status.
func (c *Cabin) SetLinkState(s LinkState) { c.link.Store(s) }

// SetReplayProgress gives Status a way to ask the replayer for its progress.
func (c *Cabin) SetReplayProgress(f func() ReplayProgress) { c.replay.Store(f) }

// Stats returns the writer's counters.
func (c *Cabin) Stats() Stats {
	return Stats{
		Commits:       c.stats.commits.Load(),
		Approved:      c.stats.approved.Load(),
		Declined:      c.stats.declined.Load(),
		MaxBatch:      int(c.stats.maxBatchN.Load()),
		FailedCommits: c.stats.failedCommits.Load(),
	}
}

// loadState rebuilds the state from the journal, checking as it goes what
// was checked before writing: each invoice's aircraft signature and
// identity, its code's device key and counter against the journal's columns,
// the sequence and the chain (state.apply); then the flight-close report
// against the chain head.
func loadState(ctx context.Context, j Journal, id Identity) (*state, error) {
	s := newState()
	err := j.Invoices(ctx, func(rec Record) error {
		inv, err := protocol.ParseInvoice(rec.Raw)
		if err != nil {
			return fmt.Errorf("journal invoice after seq %d: %w", s.lastSeq, err)
		}
		if err := inv.Verify(id.AircraftKey, nil); err != nil {
			return fmt.Errorf("journal invoice %s (seq %d): %w", inv.Body.ID, inv.Body.Seq, err)
		}
		if err := checkIdentity("journal invoice "+inv.Body.ID.String(), inv.Body.Flight, inv.Body.Aircraft, id); err != nil {
			return err
		}
		device, counter, err := recordCode(inv, rec)
		if err != nil {
			return fmt.Errorf("journal invoice %s (seq %d): %w", inv.Body.ID, inv.Body.Seq, err)
		}
		return s.apply(&inv.Body, inv.Hash(), device, counter)
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild state from journal: %w", err)
	}
	raw, err := j.FlightClose(ctx)
	if err != nil || raw == nil {
		return s, err
	}
	fc, err := protocol.ParseFlightClose(raw)
	if err != nil {
		return nil, fmt.Errorf("journal flight close: %w", err)
	}
	if err := fc.Verify(id.AircraftKey, nil); err != nil {
		return nil, fmt.Errorf("journal flight close: %w", err)
	}
	if fc.Body.LastSeq != s.lastSeq || fc.Body.Head != s.head {
		return nil, fmt.Errorf("journal flight close: last seq %d head %s, but the journal ends at seq %d head %s",
			fc.Body.LastSeq, fc.Body.Head, s.lastSeq, s.head)
	}
	s.close = fc
	return s, nil
}

// recordCode returns the device key and counter of a journaled sale's code,
// after checking that the journal's columns agree with the code itself.
func recordCode(inv *protocol.SignedInvoice, rec Record) (crypto.PublicKey, uint64, error) {
	if inv.Body.Kind == protocol.KindVoid {
		if rec.Device != nil || rec.Counter != 0 {
			return crypto.PublicKey{}, 0, errors.New("a void with a device key in the journal")
		}
		return crypto.PublicKey{}, 0, nil
	}
	var kid crypto.KeyID
	var counter uint64
	if len(inv.Body.Code) > 0 {
		pc, err := protocol.ParsePaymentCode(inv.Body.Code)
		if err != nil {
			return crypto.PublicKey{}, 0, err
		}
		kid, counter = pc.KeyID, pc.Body.Counter
	} else {
		oc, err := protocol.ParseOrderConsent(inv.Body.Consent)
		if err != nil {
			return crypto.PublicKey{}, 0, err
		}
		kid, counter = oc.KeyID, oc.Body.Counter
	}
	device, err := crypto.PublicKeyFromBytes(crypto.Device, rec.Device)
	if err != nil {
		return crypto.PublicKey{}, 0, fmt.Errorf("journal device key: %w", err)
	}
	if device.ID() != kid || counter != rec.Counter {
		return crypto.PublicKey{}, 0, fmt.Errorf("journal columns (device %s, counter %d) disagree with the code (device %s, counter %d)",
			device.ID(), rec.Counter, kid, counter)
	}
	return device, counter, nil
}

// Authorize checks a sale and, if every rule passes, journals the signed
// invoice and returns the approval; only a committed invoice is approved. A
// decline is a Decision, not an error. A malformed request (bad QR text,
// unknown SKU, bad quantity) is an *Error with CodeInvalid and nothing is
// written. A retry with the invoice id and request of an approved sale
// returns that approval again.
func (c *Cabin) Authorize(ctx context.Context, req SaleRequest) (Decision, error) {
	p, err := parseSaleRequest(req)
	if err != nil {
		return Decision{}, err
	}
	fp := requestFingerprint(p, req.OrderID, req.Lines)
	if d, ok, err := c.answerRetry(ctx, req.InvoiceID, fp); ok || err != nil {
		return d, err
	}
	now := c.cfg.Clock()
	m := c.manifest.Load()
	if r := sellable(m, c.isClosed(), now); r != 0 {
		return c.declinedEarly(req, r), nil
	}
	s := &preparedSale{id: req.InvoiceID, crew: req.Crew, code: p, fingerprint: fp}
	var priceReason protocol.Reason
	if p.consent != nil {
		o, ok := c.orders.get(req.OrderID, now)
		if !ok {
			return Decision{}, Errorf(CodeNotFound, "order %s is unknown or expired: create a new order", req.OrderID)
		}
		s.order, s.lines, s.total = o, o.order.Lines, o.order.Total
	} else if s.lines, s.total, priceReason, err = priceLines(m, req.Lines); err != nil {
		return Decision{}, err
	}
	var r protocol.Reason
	if s.cred, r = checkPresented(m, p, now); r != 0 {
		return c.declinedEarly(req, r), nil
	}
	s.amountReason = checkAmount(m, &s.cred.Body, s.total, priceReason, p.consent, s.order)
	res, err := c.submit(ctx, &job{sale: s})
	if err != nil {
		return Decision{}, err
	}
	return c.saleAnswer(ctx, req, s, res)
}

// parseSaleRequest checks the form of a sale request (step 1 of the rules,
// but for the basket, which needs the catalog).
func parseSaleRequest(req SaleRequest) (*presented, error) {
	if req.InvoiceID.IsZero() {
		return nil, malformed("missing invoice_id: the handheld chooses it and keeps it for retries")
	}
	p, err := parseCode(req.Code)
	if err != nil {
		return nil, err
	}
	if p.consent != nil {
		if req.OrderID.IsZero() {
			return nil, malformed("an order consent needs the order_id it answers")
		}
		if len(req.Lines) > 0 {
			return nil, malformed("with an order consent the basket comes from the order: send no lines")
		}
	} else if !req.OrderID.IsZero() {
		return nil, malformed("order_id goes with an order consent (ATC1:), not a payment code")
	}
	return p, nil
}

func (c *Cabin) saleAnswer(ctx context.Context, req SaleRequest, s *preparedSale, res result) (Decision, error) {
	switch {
	case res.decline != 0:
		d := c.declined(req, res.decline)
		d.Decline.Amount, d.Remaining = res.declineAmount, res.remaining
		if res.declineAmount.Currency != "" {
			d.Decline.Message = declineMessage(res.decline, res.declineAmount)
		}
		return d, nil
	case !res.retryOf.IsZero():
		return c.committedAnswer(ctx, res.retryOf)
	}
	if s.order != nil {
		c.orders.remove(s.order.order.ID)
	}
	inv := &res.invoice.Body
	// Every approval is in the journal and counted in the metrics; a JSON
	// log line each took 3 to 4% of the cabin server's CPU per sale in the
	// bench's profile (and as much again in whatever reads the log), so it
	// is for debugging only.
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("sale approved", "invoice", inv.ID, "seq", inv.Seq, "total", inv.Total.String(), "crew", req.Crew)
	}
	c.observeSale(0)
	return Decision{
		Approved:  true,
		Sale:      saleOf(res.invoice, StatusPending, protocol.ID{}),
		Remaining: c.remaining(inv.Passenger, s.cred.Body.Limit),
	}, nil
}

func (c *Cabin) declined(req SaleRequest, r protocol.Reason) Decision {
	c.log.Info("sale declined", "invoice", req.InvoiceID, "reason", int(r), "name", ReasonName(r), "crew", req.Crew)
	c.stats.declined.Add(1) // every decline, the handler's and the writer's, once; the journal counts them too
	c.observeSale(r)
	return Decision{Decline: NewDecline(r)}
}

// declinedEarly is a decline by a rule checked before the writer: the
// journal counts it with the next group commit (the writer counts its own).
func (c *Cabin) declinedEarly(req SaleRequest, r protocol.Reason) Decision {
	c.journalDecline()
	return c.declined(req, r)
}

// answerRetry answers a request whose invoice id is already committed: with
// the original approval when the request is the same, with a conflict when
// it is not. ok is false when the id is new.
func (c *Cabin) answerRetry(ctx context.Context, id protocol.ID, fp protocol.Hash) (Decision, bool, error) {
	c.stateMu.RLock()
	ref, ok := c.state.invoices[id]
	c.stateMu.RUnlock()
	if !ok {
		return Decision{}, false, nil
	}
	if ref.fingerprint != fp {
		return Decision{}, true, idConflict(id)
	}
	d, err := c.committedAnswer(ctx, id)
	return d, true, err
}

// committedAnswer is the approval of a committed invoice, read back from the
// journal.
func (c *Cabin) committedAnswer(ctx context.Context, id protocol.ID) (Decision, error) {
	sale, inv, err := c.readSale(ctx, id)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Approved: true, Sale: sale}
	if limit, ok := c.creditLimit(inv); ok {
		d.Remaining = c.remaining(inv.Body.Passenger, limit)
	}
	return d, nil
}

// creditLimit finds the limit of the credential a sale paid with: in the
// manifest, or embedded in the sale's code for a late registrant.
func (c *Cabin) creditLimit(inv *protocol.SignedInvoice) (protocol.Money, bool) {
	if m := c.manifest.Load(); m != nil {
		if cred, ok := m.Credential(inv.Body.Credential); ok {
			return cred.Body.Limit, true
		}
	}
	var embedded []byte
	if pc, err := protocol.ParsePaymentCode(inv.Body.Code); err == nil {
		embedded = pc.Body.Credential
	} else if oc, err := protocol.ParseOrderConsent(inv.Body.Consent); err == nil {
		embedded = oc.Body.Credential
	}
	if cred, err := protocol.ParseCredential(embedded); err == nil {
		return cred.Body.Limit, true
	}
	return protocol.Money{}, false
}

// remaining is limit less the passenger's spend, never negative.
func (c *Cabin) remaining(passenger protocol.ID, limit protocol.Money) protocol.Money {
	c.stateMu.RLock()
	spent := c.state.spent(passenger)
	c.stateMu.RUnlock()
	return protocol.M(max(limit.Minor-spent, 0), limit.Currency)
}

func (c *Cabin) isClosed() bool {
	c.stateMu.RLock()
	defer c.stateMu.RUnlock()
	return c.state.close != nil
}

// CreateOrder prices a basket from the catalog as an order for two-way mode
// and returns its QR text for the handheld to show. The order stays open for
// OrderTTL.
func (c *Cabin) CreateOrder(ctx context.Context, req OrderRequest) (OrderQR, error) {
	now := c.cfg.Clock()
	m := c.manifest.Load()
	if r := sellable(m, c.isClosed(), now); r != 0 {
		code := CodeUnavailable
		if r == protocol.ReasonFlightClosed {
			code = CodeConflict
		}
		return OrderQR{}, ReasonErrorf(code, r, "%s", r)
	}
	lines, total, r, err := priceLines(m, req.Lines)
	if err != nil {
		return OrderQR{}, err
	}
	if r != 0 {
		return OrderQR{}, ReasonErrorf(CodeInvalid, r, "the basket's total is out of range")
	}
	o := protocol.Order{Version: protocol.Version, ID: protocol.NewID(c.cfg.Rand), Flight: c.id.Flight,
		Lines: lines, Total: total, CreatedAt: now}
	issued, err := c.orders.add(o, now)
	if err != nil {
		return OrderQR{}, err
	}
	return OrderQR{OrderID: o.ID, Text: protocol.QRText(protocol.PrefixOrder, issued.raw), Lines: issued.order.Lines,
		Total: total, ExpiresAt: issued.expires}, nil
}

// Void reverses a sale before flight close with a void invoice (never a
// deletion), which releases the passenger's spend and the aircraft's
// exposure. A sale is voided at most once; a retry with the same invoice id
// returns the original void.
func (c *Cabin) Void(ctx context.Context, req VoidRequest) (*Sale, error) {
	if req.InvoiceID.IsZero() || req.SaleID.IsZero() {
		return nil, malformed("a void needs its own invoice_id and the sale_id it voids")
	}
	res, err := c.submit(ctx, &job{void: &req})
	if err != nil {
		return nil, err
	}
	if !res.retryOf.IsZero() {
		s, _, err := c.readSale(ctx, res.retryOf)
		return s, err
	}
	inv := &res.invoice.Body
	c.log.Info("sale voided", "invoice", inv.ID, "seq", inv.Seq, "voids", inv.Voids, "crew", req.Crew)
	return saleOf(res.invoice, StatusPending, protocol.ID{}), nil
}

// Sale returns an invoice of this flight by id.
func (c *Cabin) Sale(ctx context.Context, id protocol.ID) (*Sale, error) {
	s, _, err := c.readSale(ctx, id)
	return s, err
}

func (c *Cabin) readSale(ctx context.Context, id protocol.ID) (*Sale, *protocol.SignedInvoice, error) {
	rec, err := c.cfg.Journal.Invoice(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, Errorf(CodeNotFound, "no invoice %s on this flight", id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read invoice %s: %w", id, err)
	}
	inv, err := protocol.ParseInvoice(rec.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("read invoice %s: %w", id, err)
	}
	c.stateMu.RLock()
	voidedBy := c.state.voidedBy[id]
	c.stateMu.RUnlock()
	return saleOf(inv, rec.Status, voidedBy), inv, nil
}

func saleOf(s *protocol.SignedInvoice, status InvoiceStatus, voidedBy protocol.ID) *Sale {
	inv := &s.Body
	return &Sale{
		InvoiceID: inv.ID, Seq: inv.Seq, Kind: inv.Kind.String(),
		Passenger: inv.Passenger, Credential: inv.Credential,
		Lines: inv.Lines, Total: inv.Total, CreatedAt: inv.CreatedAt, Crew: inv.Crew,
		Voids: inv.Voids, VoidedBy: voidedBy, Hash: s.Hash(), Status: status,
	}
}

// Limit returns the passenger's remaining limit for a scanned code. The
// code is checked like a sale's (signatures, validity, deny list,
// freshness) but not used up: the same code can still pay.
func (c *Cabin) Limit(ctx context.Context, req LimitRequest) (LimitAnswer, error) {
	p, err := parseCode(req.Code)
	if err != nil {
		return LimitAnswer{}, err
	}
	now := c.cfg.Clock()
	m := c.manifest.Load()
	if m == nil {
		return LimitAnswer{Decline: NewDecline(protocol.ReasonNoManifest)}, nil
	}
	cred, r := checkPresented(m, p, now)
	if r != 0 {
		return LimitAnswer{Decline: NewDecline(r)}, nil
	}
	b := &cred.Body
	c.stateMu.RLock()
	spent := c.state.spent(b.Passenger)
	c.stateMu.RUnlock()
	return LimitAnswer{
		Valid: true, Passenger: b.Passenger, Credential: b.ID,
		Limit: b.Limit, Spent: protocol.M(spent, b.Limit.Currency),
		Remaining: protocol.M(max(b.Limit.Minor-spent, 0), b.Limit.Currency),
		TxCap:     b.TxCap,
	}, nil
}

// CloseFlight closes the flight to sales and voids and returns the signed
// flight-close report, journaled with the invoices before it. Closing a
// closed flight returns the same report.
func (c *Cabin) CloseFlight(ctx context.Context, crew string) (*CloseReport, error) {
	res, err := c.submit(ctx, &job{close: crew})
	if err != nil {
		return nil, err
	}
	return closeReportOf(res.close), nil
}

func closeReportOf(s *protocol.SignedFlightClose) *CloseReport {
	f := &s.Body
	return &CloseReport{
		Flight: f.Flight, Aircraft: f.Aircraft, ClosedAt: f.ClosedAt,
		Sales: f.Sales, Voids: f.Voids, SalesTotal: f.SalesTotal, VoidsTotal: f.VoidsTotal,
		LastSeq: f.LastSeq, Head: f.Head, Raw: s.Raw,
	}
}

// Status reports the manifest, the journal's counts, the link state and
// whether sales are open.
func (c *Cabin) Status(ctx context.Context) (Status, error) {
	counts, err := c.cfg.Journal.InvoiceCounts(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	now := c.cfg.Clock()
	m := c.manifest.Load()
	c.stateMu.RLock()
	st := Status{Flight: c.id.Flight, Aircraft: c.id.Aircraft, Invoices: counts,
		LastSeq: c.state.lastSeq, Head: c.state.head, Closed: c.state.close != nil}
	if c.state.close != nil {
		st.ClosedAt = c.state.close.Body.ClosedAt
	}
	if c.broken != nil {
		st.JournalError = c.broken.Error()
	}
	c.stateMu.RUnlock()
	if m != nil {
		st.Manifest = m.Status(now)
	}
	if r := sellable(m, st.Closed, now); r != 0 {
		st.SalesOff = NewDecline(r)
	} else {
		st.SalesOpen = st.JournalError == ""
	}
	st.Link = c.link.Load().(LinkState)
	if f, ok := c.replay.Load().(func() ReplayProgress); ok {
		p := f()
		st.Replay = &p
	}
	st.Stats = c.Stats()
	return st, nil
}
