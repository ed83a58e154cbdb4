package protocol

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// TestSigStructureEncoding holds the hand-built Sig_structure to the
// canonical encoder's bytes, at every byte-string length encoding.
func TestSigStructureEncoding(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536} {
		prot, aad, payload := bytes.Repeat([]byte{1}, n%40), bytes.Repeat([]byte{2}, n/3), bytes.Repeat([]byte{3}, n)
		for _, c := range [][3][]byte{{prot, aad, payload}, {nil, nil, nil}, {payload, prot, aad}} {
			got, err := sigStructure(c[0], c[1], c[2])
			if err != nil {
				t.Fatal(err)
			}
			want, err := marshal([]any{sigStructName, c[0], c[1], c[2]})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("lengths %d %d %d: sigStructure = %x\nencoder gives %x", len(c[0]), len(c[1]), len(c[2]), got, want)
			}
		}
	}
}

// TestSignEncoding holds the protected header and the COSE_Sign1 that sign
// builds by hand to the canonical encoder's bytes, for every signed kind.
func TestSignEncoding(t *testing.T) {
	w := newWorld(t, "sign encoding")
	for _, s := range validSamples(t, w) {
		if s.raw[0] != coseTag {
			continue // an unsigned kind
		}
		t.Run(s.name, func(t *testing.T) {
			_, prot, payload, sig, err := strictEnvelope(s.name, s.raw[1:], len(s.raw))
			if err != nil {
				t.Fatal(err)
			}
			var h coseHeader
			if err := decodeStrict("header", prot, 32, &h); err != nil {
				t.Fatal(err)
			}
			wantProt, err := marshal(coseHeader{Alg: coseAlgEdDSA, Kid: h.Kid})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(prot, wantProt) {
				t.Errorf("protected header %x, encoder gives %x", prot, wantProt)
			}
			enc, err := marshal(coseSign1{Protected: wantProt, Unprotected: cbor.RawMessage{emptyMapCBOR}, Payload: payload, Signature: sig})
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte{coseTag}, enc...); !bytes.Equal(s.raw, want) {
				t.Errorf("signed %x\nencoder gives %x", s.raw, want)
			}
		})
	}
}

// TestFixedEncoding holds ID's and Hash's CBOR methods to the generic
// encoder and decoder they stand in for.
func TestFixedEncoding(t *testing.T) {
	id := ID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	h := Sum([]byte("fixed"))
	for _, c := range []struct {
		name string
		v    cbor.Marshaler
		raw  []byte
	}{{"ID", id, id[:]}, {"Hash", h, h[:]}} {
		got, err := c.v.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		want, err := encMode.Marshal(c.raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.MarshalCBOR = %x, encoder gives %x", c.name, got, want)
		}
	}
	// Every encoding near the canonical one decodes as the decoder alone
	// decodes it: the same value, or an error.
	for _, n := range []int{15, 16, 17} {
		raw := bytes.Repeat([]byte{7}, n)
		for _, in := range [][]byte{
			cborArgHead(2, uint64(n)), {0x58, byte(n)}, {0x59, 0, byte(n)}, {0x40 + byte(n)}, cborArgHead(3, uint64(n)), {0x5f},
		} {
			in = joinBytes(in, raw)
			for _, b := range [][]byte{in, joinBytes(in, []byte{0})} {
				var got, want [16]byte
				gotErr := unmarshalFixed(b, got[:], "id")
				var dec []byte
				wantErr := decMode.Unmarshal(b, &dec)
				if wantErr == nil && len(dec) != 16 {
					wantErr = errTestLength
				}
				copy(want[:], dec)
				if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && got != want) {
					t.Errorf("unmarshalFixed(%x) = %x, %v; decoder %x, %v", b, got, gotErr, want, wantErr)
				}
			}
		}
	}
}

var errTestLength = errors.New("length")
