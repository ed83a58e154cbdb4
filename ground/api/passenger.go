package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// MaxTopUpMajor bounds one wallet top-up, in major units of its currency
// (10 000.00 EUR, 10 000 JPY).
const MaxTopUpMajor = passengerapi.MaxTopUpMajor

// ChargeSource is clearing as the passenger API sees it: a passenger's
// charges, and a retry of their collections when they link a new card.
type ChargeSource interface {
	// PassengerCharges returns up to limit of the passenger's charges,
	// newest first, and whether more exist.
	PassengerCharges(ctx context.Context, passenger protocol.ID, limit int) ([]passengerapi.Charge, bool, error)
	// RetryPassenger makes the passenger's charges in collections due for
	// a retry at once.
	RetryPassenger(ctx context.Context, passenger protocol.ID) error
}

func invalid(format string, args ...any) error {
	return registry.Errorf(registry.CodeInvalid, format, args...)
}

// createPassenger registers a passenger. The request is signed by the
// device key in the body: proof that the caller holds its private key.
func (s *Server) createPassenger(c *call) error {
	var req CreatePassengerRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(crypto.Device, req.DeviceKey)
	if err != nil {
		return invalid("device_key: %v", err)
	}
	now := s.clock()
	sr, err := parseSigned(c.r, c.body, now)
	if err != nil {
		return err
	}
	if sr.keyID != key.ID() {
		return unauthorized("%s names key %s, but the body enrolls key %s", HeaderDevice, sr.keyID, key.ID())
	}
	if !sr.verify(key) {
		return unauthorized("request signature does not verify under the device key being enrolled: proof of possession failed")
	}
	if err := s.limitRegistration(c, key); err != nil {
		return err
	}
	if err := s.replay.accept(sr, now); err != nil {
		return err
	}
	// The device key is registration's idempotency key: the same request
	// again answers the account it made (200), another body 409.
	if p, found, err := s.reg.ExistingRegistration(c.r.Context(), key, req.ExternalRef); err != nil || found {
		if err != nil {
			return err
		}
		return c.json(http.StatusOK, accountView(p, s.reg.Policy()))
	}
	p, err := s.reg.CreatePassenger(c.r.Context(), key, req.ExternalRef)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, accountView(p, s.reg.Policy()))
}

func (s *Server) getMe(c *call) error {
	p, err := s.reg.Passenger(c.r.Context(), c.passenger)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, accountView(p, s.reg.Policy()))
}

// setFunding links a funding source. A new card retries the charges in
// collections at once: paying with it is how a passenger clears arrears.
func (s *Server) setFunding(c *call) error {
	var req passengerapi.Funding
	if err := c.decode(&req); err != nil {
		return err
	}
	f := ground.FundingSource{Kind: ground.FundingKind(req.Kind), Network: ground.CardNetwork(req.Network), Token: req.Token,
		Last4: req.Last4, ExpMonth: req.ExpMonth, ExpYear: req.ExpYear}
	if err := s.reg.SetFunding(c.r.Context(), c.passenger, f); err != nil {
		return err
	}
	if s.charges != nil {
		if err := s.charges.RetryPassenger(c.r.Context(), c.passenger); err != nil {
			return fmt.Errorf("retry collections of %s: %w", c.passenger, err)
		}
	}
	return s.getMe(c)
}

// listCharges answers the passenger's receipts: each charge, and the totals
// charged and owed per currency.
func (s *Server) listCharges(c *call) error {
	if s.charges == nil {
		return registry.Errorf(registry.CodeUnavailable, "charges are not available on this server")
	}
	limit := passengerapi.MaxCharges
	if v := c.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > passengerapi.MaxCharges {
			return invalid("limit %q: want 1 to %d", trunc(v), passengerapi.MaxCharges)
		}
		limit = n
	}
	list, more, err := s.charges.PassengerCharges(c.r.Context(), c.passenger, limit)
	if err != nil {
		return fmt.Errorf("charges of %s: %w", c.passenger, err)
	}
	return c.json(http.StatusOK, chargeList(list, more))
}

// chargeList totals the charges: settled sales are charged, sales in
// collections owed.
func chargeList(list []passengerapi.Charge, more bool) passengerapi.ChargeList {
	out := passengerapi.ChargeList{Charges: list, Charged: []protocol.Money{}, Owed: []protocol.Money{}, Truncated: more}
	if out.Charges == nil {
		out.Charges = []passengerapi.Charge{}
	}
	charged, owed := map[protocol.Currency]int64{}, map[protocol.Currency]int64{}
	for _, ch := range list {
		if ch.Kind != "sale" {
			continue
		}
		switch ch.Status {
		case passengerapi.ChargeSettled:
			charged[ch.Amount.Currency] += ch.Amount.Minor
		case passengerapi.ChargeCollections:
			owed[ch.Amount.Currency] += ch.Amount.Minor
		}
	}
	for _, cur := range slices.Sorted(maps.Keys(charged)) {
		out.Charged = append(out.Charged, protocol.M(charged[cur], cur))
	}
	for _, cur := range slices.Sorted(maps.Keys(owed)) {
		out.Owed = append(out.Owed, protocol.M(owed[cur], cur))
	}
	return out
}

