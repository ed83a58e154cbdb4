package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// registerCommand creates (or opens) the wallet, registers its passenger,
// links funding, tops up, and prints the account.
func registerCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("register", `usage: wallet register --dir DIR [--ground URL] [--ref REF]
           [--card NETWORK --card-token TOKEN --last4 NNNN --exp MM/YYYY | --wallet]
           [--top-up AMOUNT --currency CUR]

Creates the wallet in DIR (or opens it), registers the passenger with ground
under the wallet's device key, links the funding source (a card by its
acquirer token, or the prepaid wallet) and tops up the wallet balance; then
prints the passenger's id, credit score and eligibility as ground gives them.

Running it again on the same DIR registers no one new: ground knows the device
key, so the command reads that passenger's account and sets the funding again.
A top-up that failed or whose answer was lost is retried with the same
idempotency key and so never credited twice; a top-up that succeeded is done,
and --top-up on a later run tops up again.
`, stdout, stderr)
	dir := fs.String("dir", "", "wallet `directory`; created (mode 0700) with a new device key when missing (required)")
	groundURL := fs.String("ground", defaultGround, "ground HTTP API `URL`")
	ref := fs.String("ref", "", "your `reference` for the passenger (optional): up to 64 letters, digits and _.:@-")
	card := fs.String("card", "", "fund with a card of this `network`: visa, mastercard, amex, discover or jcb")
	token := fs.String("card-token", "", "the acquirer's `token` for the card, never the card number (with --card)")
	last4 := fs.String("last4", "", "the card's last four `digits` (with --card)")
	exp := fs.String("exp", "", "the card's expiry `MM/YYYY` (with --card)")
	useWallet := fs.Bool("wallet", false, "fund with the prepaid wallet balance (see --top-up)")
	topUp := fs.String("top-up", "", "credit this `amount` to the wallet balance, in major units of --currency, for example 100.00")
	currency := fs.String("currency", "", "`currency` of --top-up: EUR, USD, CHF, GBP or JPY")
	if code, ok := parseFlags(fs, args, dir, stdout, stderr); !ok {
		return code
	}
	funding, err := parseFunding(*card, *token, *last4, *exp, *useWallet, time.Now())
	if err != nil {
		return usageError(stderr, fs.Name(), "%v", err)
	}
	var amount protocol.Money
	switch {
	case *topUp != "" && *currency == "":
		return usageError(stderr, fs.Name(), "--top-up needs --currency, for example --top-up %s --currency EUR", *topUp)
	case *topUp == "" && *currency != "":
		return usageError(stderr, fs.Name(), "--currency goes with --top-up")
	case *topUp != "":
		if amount, err = parseTopUp(*topUp, protocol.Currency(*currency)); err != nil {
			return usageError(stderr, fs.Name(), "%v", err)
		}
	}

	w, err := openWallet(*dir, true)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	c := &passengerapi.Client{BaseURL: *groundURL}
	acct, created, err := c.CreatePassenger(ctx, w, *ref)
	if err == nil && !created {
		fmt.Fprintf(stderr, "%s: device key %s is already registered: passenger %s\n", fs.Name(), w.DeviceKey().ID(), acct.Passenger)
	}
	if passengerapi.ErrorCode(err) == passengerapi.CodeConflict {
		// Either this device key is enrolled already (a re-run: fetch the
		// passenger it belongs to), or the reference is someone else's
		// (then the device is unknown and the conflict stands).
		existing, accErr := c.Account(ctx, w)
		if accErr != nil {
			return failure(stderr, fs.Name(), groundError(*groundURL, err))
		}
		acct, err = existing, nil
		fmt.Fprintf(stderr, "%s: device key %s is already registered: passenger %s\n", fs.Name(), w.DeviceKey().ID(), acct.Passenger)
		if *ref != "" && *ref != acct.ExternalRef {
			fmt.Fprintf(stderr, "%s: the passenger's reference is %q; --ref %q is not applied\n", fs.Name(), acct.ExternalRef, *ref)
		}
	}
	if err != nil {
		return failure(stderr, fs.Name(), groundError(*groundURL, err))
	}
	if err := savePassenger(*dir, acct.Passenger); err != nil {
		return failure(stderr, fs.Name(), err)
	}
	if funding != nil {
		if acct, err = c.SetFunding(ctx, w, *funding); err != nil {
			return failure(stderr, fs.Name(), fmt.Errorf("funding: %w", groundError(*groundURL, err)))
		}
	}
	var balance *protocol.Money
	if amount.Minor > 0 {
		b, err := topUpOnce(ctx, c, w, *dir, amount)
		if err != nil {
			return failure(stderr, fs.Name(), fmt.Errorf("top-up of %s: %w", amount, groundError(*groundURL, err)))
		}
		balance = &b
	}
	printAccount(stdout, w, acct)
	if balance != nil {
		fmt.Fprintf(stdout, "%-13s %s (after a top-up of %s)\n", "wallet", balance, amount)
	}
	return 0
}

