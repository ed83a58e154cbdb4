package protocol

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
)

// Wallet is the reference passenger wallet: the library a passenger app
// embeds. It makes and keeps the device key (which never leaves it), stores
// credentials, and makes payment codes and order consents offline.
//
// A wallet lives in a directory:
//
//	device.key          the device private key, mode 0600
//	counter             the payment-code counter's reserved high-water mark
//	credentials/<flight>.cose  one signed credential per flight
//
// Counters never repeat, even across crashes: the wallet reserves a block of
// counters on disk (with fsync) before it hands any of them out, and a
// restart resumes after the reserved block.
type Wallet struct {
	dir   string
	key   crypto.PrivateKey
	clock func() time.Time

	mu       sync.Mutex
	next     uint64 // the next counter to hand out
	reserved uint64 // counters up to this are reserved on disk
	creds    map[FlightID]*SignedCredential
}

// WalletOptions configure OpenWallet. The zero value is the production
// setting.
type WalletOptions struct {
	// Rand is the source for a new device key. Default: crypto/rand.
	// Simulations pass a seeded reader so a run replays.
	Rand io.Reader
	// Clock gives the time written into codes. Default: time.Now.
	Clock func() time.Time
}

// counterBlock is how many counters the wallet reserves per disk write.
const counterBlock = 64

// OpenWallet opens the wallet in dir, creating the directory (mode 0700) and
// a new device key on first use.
func OpenWallet(dir string, opts WalletOptions) (*Wallet, error) {
	if err := os.MkdirAll(filepath.Join(dir, "credentials"), 0o700); err != nil {
		return nil, fmt.Errorf("open wallet: %w", err)
	}
	key, _, err := crypto.LoadOrCreateKeyFile(filepath.Join(dir, "device.key"), crypto.Device, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("open wallet: %w", err)
	}
	w := &Wallet{dir: dir, key: key, clock: opts.Clock, creds: map[FlightID]*SignedCredential{}}
	if w.clock == nil {
		w.clock = time.Now
	}
	if w.reserved, err = w.readCounter(); err != nil {
		return nil, err
	}
	w.next = w.reserved + 1
	if err := w.loadCredentials(); err != nil {
		return nil, err
	}
	return w, nil
}

// DeviceKey returns the device public key, to enroll with the issuer.
func (w *Wallet) DeviceKey() crypto.PublicKey { return w.key.Public() }

// DomainGroundAPI is the signing domain of a passenger's requests to the
// ground registration API.
const DomainGroundAPI crypto.Domain = "airtab/ground-api/v1"

// Public returns the device public key. With Sign it lets the wallet sign
// the passenger's ground API requests.
func (w *Wallet) Public() crypto.PublicKey { return w.key.Public() }

// Sign signs a ground API request with the device key. Only
// DomainGroundAPI is allowed: payment codes and consents are made by
// PaymentCode and Consent, which keep the counter rules. Any other domain
// is a programming error and panics.
func (w *Wallet) Sign(domain crypto.Domain, msg []byte) []byte {
	if domain != DomainGroundAPI {
		panic(fmt.Sprintf("protocol: wallet signs only %s requests, not %s", DomainGroundAPI, domain))
	}
	return w.key.Sign(domain, msg)
}

// AddCredential checks and stores an issuer-signed credential: it must be
// for this wallet's device key and, when trust is not nil, verify against
// it at the current time. A newer credential for the same flight replaces
// the old one.
func (w *Wallet) AddCredential(raw []byte, trust *crypto.TrustList) (*SignedCredential, error) {
	c, err := ParseCredential(raw)
	if err != nil {
		return nil, fmt.Errorf("add credential: %w", err)
	}
	if !c.Body.Device.Equal(w.key.Public()) {
		return nil, fmt.Errorf("add credential %s: issued to device %s, not this wallet's %s", c.Body.ID, c.Body.Device.ID(), w.key.ID())
	}
	if trust != nil {
		if _, err := c.VerifyTrusted(trust, w.clock(), nil); err != nil {
			return nil, fmt.Errorf("add credential %s: %w", c.Body.ID, err)
		}
	}
	path := filepath.Join(w.dir, "credentials", string(c.Body.Flight)+".cose")
	if err := crypto.WriteFileAtomic(path, c.Raw, 0o600); err != nil {
		return nil, fmt.Errorf("add credential %s: %w", c.Body.ID, err)
	}
	w.mu.Lock()
	w.creds[c.Body.Flight] = c
	w.mu.Unlock()
	return c, nil
}

