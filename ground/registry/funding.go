package registry

import (
	"time"
	"unicode"

	"github.com/airtab/airtab/ground"
)

// Bounds on a card funding source.
const (
	// MaxTokenLen is the longest acquirer token accepted, in bytes.
	MaxTokenLen = 128
	// MinTokenLen is the shortest.
	MinTokenLen = 4
	// panDigits is the shortest run of digits that could be a card number
	// (real PANs have 12 to 19). A token holding such a run is refused: an
	// acquirer token is opaque and never needs one, and accepting one risks
	// storing a real card number.
	panDigits = 12
	// maxExpiryYears is how far in the future a card expiry may lie.
	maxExpiryYears = 20
)

var networks = map[ground.CardNetwork]bool{
	ground.Visa: true, ground.Mastercard: true, ground.Amex: true, ground.Discover: true, ground.JCB: true,
}

// ValidateFunding checks a funding source at time now. A wallet carries no
// card fields. A card needs an accepted network, an acquirer token of
// MinTokenLen to MaxTokenLen letters, digits and "_-.:" that does not look
// like a card number, exactly four last digits, and an expiry month that has
// not ended (a card is valid through the last day of its expiry month, UTC)
// and lies at most 20 years ahead.
func ValidateFunding(f ground.FundingSource, now time.Time) error {
	switch f.Kind {
	case ground.FundingWallet:
		if f.Network != "" || f.Token != "" || f.Last4 != "" || f.ExpMonth != 0 || f.ExpYear != 0 {
			return invalid("a wallet funding source carries no card fields")
		}
		return nil
	case ground.FundingCard:
		return validateCard(f, now)
	}
	return invalid("funding kind %q: want %q or %q", trunc(string(f.Kind)), ground.FundingWallet, ground.FundingCard)
}

func validateCard(f ground.FundingSource, now time.Time) error {
	if !networks[f.Network] {
		return invalid("card network %q: want visa, mastercard, amex, discover or jcb", trunc(string(f.Network)))
	}
	if looksLikePAN(f.Token) || looksLikePAN(f.Last4) {
		return invalid("card token or last4 looks like a card number: send the acquirer's token and the last four digits, never the card number")
	}
	if len(f.Token) < MinTokenLen || len(f.Token) > MaxTokenLen {
		return invalid("card token: %d bytes, want %d to %d", len(f.Token), MinTokenLen, MaxTokenLen)
	}
	for _, c := range f.Token {
		if c > unicode.MaxASCII || !(unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || c == '-' || c == '.' || c == ':') {
			return invalid("card token: character %q not allowed (letters, digits and _-.: only)", c)
		}
	}
	if len(f.Last4) != 4 || !allDigits(f.Last4) {
		return invalid("card last4 %q: want exactly four digits", trunc(f.Last4))
	}
	if f.ExpMonth < 1 || f.ExpMonth > 12 {
		return invalid("card expiry month %d: want 1 to 12", f.ExpMonth)
	}
	if f.ExpYear < 2000 || f.ExpYear > 9999 {
		return invalid("card expiry year %d: want four digits", f.ExpYear)
	}
	if !CardValidAt(f, now) {
		return invalid("card expired at the end of %04d-%02d", f.ExpYear, f.ExpMonth)
	}
	if f.ExpYear > now.UTC().Year()+maxExpiryYears {
		return invalid("card expiry year %d is more than %d years ahead", f.ExpYear, maxExpiryYears)
	}
	return nil
}

// CardValidAt reports whether a card has not expired at t: it is valid
// through the last day of its expiry month, UTC.
func CardValidAt(f ground.FundingSource, t time.Time) bool {
	end := time.Date(f.ExpYear, time.Month(f.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC)
	return t.Before(end)
}

// looksLikePAN reports whether s, with everything but letters and digits
// removed, holds a run of panDigits or more digits.
func looksLikePAN(s string) bool {
	run := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			run++
			if run >= panDigits {
				return true
			}
		case unicode.IsLetter(c):
			run = 0
		}
	}
	return false
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
