package protocol

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestMoneyStringParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		m    Money
		text string
	}{
		{M(1250, "EUR"), "12.50 EUR"},
		{M(5, "EUR"), "0.05 EUR"},
		{M(0, "EUR"), "0.00 EUR"},
		{M(-1250, "EUR"), "-12.50 EUR"},
		{M(-5, "EUR"), "-0.05 EUR"},
		{M(300, "JPY"), "300 JPY"},
		{M(0, "JPY"), "0 JPY"},
		{M(-300, "JPY"), "-300 JPY"},
		{M(1234, "KWD"), "1.234 KWD"},
		{M(7, "KWD"), "0.007 KWD"},
		{M(-1001, "KWD"), "-1.001 KWD"},
		{M(MaxMinor, "EUR"), "10000000000.00 EUR"},
		{M(-MaxMinor, "USD"), "-10000000000.00 USD"},
		{M(MaxMinor, "JPY"), "1000000000000 JPY"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			if got := tc.m.String(); got != tc.text {
				t.Fatalf("String() = %q, want %q", got, tc.text)
			}
			got, err := ParseMoney(tc.text)
			if err != nil {
				t.Fatalf("ParseMoney(%q): %v", tc.text, err)
			}
			if got != tc.m {
				t.Fatalf("ParseMoney(%q) = %#v, want %#v", tc.text, got, tc.m)
			}
		})
	}
}

func TestParseMoneyLenient(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Money
	}{
		{" 12.50 EUR\n", M(1250, "EUR")},
		{"012.50 EUR", M(1250, "EUR")},
		{"-0.00 EUR", M(0, "EUR")},
	} {
		got, err := ParseMoney(tc.text)
		if err != nil || got != tc.want {
			t.Errorf("ParseMoney(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
		}
	}
}

func TestParseMoneyErrors(t *testing.T) {
	for _, tc := range []struct {
		text   string
		reason string
	}{
		{"12.5 EUR", "EUR takes exactly 2 decimals"},
		{"12.500 EUR", "EUR takes exactly 2 decimals"},
		{"12 EUR", "EUR takes exactly 2 decimals"},
		{"12. EUR", "EUR takes exactly 2 decimals"},
		{"300.00 JPY", "JPY takes exactly 0 decimals"},
		{"1.23 KWD", "KWD takes exactly 3 decimals"},
		{"1.2345 KWD", "KWD takes exactly 3 decimals"},
		{".50 EUR", "not a decimal number"},
		{"-.50 EUR", "not a decimal number"},
		{"1,50 EUR", "EUR takes exactly 2 decimals"},
		{"1.5x EUR", "not a decimal number"},
		{"+1.50 EUR", "not a decimal number"},
		{"--1.50 EUR", "not a decimal number"},
		{"1e3 JPY", "not a decimal number"},
		{"- JPY", "not a decimal number"},
		{"12.50 XXX", `currency "XXX": not a supported ISO 4217 code`},
		{"12.50 eur", `currency "eur"`},
		{"12.50", "want \"<amount> <currency>\""},
		{"", "want \"<amount> <currency>\""},
		{"12.50  EUR", "not a supported ISO 4217 code"},
		{"10000000000.01 EUR", "beyond the limit of 1000000000000 minor units"},
		{"-10000000000.01 EUR", "beyond the limit"},
		{"99999999999999999999 JPY", "out of range"},
		{"9223372036854775808 JPY", "out of range"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			m, err := ParseMoney(tc.text)
			if err == nil {
				t.Fatalf("ParseMoney(%q) = %v, want an error", tc.text, m)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.reason)
			}
		})
	}
}

