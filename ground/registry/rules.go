package registry

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Validity windows and manifest lifetimes.
const (
	// CredentialLead is how long before the flight date (00:00 UTC of the
	// scheduled departure day) a credential becomes valid.
	CredentialLead = 24 * time.Hour
	// CredentialTail is how long after the flight date a credential stays
	// valid: a departure at 23:59 UTC, an 18-hour flight and a long delay
	// all fit inside it.
	CredentialTail = 48 * time.Hour
	// DefaultManifestTTL is how long a manifest, or a delta that extends
	// it, stays valid after it is issued.
	DefaultManifestTTL = 36 * time.Hour
	// DefaultReissueAfter is the age at which a manifest request from an
	// aircraft gets a freshly built manifest instead of the latest one.
	DefaultReissueAfter = 12 * time.Hour
)

// Caps defaults, used for every zero field of a flight's caps.
const (
	DefaultCodeFreshSeconds      = 120
	DefaultClockSkewSeconds      = 300
	DefaultVelocityCount         = 6
	DefaultVelocityWindowSeconds = 600
)

// defaultExposureMajor is the default aircraft exposure cap per flight, in
// major units of the flight currency.
var defaultExposureMajor = map[protocol.Currency]int64{
	"EUR": 20_000, "USD": 20_000, "GBP": 16_000, "CHF": 20_000, "JPY": 3_000_000,
}

// Bounds on what a flight and a passenger may hold.
const (
	// MaxCredentialsPerFlight bounds every credential ever issued for a
	// flight, revoked ones included, so the deny list (revocations plus
	// passengers in arrears) stays within protocol.MaxDenyEntries.
	MaxCredentialsPerFlight = 2 * protocol.MaxPassengers
	// MaxDevicesPerPassenger bounds the device keys of one passenger.
	MaxDevicesPerPassenger = 4
	// MaxExternalRefLen bounds the optional external reference, in bytes.
	MaxExternalRefLen = 64
	// maxDeltaCredentials and maxDeltaDeny bound one delta so that it
	// stays under protocol.MaxManifestDeltaSize whatever it holds; more
	// pending changes go into the next delta.
	maxDeltaCredentials = 200
	maxDeltaDeny        = 1500
)

// CredentialWindow returns the validity window of a credential for a flight
// on date: [date - CredentialLead, date + CredentialTail).
func CredentialWindow(date time.Time) (notBefore, notAfter time.Time) {
	d := date.UTC()
	return d.Add(-CredentialLead), d.Add(CredentialTail)
}

// DefaultCaps returns the caps a flight in currency c gets when it names
// none: exposure from the table (20 000.00 EUR, USD, CHF; 16 000.00 GBP;
// 3 000 000 JPY), code freshness 120 s, clock skew 300 s, 6 sales per
// 600 s. A currency without a default exposure needs an explicit one.
func DefaultCaps(c protocol.Currency) protocol.Caps {
	caps := protocol.Caps{
		CodeFreshSeconds:      DefaultCodeFreshSeconds,
		ClockSkewSeconds:      DefaultClockSkewSeconds,
		VelocityCount:         DefaultVelocityCount,
		VelocityWindowSeconds: DefaultVelocityWindowSeconds,
	}
	if major, ok := defaultExposureMajor[c]; ok {
		e, _ := c.Exponent()
		minor := major
		for range e {
			minor *= 10
		}
		caps.AircraftExposure = protocol.M(minor, c)
	}
	return caps
}

// fillCaps fills each zero field of caps from DefaultCaps and checks the
// result: exposure positive in the flight currency, code freshness 1 s to
// 1 h, clock skew at most 1 h, 1 to 1000 sales in a window of 1 s to 1 day.
func fillCaps(caps protocol.Caps, c protocol.Currency) (protocol.Caps, error) {
	d := DefaultCaps(c)
	if caps.AircraftExposure == (protocol.Money{}) {
		caps.AircraftExposure = d.AircraftExposure
	}
	if caps.CodeFreshSeconds == 0 {
		caps.CodeFreshSeconds = d.CodeFreshSeconds
	}
	if caps.ClockSkewSeconds == 0 {
		caps.ClockSkewSeconds = d.ClockSkewSeconds
	}
	if caps.VelocityCount == 0 {
		caps.VelocityCount = d.VelocityCount
	}
	if caps.VelocityWindowSeconds == 0 {
		caps.VelocityWindowSeconds = d.VelocityWindowSeconds
	}
	switch e := caps.AircraftExposure; {
	case e == (protocol.Money{}):
		return caps, invalid("caps: no default aircraft exposure cap in %s: give one", c)
	case e.Currency != c:
		return caps, invalid("caps: aircraft exposure cap in %s, flight sells in %s", trunc(string(e.Currency)), c)
	case e.Validate() != nil || e.Minor <= 0:
		return caps, invalid("caps: aircraft exposure cap %s: want a positive amount", e)
	case caps.CodeFreshSeconds > 3600:
		return caps, invalid("caps: code freshness %d s: want 1 to 3600", caps.CodeFreshSeconds)
	case caps.ClockSkewSeconds > 3600:
		return caps, invalid("caps: clock skew %d s: want at most 3600", caps.ClockSkewSeconds)
	case caps.VelocityCount > 1000:
		return caps, invalid("caps: velocity count %d: want 1 to 1000", caps.VelocityCount)
	case caps.VelocityWindowSeconds > 86400:
		return caps, invalid("caps: velocity window %d s: want 1 to 86400", caps.VelocityWindowSeconds)
	}
	return caps, nil
}

