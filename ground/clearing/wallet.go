package clearing

import (
	"context"
	"errors"
	"fmt"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// ErrTopUpConflict is returned by TopUp when ref was used before for a
// different passenger or amount. The first top-up stands. It matches
// ground.ErrConflict.
var ErrTopUpConflict = fmt.Errorf("top-up reference reused with different content: %w", ground.ErrConflict)

// TopUp credits amount to the passenger's wallet in the ledger (from the
// top-up funding account). ref is the caller's idempotency key: the same ref
// with the same passenger and amount succeeds without crediting again. Wallet
// invoices of the passenger in collections become due for a retry at once.
// It implements ground.WalletFunder.
func (s *Service) TopUp(ctx context.Context, passenger protocol.ID, amount protocol.Money, ref protocol.ID) error {
	switch {
	case passenger.IsZero() || ref.IsZero():
		return errors.New("top-up: passenger and reference are required")
	case amount.Validate() != nil:
		return fmt.Errorf("top-up: %w", amount.Validate())
	case amount.Minor <= 0:
		return fmt.Errorf("top-up of %s: the amount must be positive", amount)
	}
	now := s.clock().UTC()
	tx, err := store.BeginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("top-up: %w", err)
	}
	defer tx.Rollback()
	var created []ledger.AccountID
	lb := ledger.NewBatch(tx, now)
	p := newPosting(ledger.TransferTopUp, ref, amount, ledger.TopUpAccount(amount.Currency), ledger.WalletAccount(passenger, amount.Currency))
	err = s.post(ctx, lb, &created, p)
	if errors.Is(err, ledger.ErrExistsWithDifferentFields) {
		return fmt.Errorf("top-up %s: %w", ref, ErrTopUpConflict)
	}
	if err != nil {
		return fmt.Errorf("top-up %s: %w", ref, err)
	}
	if err := lb.Flush(ctx); err != nil {
		return fmt.Errorf("top-up %s: %w", ref, err)
	}
	if err := retryWalletNow(ctx, tx, passenger, amount.Currency, now); err != nil {
		return fmt.Errorf("top-up %s: %w", ref, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("top-up %s: %w", ref, err)
	}
	s.accounts.addAll(created)
	return nil
}

// WalletBalance returns the passenger's wallet balance in currency c (zero
// for a wallet never funded). It implements ground.WalletFunder.
func (s *Service) WalletBalance(ctx context.Context, passenger protocol.ID, c protocol.Currency) (protocol.Money, error) {
	if err := c.Validate(); err != nil {
		return protocol.Money{}, err
	}
	a, err := ledger.LookupAccount(ctx, s.db, ledger.WalletAccount(passenger, c).ID)
	if errors.Is(err, ledger.ErrAccountNotFound) {
		return protocol.M(0, c), nil
	}
	if err != nil {
		return protocol.Money{}, err
	}
	return a.CreditBalance(), nil
}