// optInCommand opts the passenger in to a flight and stores the credential.
func optInCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("opt-in", `usage: wallet opt-in --dir DIR --flight FLIGHT [--ground URL] [--issuer-key FILE]

Opts the passenger in to a flight: ground issues a credential (the per-flight
limit and per-sale cap of the passenger's score band, signed by the issuer)
bound to this wallet's device key, and the wallet stores it. Opting in again
returns the same credential. A passenger ground finds ineligible (score below
the threshold, arrears, no funding, a card expiring too soon) gets ground's
reason and exit code 1.
`, stdout, stderr)
	dir := fs.String("dir", "", "wallet `directory`, made by wallet register (required)")
	groundURL := fs.String("ground", defaultGround, "ground HTTP API `URL`")
	flight := fs.String("flight", "", "flight `id`, for example XX123-2026-11-21 (required)")
	issuerKey := fs.String("issuer-key", "", "issuer public key `file` (ground's issuer.pub): verify the credential's signature before storing it")
	if code, ok := parseFlags(fs, args, dir, stdout, stderr); !ok {
		return code
	}
	f, err := protocol.ParseFlightID(*flight)
	if err != nil {
		return usageError(stderr, fs.Name(), "--flight: %v", err)
	}
	var trust *crypto.TrustList
	if *issuerKey != "" {
		pub, err := crypto.ReadPublicKeyFile(*issuerKey, crypto.Issuer)
		if err != nil {
			return failure(stderr, fs.Name(), fmt.Errorf("--issuer-key: %w", err))
		}
		// The credential carries its own validity window; the key itself
		// is trusted for as long as the file is given.
		if trust, err = crypto.NewTrustList(crypto.TrustedKey{Key: pub, NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
			return failure(stderr, fs.Name(), err)
		}
	}
	w, err := openWallet(*dir, false)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	c := &passengerapi.Client{BaseURL: *groundURL}
	cred, err := c.OptIn(ctx, w, f)
	if passengerapi.ErrorCode(err) == passengerapi.CodeIneligible {
		fmt.Fprintf(stderr, "%s: not eligible for %s: %s\n", fs.Name(), f, errorMessage(err))
		return 1
	}
	if err != nil {
		return failure(stderr, fs.Name(), groundError(*groundURL, err))
	}
	if _, err := cred.Parse(); err != nil {
		return failure(stderr, fs.Name(), fmt.Errorf("credential from ground: %w", err))
	}
	sc, err := w.AddCredential(cred.COSE, trust)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	if err := savePassenger(*dir, sc.Body.Passenger); err != nil {
		return failure(stderr, fs.Name(), err)
	}
	printCredential(stdout, sc, time.Now())
	if trust != nil {
		fmt.Fprintf(stdout, "%-13s signed by issuer key %s\n", "verified", sc.KeyID)
	}
	return 0
}

