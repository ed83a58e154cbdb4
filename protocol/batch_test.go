package protocol

import (
	"errors"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
)

func TestAddToBatch(t *testing.T) {
	key, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	good, err := Sign(ClearingReceipt{Version: Version, Invoice: NewID(nil), Flight: "AT100-2026-05-01", Aircraft: "F-ABCD",
		Seq: 1, Status: StatusSettled, Amount: Money{Minor: 450, Currency: "EUR"}, At: at}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered, err := ParseReceipt(good.Raw)
	if err != nil {
		t.Fatal(err)
	}
	tampered.signature = append([]byte(nil), tampered.signature...)
	tampered.signature[10] ^= 1

	var b crypto.Batch
	iGood, err := good.AddToBatch(&b, key.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	iBad, err := tampered.AddToBatch(&b, key.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	iAAD, err := good.AddToBatch(&b, key.Public(), []byte("other external data"))
	if err != nil {
		t.Fatal(err)
	}
	got := b.Verify(nil)
	for _, c := range []struct {
		name string
		i    int
		want bool
	}{{"Good", iGood, true}, {"Tampered", iBad, false}, {"OtherExternal", iAAD, false}} {
		if got[c.i] != c.want {
			t.Errorf("%s: batch says %v, want %v", c.name, got[c.i], c.want)
		}
	}
	t.Run("ErrOtherKeyID", func(t *testing.T) {
		if _, err := good.AddToBatch(&b, other.Public(), nil); !errors.Is(err, ErrSignature) {
			t.Fatalf("err = %v, want ErrSignature", err)
		}
	})
	t.Run("ErrWrongPurpose", func(t *testing.T) {
		dev, _ := crypto.GenerateKey(crypto.Device, nil)
		if _, err := good.AddToBatch(&b, dev.Public(), nil); !errors.Is(err, ErrSignature) {
			t.Fatalf("err = %v, want ErrSignature", err)
		}
	})
}
