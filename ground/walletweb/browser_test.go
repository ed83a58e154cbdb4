package walletweb

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/airtab/airtab/protocol/browsertest"
)

// testServer serves the wallet at /wallet/ and, for tests only, the files
// of testdata/ and the protocol's vectors under /test/.
func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(Prefix, New())
	mux.Handle("/test/", http.StripPrefix("/test/", http.FileServer(http.Dir("testdata"))))
	mux.HandleFunc("/test/vectors.json", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "../../protocol/testdata/vectors.json")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// vectorResult is what testdata/vectors_check.js reports.
type vectorResult struct {
	Valid    int      `json:"valid"`
	Invalid  int      `json:"invalid"`
	Unsigned int      `json:"unsigned"`
	Failures []string `json:"failures"`
}

// TestVectorsInBrowser checks the wallet's JavaScript against every vector
// of protocol/testdata/vectors.json in Chromium: valid ones rebuilt byte for
// byte and verified, invalid ones refused with their class.
func TestVectorsInBrowser(t *testing.T) {
	raw, err := os.ReadFile("../../protocol/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Valid, Invalid, Unsigned []json.RawMessage
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL + "/test/blank.html")
	got := browsertest.Eval[vectorResult](b, `(async () => {
		const m = await import("/test/vectors_check.js");
		const f = await (await fetch("/test/vectors.json")).json();
		return m.run(f);
	})()`)
	for _, fl := range got.Failures {
		t.Errorf("vector %s", fl)
	}
	if got.Valid != len(f.Valid) || got.Invalid != len(f.Invalid) || got.Unsigned != len(f.Unsigned) {
		t.Errorf("passed valid %d/%d, invalid %d/%d, unsigned %d/%d", got.Valid, len(f.Valid), got.Invalid, len(f.Invalid), got.Unsigned, len(f.Unsigned))
	}
	t.Logf("valid %d, invalid %d, unsigned %d vectors passed", got.Valid, got.Invalid, got.Unsigned)
	if t.Failed() {
		t.Logf("console:\n%s", strings.Join(b.Logs(), "\n"))
	}
}
