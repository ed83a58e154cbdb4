package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/fxamacker/cbor/v2"
)

// Signed messages are COSE_Sign1 structures (RFC 9052, section 4.2) wrapped
// in CBOR tag 18, as in the EU Digital COVID Certificate:
//
//	18([ protected: bstr .cbor {1: -8, 4: kid}, unprotected: {}, payload: bstr, signature: bstr ])
//
// alg -8 is EdDSA (Ed25519) and kid is the signer's 8-byte key id. The
// signature is plain Ed25519 over the RFC 9052 Sig_structure
//
//	["Signature1", protected, external_aad, payload]
//
// so stock COSE libraries sign and verify Airtab messages. Domain separation
// lives inside external_aad, which is authenticated but never transmitted:
//
//	external_aad = len(domain) || domain || kind-specific bytes
//
// where domain names the message kind (see crypto.Domain) and the
// kind-specific bytes are empty except where a message kind says otherwise
// (payment codes and order consents bind the credential id there).

const (
	coseTag       = 0xd2 // CBOR tag 18, COSE_Sign1, as one byte
	coseAlgEdDSA  = -8
	emptyMapCBOR  = 0xa0
	sigStructName = "Signature1"
)

// message is implemented by every signed message body.
type message interface {
	kind() kind
	validate() error
}

// kind is the static description of a signed message kind.
type kind struct {
	name    string        // for errors: "credential"
	domain  crypto.Domain // signing domain
	maxSize int           // cap on the whole COSE_Sign1, in bytes
	signer  crypto.Purpose
}

type coseHeader struct {
	Alg int64  `cbor:"1,keyasint,omitzero"`
	Kid []byte `cbor:"4,keyasint,omitzero"`
}

type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// Signed is a decoded signed message: the body, the signer's key id and the
// exact bytes received. Parse checks the form only; call Verify or
// VerifyTrusted before believing anything in Body.
type Signed[T message] struct {
	Body  T
	KeyID crypto.KeyID
	// Raw is the complete COSE_Sign1 encoding. It is what travels, what is
	// hashed into the invoice chain and what is stored.
	Raw []byte

	protected []byte
	payload   []byte
	signature []byte
	parts     any // what validating Body parsed of messages it embeds (see partsValidator)
}

// fastDecoder is a message body that recognizes its commonest canonical
// encoding by its bytes and decodes it exactly as decodeStrict would; for
// any other input decodeFast returns false, leaving the body untouched.
type fastDecoder interface {
	decodeFast(payload []byte) bool
}

// partsValidator is a message body whose validation parses signed messages
// it embeds; Parse keeps what it returns on the Signed, so a reader that
// wants them does not parse them again (SaleProof).
type partsValidator interface {
	validateParts() (any, error)
}

// ErrSignature is matched by every signature verification failure.
var ErrSignature = errors.New("signature does not verify")

// Sign encodes body canonically and signs it with key under the body's
// domain. external is the kind-specific part of the external_aad (nil for
// most kinds; see ExternalAAD).
func Sign[T message](body T, key crypto.PrivateKey, external []byte) (*Signed[T], error) {
	k := body.kind()
	if key.Purpose() != k.signer {
		return nil, fmt.Errorf("sign %s: key is a %s key, want %s", k.name, key.Purpose(), k.signer)
	}
	if err := body.validate(); err != nil {
		return nil, fmt.Errorf("sign %s: %w", k.name, err)
	}
	return sign(body, key, external)
}

// SignTrusted is Sign without the validation of body, for a caller that
// built body only from parts it has already parsed strictly and checked:
// the cabin server's writer makes each invoice from a payment code it
// parsed and verified, the verified manifest and its own sequence, and a
// sale's validation would parse that payment code a second time. The
// result is the same as Sign's for a valid body; Parse, on every reader,
// still validates everything. Anyone else calls Sign.
func SignTrusted[T message](body T, key crypto.PrivateKey, external []byte) (*Signed[T], error) {
	k := body.kind()
	if key.Purpose() != k.signer {
		return nil, fmt.Errorf("sign %s: key is a %s key, want %s", k.name, key.Purpose(), k.signer)
	}
	return sign(body, key, external)
}

