package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// cardNetworks are the networks ground accepts, in the order help lists them.
var cardNetworks = passengerapi.Networks

// parseFunding turns the funding flags into a funding source, or nil when
// none was given (the passenger's funding is then left as it is). A card is
// checked here with ground's own rules, so a typo is a command-line error
// rather than a round trip.
func parseFunding(network, token, last4, exp string, wallet bool, now time.Time) (*passengerapi.Funding, error) {
	cardFields := token != "" || last4 != "" || exp != ""
	switch {
	case wallet && (network != "" || cardFields):
		return nil, errors.New("give --card (with --card-token, --last4, --exp) or --wallet, not both")
	case wallet:
		return &passengerapi.Funding{Kind: passengerapi.FundingWallet}, nil
	case network == "" && cardFields:
		return nil, errors.New("--card-token, --last4 and --exp go with --card NETWORK")
	case network == "":
		return nil, nil
	}
	known := false
	for _, n := range cardNetworks {
		known = known || n == network
	}
	if !known {
		return nil, fmt.Errorf("--card %q: want visa, mastercard, amex, discover or jcb", network)
	}
	if token == "" || last4 == "" || exp == "" {
		return nil, fmt.Errorf("--card %s needs --card-token, --last4 and --exp", network)
	}
	month, year, err := parseExpiry(exp)
	if err != nil {
		return nil, err
	}
	f := &passengerapi.Funding{Kind: passengerapi.FundingCard, Network: network, Token: token, Last4: last4, ExpMonth: month, ExpYear: year}
	if err := f.Validate(now); err != nil {
		return nil, fmt.Errorf("--card: %v", err)
	}
	return f, nil
}

// parseExpiry parses a card expiry "MM/YYYY".
func parseExpiry(s string) (month, year int, err error) {
	mm, yyyy, ok := strings.Cut(s, "/")
	if ok && len(mm) == 2 && len(yyyy) == 4 && allDigits(mm) && allDigits(yyyy) {
		month, _ = strconv.Atoi(mm)
		year, _ = strconv.Atoi(yyyy)
		if month >= 1 && month <= 12 {
			return month, year, nil
		}
	}
	return 0, 0, fmt.Errorf("--exp %q: want MM/YYYY, for example 09/2029", s)
}

// parseTopUp parses the --top-up amount in currency c and bounds it as
// ground does: more than zero, at most passengerapi.MaxTopUpMajor.
func parseTopUp(s string, c protocol.Currency) (protocol.Money, error) {
	if err := c.Validate(); err != nil {
		return protocol.Money{}, fmt.Errorf("--currency: %w", err)
	}
	m, err := parseAmount(s, c)
	if err != nil {
		return protocol.Money{}, fmt.Errorf("--top-up %q: %w", s, err)
	}
	e, _ := c.Exponent()
	limit := int64(passengerapi.MaxTopUpMajor)
	for range e {
		limit *= 10
	}
	if m.Minor > limit {
		return protocol.Money{}, fmt.Errorf("--top-up %q: at most %s at a time", s, protocol.M(limit, c))
	}
	return m, nil
}

// maxWholeDigits bounds the integer part of an amount, so that the minor
// units always fit in an int64 (protocol.MaxMinor is 10^12).
const maxWholeDigits = 13

// parseAmount parses a positive decimal amount in major units of c: "12.50",
// "12.5" or "12" for EUR, "300" for JPY. It works on the digits as integers,
// never through a float, and refuses more decimals than the currency has.
func parseAmount(s string, c protocol.Currency) (protocol.Money, error) {
	e, ok := c.Exponent()
	if !ok {
		return protocol.Money{}, c.Validate()
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	switch {
	case !allDigits(whole) || (hasFrac && !allDigits(frac)):
		if e == 0 {
			return protocol.Money{}, fmt.Errorf("not a positive whole amount of %s, for example 300", c)
		}
		return protocol.Money{}, fmt.Errorf("not a positive decimal amount, for example 12.50")
	case hasFrac && e == 0:
		return protocol.Money{}, fmt.Errorf("%s has no decimals", c)
	case len(frac) > e:
		return protocol.Money{}, fmt.Errorf("%s has %d decimals", c, e)
	case len(strings.TrimLeft(whole, "0")) > maxWholeDigits:
		return protocol.Money{}, errors.New("too large")
	}
	v, err := strconv.ParseInt(whole+frac+strings.Repeat("0", e-len(frac)), 10, 64)
	if err != nil {
		return protocol.Money{}, err
	}
	if v == 0 {
		return protocol.Money{}, errors.New("must be more than zero")
	}
	m := protocol.M(v, c)
	return m, m.Validate()
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
