package onboard_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestSignInNamesTheRosterOnBoard checks what a refused sign-in says: which
// manifest the roster on board is from and that ground may have a newer
// one, in the same words for an unknown crew id and a wrong PIN, so the
// answer does not tell whether the id exists.
func TestSignInNamesTheRosterOnBoard(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{}
	for name, try := range map[string][2]string{
		"UnknownCrew": {"new-hire", ft.Purser.PIN},
		"WrongPIN":    {ft.Purser.ID, "0000"},
	} {
		_, err := c.CheckCrew(ctx, try[0], try[1])
		if ErrorCodeOf(err) != onboard.CodeUnauthorized {
			t.Fatalf("%s: err = %v, want unauthorized", name, err)
		}
		answers[name] = err.Error()
	}
	if answers["UnknownCrew"] != answers["WrongPIN"] {
		t.Errorf("unknown crew id and wrong PIN answer differently:\n%s\n%s", answers["UnknownCrew"], answers["WrongPIN"])
	}
	msg := answers["UnknownCrew"]
	for _, want := range []string{
		fmt.Sprintf("manifest serial %d", st.Manifest.Serial),
		st.Manifest.IssuedAt.UTC().Format(time.RFC3339),
		"newer roster",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("answer %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "wrong crew id") {
		t.Errorf("answer %q tells a crew member ground has on its roster they are wrong", msg)
	}
}

// TestDeltaReplacesTheRoster checks that a delta carrying the crew roster
// replaces the one on board: a crew member added signs in, one removed no
// longer does, and the roster survives a restart (the delta is journaled).
func TestDeltaReplacesTheRoster(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	hash, err := crypto.HashPIN("8642", crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.CheckCrew(ctx, ft.Purser.ID, ft.Purser.PIN)
	if err != nil {
		t.Fatal(err)
	}
	d := f.SignDelta(1, func(d *protocol.ManifestDelta) {
		d.Crew = []protocol.CrewMember{m, {ID: "new-hire", Role: "attendant", PINHash: hash}}
	})
	if _, err := c.ApplyDeltas(ctx, [][]byte{d}); err != nil {
		t.Fatal(err)
	}
	check := func(c *onboard.Cabin, when string) {
		t.Helper()
		if got, err := c.CheckCrew(ctx, "new-hire", "8642"); err != nil || got.Role != "attendant" {
			t.Errorf("%s: the crew member the delta added: %+v, %v", when, got, err)
		}
		if _, err := c.CheckCrew(ctx, ft.Attendant.ID, ft.Attendant.PIN); ErrorCodeOf(err) != onboard.CodeUnauthorized {
			t.Errorf("%s: the crew member the delta's roster left out: err = %v, want unauthorized", when, err)
		}
		if _, err := c.CheckCrew(ctx, ft.Purser.ID, ft.Purser.PIN); err != nil {
			t.Errorf("%s: the purser kept on the roster: %v", when, err)
		}
	}
	check(c, "after the delta")
	_, err = c.CheckCrew(ctx, "nobody", "0000")
	if want := "manifest serial 1, delta 1, issued "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a refused sign-in after the roster delta: %v; want it to say %q", err, want)
	}
	c.Close()
	c2, _ := f.OpenCabin(nil, nil)
	check(c2, "after a restart")
}
