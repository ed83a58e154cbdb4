package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// contractDoc is the written passenger API contract whose examples the test
// runs.
const contractDoc = "../../protocol/passengerapi/API.md"

// example is one request of the contract with its documented answer.
type example struct {
	line     int // in the document
	method   string
	target   string
	header   http.Header
	body     []byte
	status   int
	response []byte
}

// parseExamples reads the ```http blocks of the document in order: each
// request block is followed by the block of its answer.
func parseExamples(t *testing.T, doc []byte) []example {
	t.Helper()
	type block struct {
		line int
		text string
	}
	var blocks []block
	sc := bufio.NewScanner(bytes.NewReader(doc))
	in, n, start := false, 0, 0
	var cur strings.Builder
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case !in && l == "```http":
			in, start = true, n
			cur.Reset()
		case in && l == "```":
			in = false
			blocks = append(blocks, block{start, cur.String()})
		case in:
			cur.WriteString(l + "\n")
		}
	}
	var out []example
	for i := 0; i < len(blocks); i++ {
		req := blocks[i]
		if strings.HasPrefix(req.text, "HTTP/") {
			t.Fatalf("%s:%d: an answer without a request before it", contractDoc, req.line)
		}
		if i+1 >= len(blocks) || !strings.HasPrefix(blocks[i+1].text, "HTTP/") {
			t.Fatalf("%s:%d: a request without its answer after it", contractDoc, req.line)
		}
		e := example{line: req.line, header: http.Header{}}
		head, body, _ := strings.Cut(req.text, "\n\n")
		lines := strings.Split(strings.TrimSpace(head), "\n")
		f := strings.Fields(lines[0])
		if len(f) != 3 {
			t.Fatalf("%s:%d: request line %q", contractDoc, req.line, lines[0])
		}
		e.method, e.target = f[0], f[1]
		for _, h := range lines[1:] {
			k, v, ok := strings.Cut(h, ": ")
			if !ok {
				t.Fatalf("%s:%d: header %q", contractDoc, req.line, h)
			}
			e.header.Set(k, v)
		}
		e.body = []byte(strings.TrimSpace(body))
		resp := blocks[i+1]
		rhead, rbody, _ := strings.Cut(resp.text, "\n\n")
		rf := strings.Fields(strings.SplitN(rhead, "\n", 2)[0])
		var err error
		if e.status, err = strconv.Atoi(rf[1]); err != nil {
			t.Fatalf("%s:%d: status line %q", contractDoc, resp.line, rhead)
		}
		e.response = []byte(strings.TrimSpace(rbody))
		out = append(out, e)
		i++
	}
	return out
}

// exampleKeys are the document's device keys, by key id.
func exampleKeys(t *testing.T) map[string]crypto.PrivateKey {
	t.Helper()
	keys := map[string]crypto.PrivateKey{}
	for _, n := range []string{"airtab example device key 1", "airtab example device key 2"} {
		seed := sha256.Sum256([]byte(n))
		k, err := crypto.PrivateKeyFromSeed(crypto.Device, seed[:])
		if err != nil {
			t.Fatal(err)
		}
		keys[k.ID().String()] = k
	}
	return keys
}

var (
	hexID   = regexp.MustCompile(`^[0-9a-f]{32}$`)
	base64R = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)
)

// match compares an answer with the documented one: the same keys in every
// object, the same values, where "<id>" stands for any id and "<base64>"
// for any standard base64.
func match(path string, doc, got any) error {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %v, want an object", path, got)
		}
		for k := range g {
			if _, ok := d[k]; !ok {
				return fmt.Errorf("%s.%s: in the answer (%v) but not documented", path, k, g[k])
			}
		}
		for k, v := range d {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: documented but not in the answer", path, k)
			}
			if err := match(path+"."+k, v, gv); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(d) {
			return fmt.Errorf("%s: got %v, want %d elements", path, got, len(d))
		}
		for i := range d {
			if err := match(fmt.Sprintf("%s[%d]", path, i), d[i], g[i]); err != nil {
				return err
			}
		}
	case string:
		s, _ := got.(string)
		switch d {
		case "<id>":
			if !hexID.MatchString(s) {
				return fmt.Errorf("%s: got %v, want an id", path, got)
			}
		case "<base64>":
			if _, err := base64.StdEncoding.Strict().DecodeString(s); err != nil || !base64R.MatchString(s) {
				return fmt.Errorf("%s: got %v, want standard base64", path, got)
			}
		default:
			if s != d {
				return fmt.Errorf("%s: got %q, want %q", path, got, d)
			}
		}
	default:
		if fmt.Sprint(doc) != fmt.Sprint(got) {
			return fmt.Errorf("%s: got %v, want %v", path, got, doc)
		}
	}
	return nil
}

