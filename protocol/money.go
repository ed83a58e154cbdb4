package protocol

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Currency is an ISO 4217 alphabetic currency code, such as "EUR".
type Currency string

// currencyExponents lists the currencies Airtab accepts and their ISO 4217
// minor-unit exponents: EUR has cents (2), JPY has none (0), KWD has fils (3).
var currencyExponents = map[Currency]int{
	"AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2,
	"CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "INR": 2,
	"ISK": 0, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "NOK": 2, "NZD": 2,
	"OMR": 3, "PLN": 2, "QAR": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2,
	"TRY": 2, "USD": 2, "ZAR": 2,
}

// Exponent returns the number of minor-unit digits of c, and false for a
// currency Airtab does not accept.
func (c Currency) Exponent() (int, bool) {
	e, ok := currencyExponents[c]
	return e, ok
}

// Validate returns an error naming c unless it is a supported ISO 4217 code.
func (c Currency) Validate() error {
	if _, ok := currencyExponents[c]; !ok {
		return fmt.Errorf("currency %q: not a supported ISO 4217 code", trunc(string(c)))
	}
	return nil
}

// MaxMinor bounds every amount on the wire, in minor units: 10^12, ten
// billion euros. Sums of bounded amounts cannot overflow int64.
const MaxMinor int64 = 1_000_000_000_000

// Money is an amount in integer minor units of a currency: 1250 EUR is
// EUR 12.50. Money is never a float.
type Money struct {
	Minor    int64    `cbor:"1,keyasint,omitzero" json:"minor"`
	Currency Currency `cbor:"2,keyasint,omitzero" json:"currency"`
}

// M is shorthand for Money{Minor: minor, Currency: c}.
func M(minor int64, c Currency) Money { return Money{Minor: minor, Currency: c} }

// ErrCurrencyMismatch is returned when amounts in two currencies are combined.
var ErrCurrencyMismatch = errors.New("currency mismatch")

// Validate checks the currency and that |Minor| is within MaxMinor.
func (m Money) Validate() error {
	if err := m.Currency.Validate(); err != nil {
		return err
	}
	if m.Minor > MaxMinor || m.Minor < -MaxMinor {
		return fmt.Errorf("amount %d %s: beyond the limit of %d minor units", m.Minor, m.Currency, MaxMinor)
	}
	return nil
}

// Add returns m+o. Both must be in the same currency and within MaxMinor,
// and so must the sum.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("add %s to %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	// Bounded operands cannot overflow int64; unbounded ones could wrap
	// around to a sum that looks valid.
	if err := firstErr(m.Validate(), o.Validate()); err != nil {
		return Money{}, fmt.Errorf("add: %w", err)
	}
	s := Money{Minor: m.Minor + o.Minor, Currency: m.Currency}
	if err := s.Validate(); err != nil {
		return Money{}, err
	}
	return s, nil
}

// Mul returns m times n, for a quantity n >= 0, within MaxMinor.
func (m Money) Mul(n int64) (Money, error) {
	if n < 0 {
		return Money{}, fmt.Errorf("multiply %s by %d: negative quantity", m, n)
	}
	if n != 0 && (m.Minor > math.MaxInt64/n || m.Minor < math.MinInt64/n) {
		return Money{}, fmt.Errorf("multiply %s by %d: overflow", m, n)
	}
	p := Money{Minor: m.Minor * n, Currency: m.Currency}
	if err := p.Validate(); err != nil {
		return Money{}, err
	}
	return p, nil
}

// String formats the amount in major units with the currency's exponent,
// for example "12.50 EUR" or "300 JPY".
func (m Money) String() string {
	e, ok := m.Currency.Exponent()
	if !ok || m.Validate() != nil {
		return fmt.Sprintf("%d %s(minor units, invalid)", m.Minor, m.Currency)
	}
	sign, v := "", m.Minor
	if v < 0 {
		sign, v = "-", -v
	}
	if e == 0 {
		return fmt.Sprintf("%s%d %s", sign, v, m.Currency)
	}
	p := int64(math.Pow10(e))
	return fmt.Sprintf("%s%d.%0*d %s", sign, v/p, e, v%p, m.Currency)
}

// ParseMoney parses the form made by String: "12.50 EUR", "300 JPY". The
// number of decimals must match the currency's exponent exactly.
func ParseMoney(s string) (Money, error) {
	num, cur, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return Money{}, fmt.Errorf("money %q: want \"<amount> <currency>\", for example \"12.50 EUR\"", trunc(s))
	}
	c := Currency(cur)
	e, ok := c.Exponent()
	if !ok {
		return Money{}, fmt.Errorf("money %q: %w", trunc(s), c.Validate())
	}
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	whole, frac, hasFrac := strings.Cut(num, ".")
	if hasFrac != (e > 0) || len(frac) != e {
		return Money{}, fmt.Errorf("money %q: %s takes exactly %d decimals", trunc(s), c, e)
	}
	digits := whole + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" || whole == "" {
		return Money{}, fmt.Errorf("money %q: not a decimal number", trunc(s))
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return Money{}, fmt.Errorf("money %q: %w", trunc(s), err)
	}
	if neg {
		v = -v
	}
	m := Money{Minor: v, Currency: c}
	return m, m.Validate()
}
