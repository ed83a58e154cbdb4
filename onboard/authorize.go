package onboard

import (
	"bytes"
	"strings"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// The authorization rules, in the order of the sale flow (ARCHITECTURE.md,
// protocol/SPEC.md §12.1):
//
//	 1. well-formed: the QR text, the basket (unknown SKU, bad quantity)   parseCode, priceLines
//	 2. credential known: by the code's key id in the manifest, or the
//	    full-form credential inside the code                              candidates
//	 3. issuer signature (checked once at manifest load for manifest
//	    credentials; here for an embedded one)                            candidates
//	 4. valid for this flight and time                                    checkCandidate
//	 5. not on the deny list: passenger, device key or credential         checkCandidate
//	 6. device signature, external_aad = credential id                    checkCandidate
//	 7. code fresh: not older than CodeFreshSeconds, not ahead by more
//	    than ClockSkewSeconds                                             checkCandidate
//	 8. counter never used                                                checkSpend
//	 9. amount and currency valid (two-way: consent matches the order)    checkAmount, reported by checkSpend
//	10. per-transaction cap                                               checkAmount, reported by checkSpend
//	11. passenger's spend this flight plus this amount within the limit  checkSpend
//	12. aircraft exposure cap                                             checkSpend
//	13. velocity: at most VelocityCount sales in VelocityWindowSeconds    checkSpend
//
// Steps 1 to 7, 9 and 10 need no state and run on the handler goroutines, in
// parallel (checkPresented, checkAmount); 8 and 11 to 13 need what the
// flight has sold so far and run on the single writer (checkSpend), which
// reports a failure of 9 or 10 only after 8, so a decline always names the
// first rule that failed.
//
// Before any of these the cabin server refuses to sell at all without a
// verified manifest (ReasonNoManifest), on an expired one
// (ReasonManifestExpired) and after flight close (ReasonFlightClosed).

// presented is a scanned payment code or order consent, reduced to what the
// rules need.
type presented struct {
	raw      []byte // the signed bytes, as they go into the invoice
	kid      crypto.KeyID
	counter  uint64
	at       time.Time // when the phone made it
	embedded []byte    // full form: the issuer-signed credential
	verify   func(pub crypto.PublicKey, external []byte) error
	consent  *protocol.OrderConsent // two-way mode only
}

// parseCode decodes the QR text of a payment code ("AT1:") or an order
// consent ("ATC1:"), strictly. A malformed text is an *Error with
// ReasonMalformed: the request is bad, nothing is checked further.
func parseCode(text string) (*presented, error) {
	switch {
	case strings.HasPrefix(text, protocol.PrefixOrderConsent):
		s, err := protocol.ParseOrderConsentText(text)
		if err != nil {
			return nil, malformed("%v", err) // the error names the order consent QR already
		}
		return &presented{raw: s.Raw, kid: s.KeyID, counter: s.Body.Counter, at: s.Body.Time,
			embedded: s.Body.Credential, verify: s.Verify, consent: &s.Body}, nil
	case strings.HasPrefix(text, protocol.PrefixOrder):
		return nil, malformed("this is the order QR the handheld shows; scan the passenger's consent instead")
	default:
		s, err := protocol.ParsePaymentCodeText(text)
		if err != nil {
			return nil, malformed("%v", err) // the error names the payment code already
		}
		return &presented{raw: s.Raw, kid: s.KeyID, counter: s.Body.Counter, at: s.Body.Time,
			embedded: s.Body.Credential, verify: s.Verify}, nil
	}
}

func malformed(format string, args ...any) *Error {
	return ReasonErrorf(CodeInvalid, protocol.ReasonMalformed, format, args...)
}

// priceLines prices a basket from the manifest's catalog. An empty or
// oversized basket, an unknown SKU or a bad quantity makes the request
// malformed: an *Error with ReasonMalformed, ReasonUnknownSKU or
// ReasonInvalidQuantity. A total out of range is not a malformed request but
// a decline (ReasonInvalidAmount), returned as the reason for the caller to
// report in check order.
func priceLines(m *Manifest, lines []Line) ([]protocol.OrderLine, protocol.Money, protocol.Reason, error) {
	if len(lines) == 0 {
		return nil, protocol.Money{}, 0, malformed("the basket is empty")
	}
	if len(lines) > protocol.MaxLines {
		return nil, protocol.Money{}, 0, malformed("the basket has %d lines, over the limit of %d", len(lines), protocol.MaxLines)
	}
	out := make([]protocol.OrderLine, len(lines))
	for i, l := range lines {
		it, ok := m.Item(l.SKU)
		if !ok {
			return nil, protocol.Money{}, 0, ReasonErrorf(CodeInvalid, protocol.ReasonUnknownSKU,
				"line %d: SKU %q is not in the catalog", i+1, truncate(l.SKU, 32))
		}
		if l.Quantity < 1 || l.Quantity > protocol.MaxQuantity {
			return nil, protocol.Money{}, 0, ReasonErrorf(CodeInvalid, protocol.ReasonInvalidQuantity,
				"line %d: quantity %d, want 1 to %d", i+1, l.Quantity, protocol.MaxQuantity)
		}
		out[i] = protocol.OrderLine{SKU: it.SKU, Quantity: uint32(l.Quantity), UnitPrice: it.Price}
	}
	total, err := protocol.LinesTotal(out, m.Currency())
	if err != nil {
		return out, protocol.Money{Currency: m.Currency()}, protocol.ReasonInvalidAmount, nil
	}
	return out, total, 0, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// checkPresented runs steps 2 to 7 on a code or consent: the stateless
// checks. It returns the credential the code pays with, or the reason for
// the decline (with the credential when one was found).
//
// Key ids can collide and a device can hold a reissued credential, so a
// compact code may have several candidate credentials: each is checked, the
// first that passes wins, and when none does the decline names the failure
// that came latest in the order (the candidate that got furthest).
func checkPresented(m *Manifest, p *presented, now time.Time) (*protocol.SignedCredential, protocol.Reason) {
	cands, r := candidates(m, p, now)
	if r != 0 {
		return nil, r
	}
	var best *protocol.SignedCredential
	bestStep, bestReason := -1, protocol.Reason(0)
	for _, c := range cands {
		step, r := checkCandidate(m, p, c, now)
		if r == 0 {
			return c, 0
		}
		if step > bestStep {
			best, bestStep, bestReason = c, step, r
		}
	}
	return best, bestReason
}

// candidates finds the credentials a code may pay with (steps 2 and 3).
func candidates(m *Manifest, p *presented, now time.Time) ([]*protocol.SignedCredential, protocol.Reason) {
	if len(p.embedded) == 0 {
		cs := m.CredentialsFor(p.kid)
		if len(cs) == 0 {
			return nil, protocol.ReasonUnknownCredential
		}
		return signerTrusted(m, cs, now)
	}
	c, err := protocol.ParseCredential(p.embedded)
	if err != nil {
		return nil, protocol.ReasonMalformed // the code's own parse checked it; unreachable
	}
	if known, ok := m.Credential(c.Body.ID); ok && (bytes.Equal(known.Raw, c.Raw) || known.Body.RaisedFrom(c.Body)) {
		// Verified at manifest load; a code embedding the credential as
		// first issued pays within the raised limits ground sent since.
		return signerTrusted(m, []*protocol.SignedCredential{known}, now)
	}
	if _, err := c.VerifyTrusted(m.Trust(), now, nil); err != nil {
		return nil, protocol.ReasonBadIssuerSignature
	}
	return []*protocol.SignedCredential{c}, 0
}

// signerTrusted keeps the manifest credentials whose issuer key is still
// trusted at now: their signatures were verified at load, but a key retired
// in a rotation is refused once its window has ended (SPEC §4.2.6). The
// check is by key id, without verifying again: the ids in the manifest's
// trust list are ground's own keys.
func signerTrusted(m *Manifest, cs []*protocol.SignedCredential, now time.Time) ([]*protocol.SignedCredential, protocol.Reason) {
	kept := cs[:0:0]
	for _, c := range cs {
		if len(m.Trust().Lookup(c.KeyID, crypto.Issuer, now)) > 0 {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil, protocol.ReasonBadIssuerSignature
	}
	return kept, 0
}

// checkCandidate runs steps 4 to 7 against one credential. step says how
// far the checks got, for choosing among candidates.
func checkCandidate(m *Manifest, p *presented, sc *protocol.SignedCredential, now time.Time) (step int, r protocol.Reason) {
	c := &sc.Body
	caps := m.Caps()
	switch {
	case c.Flight != m.Flight():
		return 0, protocol.ReasonWrongFlight
	case now.Before(c.NotBefore):
		return 1, protocol.ReasonCredentialNotYet
	case !now.Before(c.NotAfter):
		return 1, protocol.ReasonCredentialExpired
	case m.Denied(c):
		return 2, protocol.ReasonDenyListed
	case p.verify(c.Device.PublicKey, c.ID[:]) != nil:
		return 3, protocol.ReasonBadDeviceSignature
	case now.Sub(p.at) > time.Duration(caps.CodeFreshSeconds)*time.Second:
		return 4, protocol.ReasonCodeStale
	case p.at.Sub(now) > time.Duration(caps.ClockSkewSeconds)*time.Second:
		return 4, protocol.ReasonCodeFromFuture
	}
	return 5, 0
}

// checkAmount runs steps 9 and 10, which need no state: in two-way mode the
// consent must match the order the server issued (id, hash and total);
// the total must be positive and in range (priceReason carries a pricing
// overflow); the credential must be in the flight's currency; the total must
// be within the credential's per-transaction cap.
func checkAmount(m *Manifest, c *protocol.Credential, total protocol.Money, priceReason protocol.Reason,
	consent *protocol.OrderConsent, order *issuedOrder) protocol.Reason {
	if consent != nil {
		if order == nil || consent.Order != order.order.ID || consent.OrderHash != order.hash || consent.Total != order.order.Total {
			return protocol.ReasonConsentMismatch
		}
	}
	switch {
	case priceReason != 0:
		return priceReason
	case total.Minor <= 0 || total.Validate() != nil:
		return protocol.ReasonInvalidAmount
	case c.Limit.Currency != m.Currency() || total.Currency != m.Currency():
		return protocol.ReasonCurrencyMismatch
	case total.Minor > c.TxCap.Minor:
		return protocol.ReasonOverTransactionCap
	}
	return 0
}

// spendState is what the stateful rules need to know: whether the code was
// used, what the passenger and the aircraft have spent (net of voids), and
// how many sales the passenger made within the velocity window. It includes
// the effects of earlier requests in the same group commit.
type spendState struct {
	codeUsed    bool
	spent       int64 // passenger's approved spend this flight, in minor units of the flight currency
	exposure    int64 // aircraft's approved spend this flight, in minor units of the flight currency
	recentSales int
}

// checkSpend runs step 8, reports a failure of steps 9 and 10 (amountReason
// from checkAmount), and runs steps 11 to 13.
func checkSpend(s spendState, c *protocol.Credential, total protocol.Money, amountReason protocol.Reason, caps protocol.Caps) protocol.Reason {
	switch {
	case s.codeUsed:
		return protocol.ReasonCodeReused
	case amountReason != 0:
		return amountReason
	case s.spent+total.Minor > c.Limit.Minor:
		return protocol.ReasonOverPassengerLimit
	case s.exposure+total.Minor > caps.AircraftExposure.Minor:
		return protocol.ReasonOverAircraftCap
	case s.recentSales >= int(caps.VelocityCount):
		return protocol.ReasonVelocity
	}
	return 0
}

// declineAmount is what a decline over a limit says about that limit: the
// per-transaction cap for ReasonOverTransactionCap, what is left of the
// passenger's limit for ReasonOverPassengerLimit, what is left of the
// aircraft's exposure cap for ReasonOverAircraftCap; zero for any other
// reason.
func declineAmount(r protocol.Reason, s spendState, c *protocol.Credential, caps protocol.Caps) protocol.Money {
	switch r {
	case protocol.ReasonOverTransactionCap:
		return c.TxCap
	case protocol.ReasonOverPassengerLimit:
		return protocol.M(max(c.Limit.Minor-s.spent, 0), c.Limit.Currency)
	case protocol.ReasonOverAircraftCap:
		return protocol.M(max(caps.AircraftExposure.Minor-s.exposure, 0), caps.AircraftExposure.Currency)
	}
	return protocol.Money{}
}

// velocityFrom returns the start of the velocity window ending at now:
// sales after it count.
func velocityFrom(caps protocol.Caps, now time.Time) time.Time {
	return now.Add(-time.Duration(caps.VelocityWindowSeconds) * time.Second)
}

// sellable reports why no sale can be approved now, or 0: no manifest, an
// expired one, or a closed flight, in that order (SPEC.md §12.1).
func sellable(m *Manifest, closed bool, now time.Time) protocol.Reason {
	switch {
	case m == nil:
		return protocol.ReasonNoManifest
	case m.Expired(now):
		return protocol.ReasonManifestExpired
	case closed:
		return protocol.ReasonFlightClosed
	}
	return 0
}
