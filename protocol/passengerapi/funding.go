package passengerapi

import (
	"fmt"
	"slices"
	"time"
)

// Card token bounds, in bytes.
const (
	MinTokenLen = 4
	MaxTokenLen = 128
	// panDigits is the shortest run of digits that could be a card number
	// (real ones have 12 to 19): a token or last4 holding one is refused,
	// so a card number is never sent by mistake.
	panDigits = 12
	// maxExpiryYears is how far ahead a card expiry may lie.
	maxExpiryYears = 20
)

// Validate checks f at time now with the rules ground applies to
// PUT /v1/me/funding, so a client can refuse a mistyped card before it
// leaves the device. A wallet carries no card fields. A card needs a network
// of Networks, a token of MinTokenLen to MaxTokenLen letters, digits and
// "_-.:" that holds no run of 12 or more digits, exactly four last digits,
// and an expiry month that has not ended (UTC) and is at most 20 years ahead.
func (f Funding) Validate(now time.Time) error {
	switch f.Kind {
	case FundingWallet:
		if f.Network != "" || f.Token != "" || f.Last4 != "" || f.ExpMonth != 0 || f.ExpYear != 0 {
			return fmt.Errorf("a wallet funding source carries no card fields")
		}
		return nil
	case FundingCard:
	default:
		return fmt.Errorf("funding kind %q: want %q or %q", f.Kind, FundingWallet, FundingCard)
	}
	if !slices.Contains(Networks, f.Network) {
		return fmt.Errorf("card network %q: want visa, mastercard, amex, discover or jcb", f.Network)
	}
	if digitRun(f.Token) >= panDigits || digitRun(f.Last4) >= panDigits {
		return fmt.Errorf("card token or last4 looks like a card number: send the acquirer's token and the last four digits, never the card number")
	}
	if len(f.Token) < MinTokenLen || len(f.Token) > MaxTokenLen {
		return fmt.Errorf("card token: %d bytes, want %d to %d", len(f.Token), MinTokenLen, MaxTokenLen)
	}
	for _, c := range f.Token {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("card token: character %q not allowed (letters, digits and _-.: only)", c)
		}
	}
	if len(f.Last4) != 4 || digitRun(f.Last4) != 4 {
		return fmt.Errorf("card last4 %q: want exactly four digits", f.Last4)
	}
	if f.ExpMonth < 1 || f.ExpMonth > 12 {
		return fmt.Errorf("card expiry month %d: want 1 to 12", f.ExpMonth)
	}
	if f.ExpYear < 2000 || f.ExpYear > 9999 {
		return fmt.Errorf("card expiry year %d: want four digits", f.ExpYear)
	}
	if end := time.Date(f.ExpYear, time.Month(f.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC); !now.Before(end) {
		return fmt.Errorf("card expired at the end of %04d-%02d", f.ExpYear, f.ExpMonth)
	}
	if f.ExpYear > now.UTC().Year()+maxExpiryYears {
		return fmt.Errorf("card expiry year %d is more than %d years ahead", f.ExpYear, maxExpiryYears)
	}
	return nil
}

// digitRun returns the longest run of digits in s, ignoring anything that
// is neither a letter nor a digit (a card number written with spaces or
// dashes is still one run).
func digitRun(s string) int {
	run, best := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			run++
			best = max(best, run)
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c > 127:
			run = 0
		}
	}
	return best
}
