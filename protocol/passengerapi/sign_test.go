package passengerapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// TestSigningExamples recomputes the worked signing examples of API.md
// section 2 and checks the document shows exactly those values.
func TestSigningExamples(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("airtab example device key 1"))
	key, err := crypto.PrivateKeyFromSeed(crypto.Device, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, target, nonce, body string
	}{
		{"TopUp", "POST", "/v1/me/wallet/topups", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", `{"amount":{"minor":5000,"currency":"EUR"},"ref":"5f0c6b3e9a2d4c71b8e0f4a6d2c9e1b7"}`},
		{"GetWithQueryNoBody", "GET", "/v1/me/charges?limit=20", "00112233445566778899aabbccddeeff", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := passengerapi.SigningString(c.method, c.target, 1795161600, c.nonce, []byte(c.body))
			sig := base64.StdEncoding.EncodeToString(key.Sign(passengerapi.SigningDomain, msg))
			shown := strings.ReplaceAll(string(msg), "\n", `\n`)
			for _, want := range []string{shown, sig, c.body} {
				if !strings.Contains(string(doc), want) {
					t.Errorf("API.md does not show %q", want)
				}
			}
			// SignRequest signs the same string for the same request.
			req, _ := http.NewRequest(c.method, "http://ground.example"+c.target, strings.NewReader(c.body))
			got := passengerapi.SignRequest(req, []byte(c.body), key, time.Unix(1795161600, 0), fixedNonce(c.nonce))
			if string(got) != string(msg) || req.Header.Get(passengerapi.HeaderSignature) != sig {
				t.Errorf("SignRequest signed %q with %s, want %q with %s", got, req.Header.Get(passengerapi.HeaderSignature), msg, sig)
			}
		})
	}
	if !strings.Contains(string(doc), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") {
		t.Error("API.md does not give the empty body's hash")
	}
}

// fixedNonce reads as the nonce's 16 bytes.
type fixedNonce string

func (n fixedNonce) Read(p []byte) (int, error) {
	var b [16]byte
	for i := range b {
		hi, lo := unhex(n[2*i]), unhex(n[2*i+1])
		b[i] = hi<<4 | lo
	}
	return copy(p, b[:]), nil
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}
