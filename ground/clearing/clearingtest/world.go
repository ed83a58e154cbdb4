package clearingtest

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// World is an issuer with its trust list and a Directory, and the aircraft,
// flights and passengers made in it. Everything is signed for real.
type World struct {
	Issuer crypto.PrivateKey
	Trust  *crypto.TrustList
	Dir    *Directory
	// Now is the time written into payment codes and invoices.
	Now time.Time

	dir string
	mu  sync.Mutex
	n   int
}

// NewWorld makes a world whose wallets live under dir, at time now.
func NewWorld(dir string, now time.Time) (*World, error) {
	issuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		return nil, err
	}
	trust, err := crypto.NewTrustList(crypto.TrustedKey{Key: issuer.Public(), NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0)})
	if err != nil {
		return nil, err
	}
	return &World{Issuer: issuer, Trust: trust, Dir: NewDirectory(trust), Now: now.Truncate(time.Second), dir: dir}, nil
}

// Aircraft is a registered aircraft and its signing key.
type Aircraft struct {
	ID  protocol.AircraftID
	Key crypto.PrivateKey
}

// NewAircraft makes and registers an aircraft.
func (w *World) NewAircraft(id protocol.AircraftID) (*Aircraft, error) {
	key, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		return nil, err
	}
	w.Dir.AddAircraft(id, key.Public())
	return &Aircraft{ID: id, Key: key}, nil
}

// Flight is a registered flight: it numbers and chains the invoices it
// signs, and counts them for its close report.
type Flight struct {
	World    *World
	Aircraft *Aircraft
	ID       protocol.FlightID
	Currency protocol.Currency

	mu         sync.Mutex
	seq        uint64
	prev       protocol.Hash
	sales      uint64
	voids      uint64
	salesTotal map[protocol.Currency]int64
	voidsTotal map[protocol.Currency]int64
}

// NewFlight registers flight f of aircraft a, selling in currency c.
func (w *World) NewFlight(a *Aircraft, f protocol.FlightID, c protocol.Currency) *Flight {
	w.Dir.AddFlight(ground.FlightInfo{Flight: f, Aircraft: a.ID, Currency: c})
	return &Flight{World: w, Aircraft: a, ID: f, Currency: c, salesTotal: map[protocol.Currency]int64{}, voidsTotal: map[protocol.Currency]int64{}}
}

// Subject is where the flight's aircraft publishes its invoices.
func (fl *Flight) Subject() string { return protocol.InvoiceSubject(fl.Aircraft.ID, fl.ID) }

// CloseSubject is where the flight's aircraft publishes its close report.
func (fl *Flight) CloseSubject() string { return protocol.CloseSubject(fl.Aircraft.ID, fl.ID) }

// Passenger is a registered passenger with a real wallet and an
// issuer-signed credential for one flight.
type Passenger struct {
	ID         protocol.ID
	Wallet     *protocol.Wallet
	Credential *protocol.SignedCredential
	// Dir is the wallet's directory: a copy of it is a cloned phone that
	// hands out the same counters.
	Dir string
}

// NewPassenger registers a passenger on flight fl with funding fs and the
// given limit and per-sale cap: a wallet (device key) in its own directory,
// a credential valid around World.Now, issued and added to the Directory.
func (w *World) NewPassenger(fl *Flight, fs ground.FundingSource, limit, txCap protocol.Money) (*Passenger, error) {
	w.mu.Lock()
	w.n++
	dir := filepath.Join(w.dir, fmt.Sprintf("wallet-%d", w.n))
	w.mu.Unlock()
	wallet, err := protocol.OpenWallet(dir, protocol.WalletOptions{Clock: func() time.Time { return w.Now }})
	if err != nil {
		return nil, err
	}
	p := &Passenger{ID: protocol.NewID(nil), Wallet: wallet, Dir: dir}
	cred, err := w.Issue(protocol.Credential{
		Version: protocol.Version, ID: protocol.NewID(nil), Passenger: p.ID, Device: protocol.DeviceKey{PublicKey: wallet.DeviceKey()},
		Flight: fl.ID, Limit: limit, TxCap: txCap, NotBefore: w.Now.Add(-time.Hour), NotAfter: w.Now.Add(24 * time.Hour),
	})
	if err != nil {
		return nil, err
	}
	if _, err := wallet.AddCredential(cred.Raw, w.Trust); err != nil {
		return nil, err
	}
	p.Credential = cred
	w.Dir.AddCredential(cred)
	w.Dir.SetFunding(p.ID, fs)
	return p, nil
}

// Issue signs a credential with the world's issuer key (not recorded in
// the Directory).
func (w *World) Issue(c protocol.Credential) (*protocol.SignedCredential, error) {
	return protocol.Sign(c, w.Issuer, nil)
}

