package clearing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// Verification that needs no database: it trusts nothing the aircraft says.
// The aircraft's signature is checked with the key ground registered for
// the aircraft named by the NATS subject it published on; the passenger's
// signature with the device key in an issuer-signed credential; the
// credential with ground's issuer trust list at the time of the code. What
// needs the database (the counter, the cumulative limit, duplicates) is
// checked in process.go inside the ledger transaction.

// verdict is what verification decided about a message.
type verdict int

const (
	// accept: authenticated and every check passed.
	accept verdict = iota
	// quarantine: authenticated by its aircraft, but a check failed: kept
	// as an invoice record with its reason, never charged.
	quarantine
	// dispute: authenticated by its aircraft and by the passenger's device
	// signature, but a rule the cabin server enforces failed: kept as a
	// disputed invoice record with its reason and amount, not charged.
	dispute
	// reject: not authenticated (malformed, wrong aircraft, bad aircraft
	// signature) or conflicting with a stored invoice: kept in the rejects.
	reject
	// retry: a failure that is not the message's fault (a lookup failed):
	// redeliver later.
	retry
)

// maxDetail bounds the detail text stored with a quarantine.
const maxDetail = 300

// saleFacts is what a verified sale tells the stateful checks and charging.
type saleFacts struct {
	credential protocol.ID // the namespace of the code's counter (SPEC §6)
	counter    uint64
	limit      protocol.Money
	funding    ground.FundingSource
	hasFunding bool // false: the passenger has no funding source on file
}

// fail records a verdict other than accept with its reason.
func (it *item) fail(v verdict, r protocol.Reason, format string, args ...any) {
	it.verdict, it.reason = v, r
	it.detail = fmt.Sprintf(format, args...)
	if len(it.detail) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8.RuneStart(it.detail[cut]) { // never split a character
			cut--
		}
		it.detail = it.detail[:cut] + "…"
	}
}

// infra records a failure that is not the message's fault.
func (it *item) infra(err error) {
	it.verdict, it.err = retry, err
}

