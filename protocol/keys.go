package protocol

import (
	"fmt"

	"github.com/airtab/airtab/crypto"
)

// The key fields of messages are raw 32-byte Ed25519 keys on the wire; their
// purpose comes from the field they sit in. These wrappers give each field its
// purpose when it is decoded, so a device key field can never hold an issuer
// key in Go.

// DeviceKey is a passenger device's public key inside a message.
type DeviceKey struct{ crypto.PublicKey }

// AircraftKey is an aircraft's public key inside a message.
type AircraftKey struct{ crypto.PublicKey }

// IssuerKey is an issuer's public key inside a message.
type IssuerKey struct{ crypto.PublicKey }

// MarshalCBOR encodes the raw key bytes as a byte string.
func (k DeviceKey) MarshalCBOR() ([]byte, error) { return marshalKey(k.PublicKey) }

// UnmarshalCBOR decodes 32 raw bytes as a device key.
func (k *DeviceKey) UnmarshalCBOR(b []byte) error {
	return unmarshalKey(b, crypto.Device, &k.PublicKey)
}

// MarshalCBOR encodes the raw key bytes as a byte string.
func (k AircraftKey) MarshalCBOR() ([]byte, error) { return marshalKey(k.PublicKey) }

// UnmarshalCBOR decodes 32 raw bytes as an aircraft key.
func (k *AircraftKey) UnmarshalCBOR(b []byte) error {
	return unmarshalKey(b, crypto.Aircraft, &k.PublicKey)
}

// MarshalCBOR encodes the raw key bytes as a byte string.
func (k IssuerKey) MarshalCBOR() ([]byte, error) { return marshalKey(k.PublicKey) }

// UnmarshalCBOR decodes 32 raw bytes as an issuer key.
func (k *IssuerKey) UnmarshalCBOR(b []byte) error {
	return unmarshalKey(b, crypto.Issuer, &k.PublicKey)
}

func marshalKey(k crypto.PublicKey) ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("encode public key: zero key")
	}
	return encMode.Marshal(k.Bytes())
}

func unmarshalKey(b []byte, p crypto.Purpose, dst *crypto.PublicKey) error {
	var raw []byte
	if err := decMode.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%s key: want a byte string: %w", p, err)
	}
	k, err := crypto.PublicKeyFromBytes(p, raw)
	if err != nil {
		return err
	}
	*dst = k
	return nil
}