// sign encodes and signs body, whose key and validity the caller checked.
func sign[T message](body T, key crypto.PrivateKey, external []byte) (*Signed[T], error) {
	k := body.kind()
	payload, err := marshal(body)
	if err != nil {
		return nil, fmt.Errorf("sign %s: encode: %w", k.name, err)
	}
	// Keep in Body exactly what the wire says (times in whole seconds), so
	// the signer and every verifier see the same values.
	var wire T
	if wb, ok := any(&body).(wireBody[T]); ok {
		if wire, err = wb.wire(); err != nil {
			return nil, fmt.Errorf("sign %s: %w", k.name, err)
		}
	} else if err := decMode.Unmarshal(payload, &wire); err != nil {
		return nil, fmt.Errorf("sign %s: decode back: %w", k.name, err)
	}
	kid := key.ID()
	// The canonical {1: -8, 4: kid} and 18([protected, {}, payload,
	// signature]), built by hand as Parse's fast path reads them
	// (TestSignEncoding holds them to the encoder's bytes).
	protected := append(append(make([]byte, 0, len(fastHeaderPrefix)+crypto.KeyIDSize), fastHeaderPrefix...), kid[:]...)
	tbs, err := sigStructure(protected, ExternalAAD(k.domain, external), payload)
	if err != nil {
		return nil, err
	}
	sig := key.SignRaw(tbs)
	raw := make([]byte, 0, 2+1+len(protected)+1+9+len(payload)+2+len(sig))
	raw = append(raw, coseTag, 0x84)
	raw = appendCBORBytes(raw, protected)
	raw = append(raw, emptyMapCBOR)
	raw = appendCBORBytes(raw, payload)
	raw = appendCBORBytes(raw, sig)
	if len(raw) > k.maxSize {
		return nil, fmt.Errorf("sign %s: %d bytes exceeds the cap of %d", k.name, len(raw), k.maxSize)
	}
	return &Signed[T]{Body: wire, KeyID: kid, Raw: raw, protected: protected, payload: payload, signature: sig}, nil
}

// Parse strictly decodes a signed message of kind T without checking its
// signature: size cap, COSE structure, header, canonical CBOR, unknown and
// duplicate fields, version and field validity.
func Parse[T message](b []byte) (*Signed[T], error) {
	var zero T
	k := zero.kind()
	name := k.name
	if len(b) == 0 {
		return nil, decodeErr(name, "empty input")
	}
	if len(b) > k.maxSize {
		return nil, decodeErr(name, "size %d bytes exceeds the cap of %d", len(b), k.maxSize)
	}
	if b[0] != coseTag {
		return nil, decodeErr(name, "not a COSE_Sign1 message (want CBOR tag 18)")
	}
	raw := bytes.Clone(b)
	s := &Signed[T]{Raw: raw}
	if protected, payload, sig, ok := fastEnvelope(raw[1:]); ok {
		s.protected, s.payload, s.signature = protected, payload, sig
		s.KeyID = crypto.KeyID(protected[len(fastHeaderPrefix):])
	} else {
		var err error
		if s.KeyID, s.protected, s.payload, s.signature, err = strictEnvelope(name, raw[1:], k.maxSize); err != nil {
			return nil, err
		}
	}
	if fd, ok := any(&s.Body).(fastDecoder); !ok || !fd.decodeFast(s.payload) {
		if err := decodeStrict(name, s.payload, k.maxSize, &s.Body); err != nil {
			return nil, err
		}
	}
	var err error
	if pv, ok := any(&s.Body).(partsValidator); ok {
		s.parts, err = pv.validateParts()
	} else {
		err = s.Body.validate()
	}
	if err != nil {
		return nil, &DecodeError{Kind: name, Reason: "invalid", Err: err}
	}
	return s, nil
}

// Verify checks the signature with pub, which must have the signer purpose of
// the kind and the key id named in the header.
func (s *Signed[T]) Verify(pub crypto.PublicKey, external []byte) error {
	k := s.Body.kind()
	if pub.Purpose() != k.signer {
		return fmt.Errorf("verify %s: key is a %s key, want %s: %w", k.name, pub.Purpose(), k.signer, ErrSignature)
	}
	if pub.ID() != s.KeyID {
		return fmt.Errorf("verify %s: signed by key %s, not %s: %w", k.name, s.KeyID, pub.ID(), ErrSignature)
	}
	tbs, err := sigStructure(s.protected, ExternalAAD(k.domain, external), s.payload)
	if err != nil {
		return err
	}
	if !pub.VerifyRaw(tbs, s.signature) {
		return fmt.Errorf("verify %s with key %s: %w", k.name, s.KeyID, ErrSignature)
	}
	return nil
}

