package onboard_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
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
