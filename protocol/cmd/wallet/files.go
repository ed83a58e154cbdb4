package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// Files the command keeps in the wallet directory beside protocol.Wallet's.
const (
	deviceKeyFile    = "device.key"    // protocol.Wallet's device key
	passengerFile    = "passenger"     // the passenger id ground gave
	pendingTopUpFile = "topup.pending" // "<ref> <amount>" of a top-up in doubt
)

// openWallet opens the wallet in dir. Only register may create one: any
// other command on a mistyped directory would otherwise make a new device
// key there and talk to ground as a stranger.
func openWallet(dir string, create bool) (*protocol.Wallet, error) {
	if !create {
		if _, err := os.Stat(filepath.Join(dir, deviceKeyFile)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("no wallet in %s (no %s): run wallet register --dir %s first", dir, deviceKeyFile, dir)
			}
			return nil, err
		}
	}
	return protocol.OpenWallet(dir, protocol.WalletOptions{})
}

// savePassenger records the passenger id for wallet show.
func savePassenger(dir string, id protocol.ID) error {
	if err := crypto.WriteFileAtomic(filepath.Join(dir, passengerFile), []byte(id.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("record passenger id: %w", err)
	}
	return nil
}

// readPassenger returns the recorded passenger id, zero when none is.
func readPassenger(dir string) (protocol.ID, error) {
	b, err := os.ReadFile(filepath.Join(dir, passengerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return protocol.ID{}, nil
	}
	if err != nil {
		return protocol.ID{}, err
	}
	id, err := protocol.ParseID(trimmed(b))
	if err != nil {
		return protocol.ID{}, fmt.Errorf("%s: %w", filepath.Join(dir, passengerFile), err)
	}
	return id, nil
}

// topUpOnce credits amount to the passenger's wallet exactly once across
// retries. The idempotency key is on disk before the request leaves, so a
// top-up whose answer was lost (a crash, a timeout) is sent again under the
// same key and ground credits it once; the key is dropped only when ground
// has answered: credited, or refused outright.
func topUpOnce(ctx context.Context, c *passengerapi.Client, w *protocol.Wallet, dir string, amount protocol.Money) (protocol.Money, error) {
	path := filepath.Join(dir, pendingTopUpFile)
	ref, err := pendingRef(path, amount)
	if err != nil {
		return protocol.Money{}, err
	}
	if ref.IsZero() {
		ref = protocol.NewID(nil)
		if err := crypto.WriteFileAtomic(path, []byte(ref.String()+" "+amount.String()+"\n"), 0o600); err != nil {
			return protocol.Money{}, fmt.Errorf("record top-up key: %w", err)
		}
	}
	bal, err := c.TopUp(ctx, w, amount, ref)
	if err != nil {
		// A refusal credited nothing, and the same key would only be
		// refused again; any other failure (no answer, an internal
		// error) may have come after the credit, so the key stays.
		if code := passengerapi.ErrorCode(err); code != passengerapi.CodeInternal && code != passengerapi.CodeUnavailable {
			os.Remove(path)
		}
		return protocol.Money{}, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return bal, err
	}
	return bal, nil
}

// pendingRef returns the key of a top-up in doubt of the same amount, or
// the zero id when there is none. A top-up in doubt of another amount is
// left as it stands (credited or not): the passenger now asks for a
// different one, which its key cannot carry, since ground refuses a key
// reused with other content.
func pendingRef(path string, amount protocol.Money) (protocol.ID, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return protocol.ID{}, nil
	}
	if err != nil {
		return protocol.ID{}, err
	}
	refText, amountText, _ := strings.Cut(trimmed(b), " ")
	ref, err := protocol.ParseID(refText)
	if err != nil {
		return protocol.ID{}, fmt.Errorf("%s: %w", path, err)
	}
	if m, err := protocol.ParseMoney(amountText); err != nil || m != amount {
		return protocol.ID{}, nil
	}
	return ref, nil
}

// trimmed is b without surrounding space, for values read from files.
func trimmed(b []byte) string { return strings.TrimSpace(string(b)) }

// isTerminal reports whether w is a terminal (a character device), where a
// QR code drawn in text can be scanned; a pipe or file gets the text only.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