// enrollDevice adds a device key. The request is signed by an enrolled key
// and carries the new key's signature over the same signing string.
func (s *Server) enrollDevice(c *call) error {
	var req DeviceRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(crypto.Device, req.DeviceKey)
	if err != nil {
		return invalid("device_key: %v", err)
	}
	// A device reported lost may not bring in another one: the finder of
	// the phone could otherwise enroll their own.
	if err := s.reg.CheckDevice(c.r.Context(), c.device.Key); err != nil {
		return err
	}
	proof, err := decodeSig(c.r.Header.Get(HeaderProof))
	if err != nil {
		return unauthorized("%s: %v", HeaderProof, err)
	}
	if !key.Verify(SigningDomain, c.signed.msg, proof) {
		return unauthorized("%s does not verify under the new device key: proof of possession failed", HeaderProof)
	}
	if err := s.reg.EnrollDevice(c.r.Context(), c.passenger, key); err != nil {
		return err
	}
	return s.getMe(c)
}

func (s *Server) topUp(c *call) error {
	if s.funder == nil {
		return registry.Errorf(registry.CodeUnavailable, "wallet top-ups are not available on this server")
	}
	var req TopUpRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := s.checkTopUp(req); err != nil {
		return err
	}
	ctx := c.r.Context()
	if err := s.funder.TopUp(ctx, c.passenger, req.Amount, req.Ref); err != nil {
		if errors.Is(err, ground.ErrConflict) {
			return registry.Errorf(registry.CodeConflict, "top-up ref %s was used before with another amount or passenger; the first top-up stands", req.Ref)
		}
		return fmt.Errorf("top up %s: %w", c.passenger, err)
	}
	// The money is in the wallet; flights already opted in to hold more of
	// it, up to their band's limit. Should that fail, the top-up stands and
	// the next top-up raises them.
	if _, err := s.reg.RaiseWalletLimits(ctx, c.passenger, req.Amount.Currency); err != nil {
		s.log.Error("credential limits not raised after a top-up", "passenger", c.passenger, "err", err)
	}
	bal, err := s.funder.WalletBalance(ctx, c.passenger, req.Amount.Currency)
	if err != nil {
		return fmt.Errorf("wallet balance of %s: %w", c.passenger, err)
	}
	return c.json(http.StatusOK, Balance{Balance: bal})
}

// checkTopUp bounds a top-up: a positive amount of at most MaxTopUpMajor in
// a currency of the limit policy, with an idempotency ref.
func (s *Server) checkTopUp(req TopUpRequest) error {
	if req.Ref.IsZero() {
		return invalid("ref: want a 32-hex-character idempotency key")
	}
	if err := s.reg.Policy().Supports(req.Amount.Currency); err != nil {
		return err
	}
	e, _ := req.Amount.Currency.Exponent()
	limit := int64(MaxTopUpMajor)
	for range e {
		limit *= 10
	}
	if req.Amount.Minor <= 0 || req.Amount.Minor > limit {
		return invalid("amount %s: want more than zero and at most %s", req.Amount, protocol.M(limit, req.Amount.Currency))
	}
	return nil
}

func (s *Server) balance(c *call) error {
	if s.funder == nil {
		return registry.Errorf(registry.CodeUnavailable, "wallets are not available on this server")
	}
	cur := protocol.Currency(c.r.PathValue("currency"))
	if err := cur.Validate(); err != nil {
		return invalid("%v", err)
	}
	bal, err := s.funder.WalletBalance(c.r.Context(), c.passenger, cur)
	if err != nil {
		return fmt.Errorf("wallet balance of %s: %w", c.passenger, err)
	}
	return c.json(http.StatusOK, Balance{Balance: bal})
}

// optIn issues (or returns again) the caller's credential for a flight,
// bound to the device key that signed the request.
func (s *Server) optIn(c *call) error {
	var req OptInRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := req.Flight.Validate(); err != nil {
		return invalid("%v", err)
	}
	ic, created, err := s.reg.OptIn(c.r.Context(), c.passenger, c.device.Key, req.Flight)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	v := credentialView(ic)
	f, err := s.reg.FlightDetails(c.r.Context(), req.Flight)
	if err != nil {
		return fmt.Errorf("opt-in %s: flight caps: %w", req.Flight, err)
	}
	v.CodeFreshSeconds = f.Caps.CodeFreshSeconds
	return c.json(status, v)
}
