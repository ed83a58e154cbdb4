package protocol

import (
	"bytes"
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