// AddToBatch queues the signature, as Verify would check it with pub, in
// b: a verifier with many messages in hand checks them together
// (crypto.Batch.Verify) and reads the answer at the returned index. It
// makes Verify's checks that need no arithmetic first, and returns the
// error Verify would for a key of the wrong purpose or id; nothing is
// queued then.
func (s *Signed[T]) AddToBatch(b *crypto.Batch, pub crypto.PublicKey, external []byte) (int, error) {
	k := s.Body.kind()
	if pub.Purpose() != k.signer {
		return 0, fmt.Errorf("verify %s: key is a %s key, want %s: %w", k.name, pub.Purpose(), k.signer, ErrSignature)
	}
	if pub.ID() != s.KeyID {
		return 0, fmt.Errorf("verify %s: signed by key %s, not %s: %w", k.name, s.KeyID, pub.ID(), ErrSignature)
	}
	tbs, err := sigStructure(s.protected, ExternalAAD(k.domain, external), s.payload)
	if err != nil {
		return 0, err
	}
	return b.AddRaw(pub, tbs, s.signature), nil
}

// VerifyTrusted checks the signature against every key in tl with the
// message's key id and the kind's signer purpose that is valid at time at.
// It returns the key that verified.
func (s *Signed[T]) VerifyTrusted(tl *crypto.TrustList, at time.Time, external []byte) (crypto.PublicKey, error) {
	k := s.Body.kind()
	tbs, err := sigStructure(s.protected, ExternalAAD(k.domain, external), s.payload)
	if err != nil {
		return crypto.PublicKey{}, err
	}
	pub, err := tl.VerifyRaw(s.KeyID, k.signer, at, tbs, s.signature)
	if err != nil {
		return crypto.PublicKey{}, fmt.Errorf("verify %s: %w", k.name, errors.Join(ErrSignature, err))
	}
	return pub, nil
}

// Hash returns the SHA-256 of the raw signed bytes.
func (s *Signed[T]) Hash() Hash { return Sum(s.Raw) }

// ExternalAAD returns the COSE external_aad of a message of the kind signed
// under domain: len(domain) as one byte, the domain's ASCII bytes, then the
// kind-specific bytes (the credential id for payment codes and order
// consents, nothing for other kinds). Because every kind has its own domain,
// a signature over one kind never verifies as another, even for identical
// payloads, while the Sig_structure stays exactly RFC 9052's.
func ExternalAAD(domain crypto.Domain, specific []byte) []byte {
	return domain.Frame(specific)
}

// sigStructure returns the canonical CBOR of the RFC 9052 Sig_structure
// ["Signature1", protected, external_aad, payload], built by hand: every
// signature made and checked encodes one, and the generic encoder spent
// more on the []any than on the bytes (TestSigStructureEncoding holds it to
// the encoder's bytes).
func sigStructure(protected, externalAAD, payload []byte) ([]byte, error) {
	b := make([]byte, 0, 1+1+len(sigStructName)+3*9+len(protected)+len(externalAAD)+len(payload))
	b = append(b, 0x84, 0x60+byte(len(sigStructName)))
	b = append(b, sigStructName...)
	b = appendCBORBytes(b, protected)
	b = appendCBORBytes(b, externalAAD)
	b = appendCBORBytes(b, payload)
	return b, nil
}

// appendCBORBytes appends s to b as a CBOR byte string with the shortest
// definite length (RFC 8949 core deterministic encoding).
func appendCBORBytes(b, s []byte) []byte {
	const major = 2 << 5
	switch n := uint64(len(s)); {
	case n < 24:
		b = append(b, major|byte(n))
	case n <= math.MaxUint8:
		b = append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= math.MaxUint32:
		b = binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, major|27), n)
	}
	return append(b, s...)
}

// strictEnvelope decodes the COSE_Sign1 array env (after its tag) with the
// strict decoder and checks its header and signature size; name names the
// message kind in errors.
func strictEnvelope(name string, env []byte, max int) (kid crypto.KeyID, protected, payload, sig []byte, err error) {
	var e coseSign1
	if err := decodeStrict(name+" envelope", env, max, &e); err != nil {
		return kid, nil, nil, nil, err
	}
	if !bytes.Equal(e.Unprotected, []byte{emptyMapCBOR}) {
		return kid, nil, nil, nil, decodeErr(name, "unprotected header must be empty")
	}
	var h coseHeader
	if err := decodeStrict(name+" header", e.Protected, 32, &h); err != nil {
		return kid, nil, nil, nil, err
	}
	if h.Alg != coseAlgEdDSA {
		return kid, nil, nil, nil, decodeErr(name, "algorithm %d, want EdDSA (-8)", h.Alg)
	}
	kid, err = crypto.KeyIDFromBytes(h.Kid)
	if err != nil {
		return kid, nil, nil, nil, &DecodeError{Kind: name, Reason: "bad key id", Err: err}
	}
	if len(e.Signature) != crypto.SignatureSize {
		return kid, nil, nil, nil, decodeErr(name, "signature is %d bytes, want %d", len(e.Signature), crypto.SignatureSize)
	}
	return kid, e.Protected, e.Payload, e.Signature, nil
}