func TestMoneyAdd(t *testing.T) {
	got, err := M(1250, "EUR").Add(M(-250, "EUR"))
	if err != nil || got != M(1000, "EUR") {
		t.Fatalf("12.50 + -2.50 = %v, %v; want 10.00 EUR", got, err)
	}
	if _, err := M(1, "EUR").Add(M(1, "USD")); !errors.Is(err, ErrCurrencyMismatch) {
		t.Errorf("EUR + USD: err = %v, want ErrCurrencyMismatch", err)
	}
	if _, err := M(MaxMinor, "EUR").Add(M(1, "EUR")); err == nil || !strings.Contains(err.Error(), "beyond the limit") {
		t.Errorf("MaxMinor + 1: err = %v, want the limit", err)
	}
	if got, err := M(MaxMinor, "EUR").Add(M(-MaxMinor, "EUR")); err != nil || got != M(0, "EUR") {
		t.Errorf("MaxMinor + -MaxMinor = %v, %v", got, err)
	}
	// Operands beyond the limit are refused, even when their int64 sum
	// would wrap around to something that looks valid.
	if got, err := M(math.MaxInt64, "EUR").Add(M(math.MaxInt64, "EUR")); err == nil {
		t.Errorf("MaxInt64 + MaxInt64 = %v, want an error", got)
	}
	if got, err := M(math.MinInt64, "EUR").Add(M(math.MinInt64+5, "EUR")); err == nil {
		t.Errorf("MinInt64 + MinInt64 = %v, want an error", got)
	}
	if _, err := M(1, "XXX").Add(M(1, "XXX")); err == nil {
		t.Errorf("XXX + XXX: want an error")
	}
}

func TestMoneyMul(t *testing.T) {
	for _, tc := range []struct {
		m    Money
		n    int64
		want Money
	}{
		{M(350, "EUR"), 3, M(1050, "EUR")},
		{M(350, "EUR"), 0, M(0, "EUR")},
		{M(-350, "EUR"), 2, M(-700, "EUR")},
		{M(MaxMinor, "JPY"), 1, M(MaxMinor, "JPY")},
	} {
		got, err := tc.m.Mul(tc.n)
		if err != nil || got != tc.want {
			t.Errorf("%v × %d = %v, %v; want %v", tc.m, tc.n, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name   string
		m      Money
		n      int64
		reason string
	}{
		{"Overflow", M(math.MaxInt64/2+1, "EUR"), 2, "overflow"},
		{"OverflowNegative", M(math.MinInt64/2-1, "EUR"), 2, "overflow"},
		{"OverflowHuge", M(2, "EUR"), math.MaxInt64, "overflow"},
		{"BeyondMaxMinor", M(MaxMinor/2+1, "EUR"), 2, "beyond the limit"},
		{"NegativeQuantity", M(1, "EUR"), -1, "negative quantity"},
		{"MinInt64", M(math.MinInt64, "EUR"), 1, "beyond the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.m.Mul(tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("%d × %d = %v, %v; want an error mentioning %q", tc.m.Minor, tc.n, got, err, tc.reason)
			}
		})
	}
}

func TestMoneyValidate(t *testing.T) {
	for _, m := range []Money{M(MaxMinor, "EUR"), M(-MaxMinor, "EUR"), M(0, "JPY")} {
		if err := m.Validate(); err != nil {
			t.Errorf("%v: %v", m, err)
		}
	}
	for _, m := range []Money{M(MaxMinor+1, "EUR"), M(-MaxMinor-1, "EUR"), M(1, ""), M(1, "XXX"), {}} {
		if err := m.Validate(); err == nil {
			t.Errorf("%#v: valid, want an error", m)
		}
	}
	if got, want := MaxMinor, int64(1_000_000_000_000); got != want {
		t.Fatalf("MaxMinor = %d, want %d", got, want)
	}
	// Sums of MaxPassengers-worth of bounded amounts cannot overflow.
	if MaxMinor > math.MaxInt64/(MaxLines*MaxQuantity*MaxPassengers) {
		t.Fatalf("MaxMinor too large for a flight's sums to stay in int64")
	}
}

func TestCurrencyExponent(t *testing.T) {
	for c, want := range map[Currency]int{"EUR": 2, "USD": 2, "JPY": 0, "KRW": 0, "ISK": 0, "KWD": 3, "BHD": 3, "OMR": 3} {
		if got, ok := c.Exponent(); !ok || got != want {
			t.Errorf("%s exponent = %d, %v; want %d", c, got, ok, want)
		}
	}
	for _, c := range []Currency{"", "eur", "EURO", "XAU", "XTS"} {
		if _, ok := c.Exponent(); ok {
			t.Errorf("%q has an exponent, want unsupported", c)
		}
		if err := c.Validate(); err == nil {
			t.Errorf("%q: valid, want an error", c)
		}
	}
	if got := M(5, "XXX").String(); got != "5 XXX(minor units, invalid)" {
		t.Errorf("unsupported currency String() = %q", got)
	}
}
