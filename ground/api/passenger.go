package api

import (
	"fmt"
	"net/http"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// MaxTopUpMajor bounds one wallet top-up, in major units of its currency
// (10 000.00 EUR, 10 000 JPY).
const MaxTopUpMajor = 10_000

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
	if err := s.replay.accept(sr, now); err != nil {
		return err
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

func (s *Server) setFunding(c *call) error {
	var f ground.FundingSource
	if err := c.decode(&f); err != nil {
		return err
	}
	if err := s.reg.SetFunding(c.r.Context(), c.passenger, f); err != nil {
		return err
	}
	return s.getMe(c)
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
		return fmt.Errorf("top up %s: %w", c.passenger, err)
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
	return c.json(status, credentialView(ic))
}