// verifyAll verifies items with VerifyWorkers goroutines: their signatures
// in batches first (batchverify.go), then the checks one item at a time.
func (s *Service) verifyAll(ctx context.Context, lk *lookups, items []*item) {
	s.batchSignatures(ctx, lk, items)
	work := make(chan *item)
	var wg sync.WaitGroup
	for range min(s.cfg.VerifyWorkers, len(items)) {
		wg.Go(func() {
			for it := range work {
				s.verify(ctx, lk, it)
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
}

// verify decides the verdict of one message.
func (s *Service) verify(ctx context.Context, lk *lookups, it *item) {
	kind, a, f, err := protocol.ParseSubject(it.subject)
	if err == nil {
		it.subjAircraft, it.subjFlight, it.subjOK = a, f, true
	}
	switch kind {
	case "close":
		s.verifyClose(ctx, lk, it)
	default:
		s.verifyInvoice(ctx, lk, it)
	}
}

func (s *Service) verifyInvoice(ctx context.Context, lk *lookups, it *item) {
	it.kind = "invoice"
	inv := it.inv // parsed by batchSignatures, when it parses
	if inv == nil {
		var err error
		if inv, err = protocol.ParseInvoice(it.raw); err != nil {
			it.fail(reject, protocol.ReasonMalformed, "%v", err)
			return
		}
		it.inv = inv
	}
	b := inv.Body
	verify := func(k crypto.PublicKey) error {
		if it.pre.aircraft.verified(k, nil) {
			return nil
		}
		return inv.Verify(k, nil)
	}
	if !s.authenticate(ctx, lk, it, b.Aircraft, b.Flight, b.CreatedAt, verify) {
		return
	}
	if !s.checkFlight(ctx, lk, it, b.Flight, b.Aircraft, b.Total.Currency) {
		return
	}
	if b.Kind == protocol.KindSale {
		s.verifySale(ctx, lk, it)
	}
}

// authenticate checks that the message came in on its own aircraft's
// subject and carries that aircraft's signature. It reports whether it did;
// if not, it recorded the verdict.
func (s *Service) authenticate(ctx context.Context, lk *lookups, it *item, a protocol.AircraftID, f protocol.FlightID, signedAt time.Time, verify func(crypto.PublicKey) error) bool {
	switch {
	case !it.subjOK:
		it.fail(reject, protocol.ReasonWrongAircraft, "subject %q names no aircraft and flight", it.subject)
		return false
	case it.subjAircraft != a:
		it.fail(reject, protocol.ReasonWrongAircraft, "signed for aircraft %s, published by %s", a, it.subjAircraft)
		return false
	case it.subjFlight != f:
		it.fail(reject, protocol.ReasonWrongFlight, "for flight %s, published on %s", f, it.subjFlight)
		return false
	}
	key, err := lk.aircraftKey(ctx, a)
	if errors.Is(err, ground.ErrNotFound) {
		it.fail(reject, protocol.ReasonWrongAircraft, "aircraft %s is not registered", a)
		return false
	}
	if err != nil {
		it.infra(err)
		return false
	}
	if err := verify(key); err != nil {
		ok, rerr := s.verifyRetired(ctx, a, f, signedAt, verify)
		if rerr != nil {
			it.infra(rerr)
			return false
		}
		if !ok {
			it.fail(reject, protocol.ReasonBadAircraftSignature, "%v", err)
			return false
		}
	}
	return true
}

// checkFlight checks that flight f is registered to aircraft a and sells in
// currency c. It reports whether it is; if not, it recorded the verdict.
func (s *Service) checkFlight(ctx context.Context, lk *lookups, it *item, f protocol.FlightID, a protocol.AircraftID, c protocol.Currency) bool {
	fi, err := lk.flight(ctx, f)
	switch {
	case errors.Is(err, ground.ErrNotFound):
		it.fail(quarantine, protocol.ReasonUnknownFlight, "flight %s is not registered", f)
	case err != nil:
		it.infra(err)
	case fi.Aircraft != a:
		it.fail(quarantine, protocol.ReasonWrongAircraft, "flight %s is operated by %s, not %s", f, fi.Aircraft, a)
	case c != "" && c != fi.Currency:
		it.fail(quarantine, protocol.ReasonCurrencyMismatch, "invoice in %s, flight sells in %s", c, fi.Currency)
	default:
		return true
	}
	return false
}

// proof is the passenger's signed authorization of a sale: a payment code
// or an order consent.
type proof struct {
	keyID    crypto.KeyID
	counter  uint64
	at       time.Time // when the phone made it
	embedded []byte    // full form: the credential's raw bytes
	verify   func(pub crypto.PublicKey, external []byte) error
	add      func(b *crypto.Batch, pub crypto.PublicKey, external []byte) (int, error) // verify, queued in a batch
	consent  *protocol.SignedOrderConsent
}

// saleProof takes the sale's payment code or order consent as
// protocol.ParseInvoice parsed it (protocol.SaleProof), not parsing it again.
func saleProof(inv *protocol.SignedInvoice) (proof, error) {
	pc, oc, err := protocol.SaleProof(inv)
	if err != nil {
		return proof{}, err
	}
	if pc != nil {
		return proof{keyID: pc.KeyID, counter: pc.Body.Counter, at: pc.Body.Time, embedded: pc.Body.Credential,
			verify: pc.Verify, add: pc.AddToBatch}, nil
	}
	return proof{keyID: oc.KeyID, counter: oc.Body.Counter, at: oc.Body.Time, embedded: oc.Body.Credential,
		verify: oc.Verify, add: oc.AddToBatch, consent: oc}, nil
}

// verifySale checks the passenger's side of a sale: credential, its issuer
// signature, flight and passenger, the device signature (failures so far
// quarantine), then the credential's window at the code's time, the
// consent, the currency and the per-sale cap (a window, currency or cap
// failure after both signatures verified disputes the sale).
func (s *Service) verifySale(ctx context.Context, lk *lookups, it *item) {
	inv := it.inv.Body
	var p proof
	if it.proof != nil { // parsed by batchSignatures
		p = *it.proof
	} else {
		var err error
		if p, err = saleProof(it.inv); err != nil {
			it.fail(quarantine, protocol.ReasonMalformed, "%v", err)
			return
		}
	}
	cred, ok := s.credential(ctx, lk, it, inv, p)
	if !ok {
		return
	}
	c := cred.Body
	switch {
	case c.Flight != inv.Flight:
		it.fail(quarantine, protocol.ReasonWrongFlight, "credential %s is for flight %s", c.ID, c.Flight)
		return
	case c.Passenger != inv.Passenger:
		it.fail(quarantine, protocol.ReasonUnknownCredential, "credential %s belongs to another passenger", c.ID)
		return
	}
	if !it.pre.device.verified(c.Device.PublicKey, c.ID[:]) {
		if err := p.verify(c.Device.PublicKey, c.ID[:]); err != nil {
			it.fail(quarantine, protocol.ReasonBadDeviceSignature, "%v", err)
			return
		}
	}
	// The cabin server checks the window at its own clock, ground at the
	// code's time: a code made just before the window opened and scanned
	// after, both signatures good, is a real authorization: disputed.
	switch {
	case p.at.Before(c.NotBefore):
		it.fail(dispute, protocol.ReasonCredentialNotYet, "code made %s, credential valid from %s", p.at.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339))
		return
	case !c.ValidAt(p.at):
		it.fail(dispute, protocol.ReasonCredentialExpired, "code made %s, credential expired %s", p.at.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		return
	}
	if p.consent != nil {
		if msg := consentMismatch(inv, p.consent.Body); msg != "" {
			it.fail(quarantine, protocol.ReasonConsentMismatch, "%s", msg)
			return
		}
	}
	// From here on both signatures verify: what fails is a rule the cabin
	// server enforces, so the sale is disputed, not quarantined.
	switch {
	case inv.Total.Currency != c.TxCap.Currency:
		it.fail(dispute, protocol.ReasonCurrencyMismatch, "invoice in %s, credential limits in %s", inv.Total.Currency, c.TxCap.Currency)
		return
	case inv.Total.Minor > c.TxCap.Minor:
		it.fail(dispute, protocol.ReasonOverTransactionCap, "total %s above the per-sale cap %s", inv.Total, c.TxCap)
		return
	}
	facts := &saleFacts{credential: c.ID, counter: p.counter, limit: c.Limit}
	fs, err := lk.funding(ctx, inv.Passenger)
	switch {
	case errors.Is(err, ground.ErrNotFound):
	case err != nil:
		it.infra(err)
		return
	default:
		facts.funding, facts.hasFunding = fs, true
	}
	it.sale = facts
}

// credential finds and verifies the credential a sale names: the one
// embedded in a full-form code (which must match what ground issued, if
// ground has it), or the one ground issued. It reports whether it found a
// good one; if not, it recorded the verdict.
func (s *Service) credential(ctx context.Context, lk *lookups, it *item, inv protocol.Invoice, p proof) (*protocol.SignedCredential, bool) {
	issued, err := lk.credential(ctx, inv.Credential)
	if err != nil && !errors.Is(err, ground.ErrNotFound) {
		it.infra(err)
		return nil, false
	}
	cred := issued
	if len(p.embedded) > 0 {
		emb, err := protocol.ParseCredential(p.embedded)
		if err != nil {
			it.fail(quarantine, protocol.ReasonMalformed, "embedded credential: %v", err)
			return nil, false
		}
		if emb.Body.ID != inv.Credential {
			it.fail(quarantine, protocol.ReasonUnknownCredential, "code carries credential %s, invoice names %s", emb.Body.ID, inv.Credential)
			return nil, false
		}
		switch {
		case issued == nil:
			cred = emb
		case slices.Equal(issued.Raw, emb.Raw), issued.Body.RaisedFrom(emb.Body):
			// The one issued, or an earlier issue of it before a top-up
			// raised its limit (the wallet keeps the first): the one ground
			// holds now is the credential.
		default:
			it.fail(quarantine, protocol.ReasonUnknownCredential, "embedded credential %s differs from the one issued", emb.Body.ID)
			return nil, false
		}
	}
	if cred == nil {
		it.fail(quarantine, protocol.ReasonUnknownCredential, "credential %s was not issued by ground", inv.Credential)
		return nil, false
	}
	trust, err := lk.issuerTrust(ctx)
	if err != nil {
		it.infra(err)
		return nil, false
	}
	if err := s.verifyCredential(it, cred, trust, p.at); err != nil {
		it.fail(quarantine, protocol.ReasonBadIssuerSignature, "%v", err)
		return nil, false
	}
	return cred, true
}

// consentMismatch returns what differs between an order consent, the order
// the invoice carries and the invoice itself, or "".
func consentMismatch(inv protocol.Invoice, oc protocol.OrderConsent) string {
	o, err := protocol.DecodeOrder(inv.Order)
	switch {
	case err != nil:
		return err.Error()
	case oc.OrderHash != protocol.Sum(inv.Order):
		return "consent signs another order's hash"
	case oc.Order != o.ID:
		return fmt.Sprintf("consent names order %s, invoice carries %s", oc.Order, o.ID)
	case oc.Total != o.Total || o.Total != inv.Total:
		return fmt.Sprintf("consent total %s, order total %s, invoice total %s", oc.Total, o.Total, inv.Total)
	case o.Flight != inv.Flight:
		return fmt.Sprintf("order for flight %s", o.Flight)
	case !slices.Equal(o.Lines, inv.Lines):
		return "invoice lines differ from the order's"
	}
	return ""
}

// verifyCredential checks c's issuer signature against trust at time at. A
// credential once verified with a key is remembered (by hash), so later
// sales of the same passenger only check that the key is still trusted at
// their time. A credential whose signature the batch found good
// (batchverify.go) with a key trusted at time at is not checked again.
func (s *Service) verifyCredential(it *item, c *protocol.SignedCredential, trust *crypto.TrustList, at time.Time) error {
	h := c.Hash()
	if pub, ok := s.creds.get(h); ok {
		if slices.ContainsFunc(trust.Lookup(c.KeyID, crypto.Issuer, at), pub.Equal) {
			return nil
		}
	}
	if pre := it.pre.issuer; it.pre.issuerOf == h && pre.ok {
		if slices.ContainsFunc(trust.Lookup(c.KeyID, crypto.Issuer, at), pre.key.Equal) {
			s.creds.put(h, pre.key)
			return nil
		}
	}
	pub, err := c.VerifyTrusted(trust, at, nil)
	if err != nil {
		return err
	}
	s.creds.put(h, pub)
	return nil
}

func (s *Service) verifyClose(ctx context.Context, lk *lookups, it *item) {
	it.kind = "close"
	fc, err := protocol.ParseFlightClose(it.raw)
	if err != nil {
		it.fail(reject, protocol.ReasonMalformed, "%v", err)
		return
	}
	it.close = fc
	b := fc.Body
	if !s.authenticate(ctx, lk, it, b.Aircraft, b.Flight, b.ClosedAt, func(k crypto.PublicKey) error { return fc.Verify(k, nil) }) {
		return
	}
	if !s.checkFlight(ctx, lk, it, b.Flight, b.Aircraft, "") {
		if it.verdict == quarantine { // a close has no invoice record to quarantine
			it.verdict = reject
		}
	}
}

// lookups memoises Directory answers for one batch, so a batch of a
// thousand invoices from one flight asks for the aircraft key once. It is
// safe for concurrent use. Answers are not kept across batches: keys and
// credentials can be revoked.
type lookups struct {
	dir ground.Directory

	mu       sync.Mutex
	trust    *lookup[*crypto.TrustList]
	aircraft map[protocol.AircraftID]lookup[crypto.PublicKey]
	flights  map[protocol.FlightID]lookup[ground.FlightInfo]
	creds    map[protocol.ID]lookup[*protocol.SignedCredential]
	funds    map[protocol.ID]lookup[ground.FundingSource]
}

type lookup[T any] struct {
	v   T
	err error
}

func newLookups(dir ground.Directory) *lookups {
	return &lookups{
		dir:      dir,
		aircraft: map[protocol.AircraftID]lookup[crypto.PublicKey]{},
		flights:  map[protocol.FlightID]lookup[ground.FlightInfo]{},
		creds:    map[protocol.ID]lookup[*protocol.SignedCredential]{},
		funds:    map[protocol.ID]lookup[ground.FundingSource]{},
	}
}

// memo returns m[k], calling f to fill it on a miss. Two goroutines missing
// the same key both call f; both answers are equally good.
func memo[K comparable, V any](mu *sync.Mutex, m map[K]lookup[V], k K, f func() (V, error)) (V, error) {
	mu.Lock()
	r, ok := m[k]
	mu.Unlock()
	if ok {
		return r.v, r.err
	}
	v, err := f()
	mu.Lock()
	m[k] = lookup[V]{v, err}
	mu.Unlock()
	return v, err
}

// prefetch asks the directory, in one burst, for what the checks of the
// parsed messages of items will ask: the aircraft keys and flights they
// name, the issuer trust list, and, when the directory answers many lookups
// at once (ground.BatchDirectory), the credentials and funding sources of
// their sales. The answers are memoised: an id absent from a batch answer
// is not found. When a batch call fails, nothing is memoised for it and
// each id is asked alone as it is needed, which records the failure per
// item. One burst matters on a database with one connection (SQLite): each
// lookup there waits for the batch transaction in progress, and lookups
// spread over the checks would wait for several.
func (l *lookups) prefetch(ctx context.Context, items []*item) {
	var creds, pax []protocol.ID
	aircraft := map[protocol.AircraftID]bool{}
	flights := map[protocol.FlightID]bool{}
	for _, it := range items {
		if it.inv == nil {
			continue
		}
		b := it.inv.Body
		aircraft[b.Aircraft], flights[b.Flight] = true, true
		if b.Kind == protocol.KindSale {
			creds = append(creds, b.Credential)
			pax = append(pax, b.Passenger)
		}
	}
	// The answers, errors included, are memoised for the checks to read.
	if len(aircraft) > 0 {
		_, _ = l.issuerTrust(ctx)
	}
	for a := range aircraft {
		_, _ = l.aircraftKey(ctx, a)
	}
	for f := range flights {
		_, _ = l.flight(ctx, f)
	}
	bd, ok := l.dir.(ground.BatchDirectory)
	if !ok || len(creds) == 0 {
		return
	}
	if got, err := bd.Credentials(ctx, creds); err == nil {
		l.mu.Lock()
		for _, id := range creds {
			if c, ok := got[id]; ok {
				l.creds[id] = lookup[*protocol.SignedCredential]{v: c}
			} else {
				l.creds[id] = lookup[*protocol.SignedCredential]{err: fmt.Errorf("credential %s: %w", id, ground.ErrNotFound)}
			}
		}
		l.mu.Unlock()
	}
	if got, err := bd.Fundings(ctx, pax); err == nil {
		l.mu.Lock()
		for _, id := range pax {
			if fs, ok := got[id]; ok {
				l.funds[id] = lookup[ground.FundingSource]{v: fs}
			} else {
				l.funds[id] = lookup[ground.FundingSource]{err: fmt.Errorf("funding of %s: %w", id, ground.ErrNotFound)}
			}
		}
		l.mu.Unlock()
	}
}

func (l *lookups) aircraftKey(ctx context.Context, a protocol.AircraftID) (crypto.PublicKey, error) {
	return memo(&l.mu, l.aircraft, a, func() (crypto.PublicKey, error) {
		k, err := l.dir.AircraftKey(ctx, a)
		if err == nil && k.Purpose() != crypto.Aircraft {
			err = fmt.Errorf("directory returned a %s key for aircraft %s", k.Purpose(), a)
		}
		return k, err
	})
}

func (l *lookups) flight(ctx context.Context, f protocol.FlightID) (ground.FlightInfo, error) {
	return memo(&l.mu, l.flights, f, func() (ground.FlightInfo, error) { return l.dir.Flight(ctx, f) })
}

func (l *lookups) credential(ctx context.Context, id protocol.ID) (*protocol.SignedCredential, error) {
	return memo(&l.mu, l.creds, id, func() (*protocol.SignedCredential, error) { return l.dir.Credential(ctx, id) })
}

func (l *lookups) funding(ctx context.Context, pax protocol.ID) (ground.FundingSource, error) {
	return memo(&l.mu, l.funds, pax, func() (ground.FundingSource, error) { return l.dir.Funding(ctx, pax) })
}

func (l *lookups) issuerTrust(ctx context.Context) (*crypto.TrustList, error) {
	l.mu.Lock()
	defer l.mu.Unlock() // held across the call: one fetch per batch
	if l.trust == nil {
		t, err := l.dir.IssuerTrust(ctx)
		l.trust = &lookup[*crypto.TrustList]{t, err}
	}
	return l.trust.v, l.trust.err
}

// boundedSet is a set of at most max keys that forgets everything when
// full: a cache, never a source of truth.
type boundedSet[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]V
}

func (b *boundedSet[K, V]) get(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

func (b *boundedSet[K, V]) put(k K, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= b.max {
		clear(b.m)
	}
	b.m[k] = v
}

// credCache remembers which issuer key verified a credential, by the
// credential's hash.
type credCache = boundedSet[protocol.Hash, crypto.PublicKey]

func newCredCache() *credCache {
	return &credCache{max: 1 << 16, m: map[protocol.Hash]crypto.PublicKey{}}
}