// TestContractExamples sends every example request of the passenger API
// contract, in order, to a real ground server whose clock reads the
// document's time, and checks the documented status and answer.
func TestContractExamples(t *testing.T) {
	doc, err := os.ReadFile(contractDoc)
	if err != nil {
		t.Fatal(err)
	}
	examples := parseExamples(t, doc)
	if len(examples) < 12 {
		t.Fatalf("%d examples in %s; the contract has one per call and its errors", len(examples), contractDoc)
	}
	now := time.Unix(1795161600, 0).UTC() // the document's 2026-11-20T08:00:00Z
	dir := t.TempDir()
	m := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Clock: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Scorer: registry.StaticScorer{ByRef: map[string]int{"alice": 720}}}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	token, err := os.ReadFile(filepath.Join(dir, "backoffice.token"))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.HTTPAddr()
	bo := &api.Client{BaseURL: base, Token: strings.TrimSpace(string(token)), Clock: func() time.Time { return now }}
	ctx := context.Background()
	ak, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bo.RegisterAircraft(ctx, "D-AIUA", ak.Public(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := bo.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: "2026-11-21", Aircraft: "D-AIUA", Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR")}}}); err != nil {
		t.Fatal(err)
	}
	keys := exampleKeys(t)
	for _, e := range examples {
		t.Run(fmt.Sprintf("line%d_%s_%s", e.line, e.method, strings.TrimPrefix(e.target, "/v1/")), func(t *testing.T) {
			var body io.Reader
			if len(e.body) > 0 {
				body = bytes.NewReader(e.body)
			}
			req, err := http.NewRequest(e.method, base+e.target, body)
			if err != nil {
				t.Fatal(err)
			}
			if ct := e.header.Get("Content-Type"); ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			if kid := e.header.Get(passengerapi.HeaderDevice); kid != "" {
				k, ok := keys[kid]
				if !ok {
					t.Fatalf("%s:%d: no example key with id %s", contractDoc, e.line, kid)
				}
				if got := e.header.Get(passengerapi.HeaderTimestamp); got != strconv.FormatInt(now.Unix(), 10) {
					t.Errorf("%s:%d: timestamp %s, want the document's clock %d", contractDoc, e.line, got, now.Unix())
				}
				msg := passengerapi.SigningString(e.method, e.target, now.Unix(), e.header.Get(passengerapi.HeaderNonce), e.body)
				req.Header.Set(passengerapi.HeaderDevice, kid)
				req.Header.Set(passengerapi.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
				req.Header.Set(passengerapi.HeaderNonce, e.header.Get(passengerapi.HeaderNonce))
				req.Header.Set(passengerapi.HeaderSignature, base64.StdEncoding.EncodeToString(k.Sign(passengerapi.SigningDomain, msg)))
				if e.header.Get(passengerapi.HeaderProof) != "" {
					var dr passengerapi.DeviceRequest
					if err := json.Unmarshal(e.body, &dr); err != nil {
						t.Fatal(err)
					}
					pub, err := crypto.ParsePublicKey(crypto.Device, dr.DeviceKey)
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set(passengerapi.HeaderProof, base64.StdEncoding.EncodeToString(keys[pub.ID().String()].Sign(passengerapi.SigningDomain, msg)))
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != e.status {
				t.Fatalf("%s:%d: HTTP %d, documented %d; answer:\n%s", contractDoc, e.line, resp.StatusCode, e.status, got)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var want, have any
			if err := json.Unmarshal(e.response, &want); err != nil {
				t.Fatalf("%s:%d: documented answer is not JSON: %v", contractDoc, e.line, err)
			}
			if err := json.Unmarshal(got, &have); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, got)
			}
			if err := match("answer", want, have); err != nil {
				t.Errorf("%s:%d: %v\nfull answer:\n%s", contractDoc, e.line, err, got)
			}
		})
	}
}