// Credential returns the stored credential for flight f.
func (w *Wallet) Credential(f FlightID) (*SignedCredential, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.creds[f]
	return c, ok
}

// Credentials returns every stored credential, ordered by flight, for an
// app to list what the passenger may pay on.
func (w *Wallet) Credentials() []*SignedCredential {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*SignedCredential, 0, len(w.creds))
	for _, c := range w.creds {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *SignedCredential) int { return strings.Compare(string(a.Body.Flight), string(b.Body.Flight)) })
	return out
}

// ErrNoCredential is returned when the wallet holds no credential for a
// flight.
var ErrNoCredential = errors.New("no credential for this flight")

// PaymentCode makes a fresh payment code for flight f and returns its QR
// text. full embeds the credential, for a passenger who registered after the
// aircraft fetched its manifest.
func (w *Wallet) PaymentCode(f FlightID, full bool) (string, error) {
	c, ok := w.Credential(f)
	if !ok {
		return "", fmt.Errorf("payment code for %s: %w", f, ErrNoCredential)
	}
	n, err := w.nextCounter()
	if err != nil {
		return "", err
	}
	pc := PaymentCode{Counter: n, Time: w.clock().Truncate(time.Second)}
	if full {
		pc.Credential = c.Raw
	}
	s, err := Sign(pc, w.key, c.Body.ID[:])
	if err != nil {
		return "", err
	}
	return QRText(PrefixPaymentCode, s.Raw), nil
}

// Consent reads an order QR shown by a handheld (two-way mode), and signs
// the passenger's consent to exactly that order. It returns the consent's QR
// text and the decoded order, for the app to show what was signed.
func (w *Wallet) Consent(orderText string, full bool) (string, Order, error) {
	o, err := ParseOrderText(orderText)
	if err != nil {
		return "", Order{}, err
	}
	c, ok := w.Credential(o.Flight)
	if !ok {
		return "", Order{}, fmt.Errorf("consent to order for %s: %w", o.Flight, ErrNoCredential)
	}
	h, err := o.Hash()
	if err != nil {
		return "", Order{}, err
	}
	n, err := w.nextCounter()
	if err != nil {
		return "", Order{}, err
	}
	oc := OrderConsent{Order: o.ID, OrderHash: h, Total: o.Total, Counter: n, Time: w.clock().Truncate(time.Second)}
	if full {
		oc.Credential = c.Raw
	}
	s, err := Sign(oc, w.key, c.Body.ID[:])
	if err != nil {
		return "", Order{}, err
	}
	return QRText(PrefixOrderConsent, s.Raw), o, nil
}

// nextCounter hands out the next counter, reserving a new block on disk
// first when the reserved one is used up.
func (w *Wallet) nextCounter() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next > w.reserved {
		hw := w.reserved + counterBlock
		if hw > MaxCounter {
			hw = MaxCounter
		}
		if w.next > hw {
			return 0, fmt.Errorf("wallet: payment-code counter exhausted at %d", uint64(MaxCounter))
		}
		if err := crypto.WriteFileAtomic(w.counterPath(), []byte(strconv.FormatUint(hw, 10)+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("wallet: reserve counters: %w", err)
		}
		w.reserved = hw
	}
	n := w.next
	w.next++
	return n, nil
}

func (w *Wallet) counterPath() string { return filepath.Join(w.dir, "counter") }

func (w *Wallet) readCounter() (uint64, error) {
	b, err := os.ReadFile(w.counterPath())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open wallet: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n > MaxCounter {
		return 0, fmt.Errorf("open wallet: counter file %s is corrupt: %q", w.counterPath(), trunc(string(b)))
	}
	return n, nil
}

func (w *Wallet) loadCredentials() error {
	dir := filepath.Join(w.dir, "credentials")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("open wallet: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".cose") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("open wallet: %w", err)
		}
		c, err := ParseCredential(b)
		if err != nil {
			return fmt.Errorf("open wallet: %s: %w", e.Name(), err)
		}
		w.creds[c.Body.Flight] = c
	}
	return nil
}
