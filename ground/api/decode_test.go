package api

import (
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/registry"
)

// TestDecodeErrorsSpeakJSON pins the body errors: field names as in the
// JSON and JSON types, never a Go type or package.
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"amount":"50.00 EUR","ref":"5f0c6b3e9a2d4c71b8e0f4a6d2c9e1b7"}`, "amount: got a JSON string, want an object"},
		{`{"amount":{"minor":"50","currency":"EUR"}}`, "amount.minor: got a JSON string, want an integer"},
		{`{"amount":{"minor":50.5,"currency":"EUR"}}`, "amount.minor: got a JSON number 50.5, want an integer"},
		{`{"amount":{"minor":50,"currency":"EUR"},"ref":"xyz"}`, `ref: id "xyz": want 32 hex characters`},
		{`{"amount":{"minor":"50","currency":"EUR"},"ref":"00"}`, `ref: id "00": want 32 hex characters`},
		{`{"ref":"5f0c6b3e9a2d4c71b8e0f4a6d2c9e1b7","amount":{"minor":1,"currency":"EUR"},"memo":"x"}`, `unknown field "memo"`},
		{`[1]`, "the body: got a JSON array, want an object"},
		{`{"amount":`, "malformed JSON: the body ends early"},
		{`{"amount":{}} {}`, "malformed JSON: data after the object"},
		{``, "empty body: want a JSON object"},
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			var r TopUpRequest
			err := (&call{body: []byte(c.body)}).decode(&r)
			if registry.ErrorCode(err) != registry.CodeInvalid {
				t.Fatalf("code %s, want invalid (%v)", registry.ErrorCode(err), err)
			}
			msg := registry.ErrorMessage(err)
			if msg != c.want {
				t.Errorf("message %q, want %q", msg, c.want)
			}
			for _, goWord := range []string{"Go ", "struct", "protocol.", "passengerapi.", "int64"} {
				if strings.Contains(msg, goWord) {
					t.Errorf("message %q speaks Go (%q)", msg, goWord)
				}
			}
		})
	}
}