// PaymentCode returns the raw bytes of a fresh payment code of p for the
// flight (full embeds the credential).
func (p *Passenger) PaymentCode(f protocol.FlightID, full bool) ([]byte, error) {
	text, err := p.Wallet.PaymentCode(f, full)
	if err != nil {
		return nil, err
	}
	return protocol.FromQRText(protocol.PrefixPaymentCode, text)
}

// Mod changes an invoice body before it is signed.
type Mod func(*protocol.Invoice)

// Sale makes the next invoice of the flight: a sale of total to p with a
// fresh payment code, numbered and chained, mods applied, signed with the
// aircraft key.
func (fl *Flight) Sale(p *Passenger, total protocol.Money, mods ...Mod) (*protocol.SignedInvoice, error) {
	code, err := p.PaymentCode(fl.ID, false)
	if err != nil {
		return nil, err
	}
	inv := fl.body(p, total)
	inv.Kind, inv.Code = protocol.KindSale, code
	return fl.SignNext(inv, fl.Aircraft.Key, mods...)
}

// ConsentSale is Sale in two-way mode: the handheld's order, the
// passenger's signed consent to it.
func (fl *Flight) ConsentSale(p *Passenger, total protocol.Money, mods ...Mod) (*protocol.SignedInvoice, error) {
	inv := fl.body(p, total)
	o := protocol.Order{Version: protocol.Version, ID: protocol.NewID(nil), Flight: fl.ID, Lines: inv.Lines, Total: total, CreatedAt: fl.World.Now}
	text, err := protocol.OrderText(o)
	if err != nil {
		return nil, err
	}
	consentText, _, err := p.Wallet.Consent(text, false)
	if err != nil {
		return nil, err
	}
	consent, err := protocol.FromQRText(protocol.PrefixOrderConsent, consentText)
	if err != nil {
		return nil, err
	}
	order, err := o.Encode()
	if err != nil {
		return nil, err
	}
	inv.Kind, inv.Consent, inv.Order = protocol.KindSale, consent, order
	return fl.SignNext(inv, fl.Aircraft.Key, mods...)
}

// Void makes the next invoice of the flight: a void of sale.
func (fl *Flight) Void(sale *protocol.SignedInvoice, mods ...Mod) (*protocol.SignedInvoice, error) {
	s := sale.Body
	inv := protocol.Invoice{
		Version: protocol.Version, ID: protocol.NewID(nil), Flight: fl.ID, Aircraft: fl.Aircraft.ID, Kind: protocol.KindVoid,
		Credential: s.Credential, Passenger: s.Passenger, Total: s.Total, CreatedAt: fl.World.Now, Voids: s.ID, Crew: "crew-1",
	}
	return fl.SignNext(inv, fl.Aircraft.Key, mods...)
}

func (fl *Flight) body(p *Passenger, total protocol.Money) protocol.Invoice {
	return protocol.Invoice{
		Version: protocol.Version, ID: protocol.NewID(nil), Flight: fl.ID, Aircraft: fl.Aircraft.ID,
		Credential: p.Credential.Body.ID, Passenger: p.ID,
		Lines: []protocol.OrderLine{{SKU: "ITEM", Quantity: 1, UnitPrice: total}},
		Total: total, CreatedAt: fl.World.Now, Crew: "crew-1",
	}
}

// SignNext numbers inv as the flight's next invoice, chains it to the
// previous one, applies mods, signs it with key and counts it for the close
// report.
func (fl *Flight) SignNext(inv protocol.Invoice, key crypto.PrivateKey, mods ...Mod) (*protocol.SignedInvoice, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	inv.Seq, inv.Prev = fl.seq+1, fl.prev
	for _, m := range mods {
		m(&inv)
	}
	s, err := protocol.Sign(inv, key, nil)
	if err != nil {
		return nil, err
	}
	fl.seq, fl.prev = inv.Seq, s.Hash()
	if inv.Kind == protocol.KindVoid {
		fl.voids++
		fl.voidsTotal[inv.Total.Currency] += inv.Total.Minor
	} else {
		fl.sales++
		fl.salesTotal[inv.Total.Currency] += inv.Total.Minor
	}
	return s, nil
}

// Close returns the flight's signed close report over every invoice signed
// so far.
func (fl *Flight) Close() (*protocol.SignedFlightClose, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	money := func(m map[protocol.Currency]int64) []protocol.Money {
		var out []protocol.Money
		for _, c := range slices.Sorted(maps.Keys(m)) {
			out = append(out, protocol.M(m[c], c))
		}
		return out
	}
	return protocol.Sign(protocol.FlightClose{
		Version: protocol.Version, Flight: fl.ID, Aircraft: fl.Aircraft.ID, ClosedAt: fl.World.Now,
		Sales: fl.sales, Voids: fl.voids, SalesTotal: money(fl.salesTotal), VoidsTotal: money(fl.voidsTotal),
		LastSeq: fl.seq, Head: fl.prev,
	}, fl.Aircraft.Key, nil)
}