var (
	skuRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
	crewIDRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
	extRefRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$`)
	crewRoles = map[string]bool{"purser": true, "attendant": true}
)

// validateCatalog checks a flight's catalog: at most protocol.MaxCatalog
// items, unique SKUs of 1 to 32 letters, digits and "_.-", names of 1 to 80
// bytes, categories of at most 32, and prices of zero or more in the flight
// currency.
func validateCatalog(items []protocol.CatalogItem, c protocol.Currency) error {
	if len(items) > protocol.MaxCatalog {
		return invalid("catalog: %d items, over the limit of %d", len(items), protocol.MaxCatalog)
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		switch {
		case !skuRE.MatchString(it.SKU):
			return invalid("catalog item %d: SKU %q: want 1 to 32 letters, digits and _.-", i, trunc(it.SKU))
		case seen[it.SKU]:
			return invalid("catalog: SKU %q listed twice", it.SKU)
		case len(it.Name) < 1 || len(it.Name) > 80:
			return invalid("catalog item %s: name of %d bytes, want 1 to 80", it.SKU, len(it.Name))
		case len(it.Category) > 32:
			return invalid("catalog item %s: category of %d bytes, want at most 32", it.SKU, len(it.Category))
		case it.Price.Currency != c:
			return invalid("catalog item %s: price in %q, flight sells in %s", it.SKU, trunc(string(it.Price.Currency)), c)
		case it.Price.Validate() != nil || it.Price.Minor < 0:
			return invalid("catalog item %s: price %s: want zero or more", it.SKU, it.Price)
		}
		seen[it.SKU] = true
	}
	return nil
}

// CrewInput is one crew member as the back office gives it: the PIN in the
// clear (hashed with argon2id before it is stored, and then forgotten) or an
// argon2id PHC string made by crypto.HashPIN elsewhere. Exactly one of PIN
// and PINHash is set.
type CrewInput struct {
	ID      string
	Role    string // "purser" or "attendant"
	PIN     string
	PINHash string
}

// validateCrew checks a roster without its PINs: at most protocol.MaxCrew
// members, unique ids of 1 to 32 letters, digits and "_.-", a known role,
// and exactly one of PIN and PINHash, the hash well formed.
func validateCrew(crew []CrewInput) error {
	if len(crew) > protocol.MaxCrew {
		return invalid("crew: %d members, over the limit of %d", len(crew), protocol.MaxCrew)
	}
	seen := make(map[string]bool, len(crew))
	for i, m := range crew {
		switch {
		case !crewIDRE.MatchString(m.ID):
			return invalid("crew member %d: id %q: want 1 to 32 letters, digits and _.-", i, trunc(m.ID))
		case seen[m.ID]:
			return invalid("crew: id %q listed twice", m.ID)
		case !crewRoles[m.Role]:
			return invalid("crew member %s: role %q: want purser or attendant", m.ID, trunc(m.Role))
		case (m.PIN == "") == (m.PINHash == ""):
			return invalid("crew member %s: give exactly one of pin and pin_hash", m.ID)
		}
		if m.PINHash != "" {
			// A PIN that cannot match returns before any argon2 work, so
			// this only parses and bounds the hash.
			if _, err := crypto.VerifyPIN(m.PINHash, ""); err != nil {
				return invalid("crew member %s: %v", m.ID, err)
			}
		}
		seen[m.ID] = true
	}
	return nil
}

// validateExternalRef checks the optional opaque external reference: empty,
// or 1 to 64 letters, digits and "_.:@-" (a loyalty number's hash, say;
// never a name or an e-mail address in the clear).
func validateExternalRef(ref string) error {
	if ref != "" && !extRefRE.MatchString(ref) {
		return invalid("external reference %q: want up to %d letters, digits and _.:@-", trunc(ref), MaxExternalRefLen)
	}
	return nil
}

// sortDeny orders deny entries by reason, passenger, credential and device, so the
// same list always encodes the same way.
func sortDeny(d []protocol.DenyEntry) {
	slices.SortFunc(d, compareDeny)
}

func compareDeny(a, b protocol.DenyEntry) int {
	if c := cmp.Compare(a.Reason, b.Reason); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Passenger[:], b.Passenger[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Credential[:], b.Credential[:]); c != 0 {
		return c
	}
	return bytes.Compare(denyDeviceBytes(a), denyDeviceBytes(b))
}

// diffDeny returns the entries of want not in have (to add) and of have not
// in want (to lift), each sorted.
func diffDeny(want, have []protocol.DenyEntry) (add, lift []protocol.DenyEntry) {
	inHave := make(map[protocol.DenyEntry]bool, len(have))
	for _, e := range have {
		inHave[e] = true
	}
	inWant := make(map[protocol.DenyEntry]bool, len(want))
	for _, e := range want {
		inWant[e] = true
		if !inHave[e] {
			add = append(add, e)
		}
	}
	for _, e := range have {
		if !inWant[e] {
			lift = append(lift, e)
		}
	}
	sortDeny(add)
	sortDeny(lift)
	return add, lift
}