// balanceCommand prints the passenger's wallet balance.
func balanceCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("balance", `usage: wallet balance --dir DIR --currency CUR [--ground URL]

Prints the passenger's prepaid wallet balance in one currency, as ground's
ledger holds it.
`, stdout, stderr)
	dir := fs.String("dir", "", "wallet `directory`, made by wallet register (required)")
	groundURL := fs.String("ground", defaultGround, "ground HTTP API `URL`")
	currency := fs.String("currency", "", "`currency`, for example EUR (required)")
	if code, ok := parseFlags(fs, args, dir, stdout, stderr); !ok {
		return code
	}
	cur := protocol.Currency(*currency)
	if err := cur.Validate(); err != nil {
		return usageError(stderr, fs.Name(), "--currency: %v", err)
	}
	w, err := openWallet(*dir, false)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	c := &passengerapi.Client{BaseURL: *groundURL}
	b, err := c.WalletBalance(ctx, w, cur)
	if err != nil {
		return failure(stderr, fs.Name(), groundError(*groundURL, err))
	}
	fmt.Fprintln(stdout, b)
	return 0
}

// errorMessage returns the message of ground's refusal in err.
func errorMessage(err error) string {
	if e, ok := errors.AsType[*passengerapi.Error](err); ok {
		return e.Message
	}
	return err.Error()
}

// groundError says what ground answered, or that it could not be reached.
func groundError(url string, err error) error {
	if e, ok := errors.AsType[*passengerapi.Error](err); ok {
		return fmt.Errorf("ground refused (%s): %s", e.Code, e.Message)
	}
	return fmt.Errorf("ground at %s (--ground): %w", url, err)
}

// printAccount prints the account as ground returned it.
func printAccount(w io.Writer, wal *protocol.Wallet, a passengerapi.Account) {
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%-13s %s\n", k, fmt.Sprintf(format, args...)) }
	line("passenger", "%s", a.Passenger)
	if a.ExternalRef != "" {
		line("reference", "%s", a.ExternalRef)
	}
	line("device", "%s", wal.DeviceKey())
	line("credit score", "%d (eligible from %d)", a.Score, a.Threshold)
	if a.Eligible {
		line("eligible", "yes")
	} else {
		line("eligible", "no: %s", a.Ineligible)
	}
	for _, l := range a.Limits {
		line("limits", "%s per flight, %s per sale", l.Limit, l.TxCap)
	}
	switch f := a.Funding; {
	case f == nil:
		line("funding", "none")
	case f.Network != "":
		line("funding", "%s %s ending %s, expires %02d/%04d", f.Kind, f.Network, f.Last4, f.ExpMonth, f.ExpYear)
	default:
		line("funding", "%s", f.Kind)
	}
	for _, c := range a.Credentials {
		state := ""
		if c.Revoked {
			state = ", revoked"
		}
		line("credential", "%s %s, limit %s, until %s%s", c.Flight, c.ID, c.Limit, c.NotAfter.UTC().Format(time.RFC3339), state)
	}
}

// printCredential prints a stored credential.
func printCredential(w io.Writer, c *protocol.SignedCredential, now time.Time) {
	b := c.Body
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%-13s %s\n", k, fmt.Sprintf(format, args...)) }
	line("credential", "%s", b.ID)
	line("flight", "%s", b.Flight)
	line("passenger", "%s", b.Passenger)
	line("limit", "%s per flight, %s per sale", b.Limit, b.TxCap)
	line("valid", "%s to %s%s", b.NotBefore.UTC().Format(time.RFC3339), b.NotAfter.UTC().Format(time.RFC3339), validity(b, now))
}

// validity notes a credential that is not valid at now.
func validity(b protocol.Credential, now time.Time) string {
	switch {
	case now.Before(b.NotBefore):
		return " (not valid yet)"
	case !now.Before(b.NotAfter):
		return " (expired)"
	}
	return ""
}