// fastHeaderPrefix is the canonical protected header {1: -8, 4: kid} up to
// the 8 bytes of the key id: the only protected header Parse accepts.
var fastHeaderPrefix = []byte{0xa2, 0x01, 0x27 /* -8 */, 0x04, 0x40 + crypto.KeyIDSize}

// fastEnvelope recognizes, without a CBOR decoder, the one form of a
// COSE_Sign1 array (after its tag) that Parse's strict path accepts:
// four elements, the protected header {1: -8, 4: kid} in canonical CBOR
// (fastHeaderPrefix and the key id), an empty unprotected map, the payload
// and a 64-byte signature, every byte string with its shortest definite
// length and nothing after. It returns the three byte strings as slices of
// env. For anything else ok is false and Parse takes the strict path, which
// refuses it or, for a form this misses, accepts it as before: what Parse
// accepts is unchanged (FuzzFastEnvelope holds the two to that).
func fastEnvelope(env []byte) (protected, payload, sig []byte, ok bool) {
	if len(env) < 2 || env[0] != 0x84 {
		return nil, nil, nil, false
	}
	rest := env[1:]
	if protected, rest, ok = cborBytes(rest); !ok || len(protected) != len(fastHeaderPrefix)+crypto.KeyIDSize ||
		!bytes.Equal(protected[:len(fastHeaderPrefix)], fastHeaderPrefix) {
		return nil, nil, nil, false
	}
	if len(rest) == 0 || rest[0] != emptyMapCBOR {
		return nil, nil, nil, false
	}
	if payload, rest, ok = cborBytes(rest[1:]); !ok {
		return nil, nil, nil, false
	}
	if sig, rest, ok = cborBytes(rest); !ok || len(sig) != crypto.SignatureSize || len(rest) != 0 {
		return nil, nil, nil, false
	}
	return protected, payload, sig, true
}

// cborBytes splits a definite-length CBOR byte string with its shortest
// length encoding off the front of b.
func cborBytes(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0]>>5 != 2 {
		return nil, nil, false
	}
	var n, min uint64
	switch ai := b[0] & 0x1f; {
	case ai < 24:
		n, b = uint64(ai), b[1:]
	case ai == 24 && len(b) >= 2:
		n, min, b = uint64(b[1]), 24, b[2:]
	case ai == 25 && len(b) >= 3:
		n, min, b = uint64(binary.BigEndian.Uint16(b[1:])), 1<<8, b[3:]
	case ai == 26 && len(b) >= 5:
		n, min, b = uint64(binary.BigEndian.Uint32(b[1:])), 1<<16, b[5:]
	default: // 8-byte lengths exceed every cap; indefinite; reserved
		return nil, nil, false
	}
	if n < min || n > uint64(len(b)) {
		return nil, nil, false
	}
	return b[:n:n], b[n:], true
}

// cborUint splits an unsigned CBOR integer with its shortest head off the
// front of b.
func cborUint(b []byte) (v uint64, rest []byte, ok bool) {
	if len(b) == 0 || b[0]>>5 != 0 {
		return 0, nil, false
	}
	var min uint64
	switch ai := b[0] & 0x1f; {
	case ai < 24:
		return uint64(ai), b[1:], true
	case ai == 24 && len(b) >= 2:
		v, min, rest = uint64(b[1]), 24, b[2:]
	case ai == 25 && len(b) >= 3:
		v, min, rest = uint64(binary.BigEndian.Uint16(b[1:])), 1<<8, b[3:]
	case ai == 26 && len(b) >= 5:
		v, min, rest = uint64(binary.BigEndian.Uint32(b[1:])), 1<<16, b[5:]
	case ai == 27 && len(b) >= 9:
		v, min, rest = binary.BigEndian.Uint64(b[1:]), 1<<32, b[9:]
	default:
		return 0, nil, false
	}
	return v, rest, v >= min
}
