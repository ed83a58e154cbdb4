package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

func TestCreatePassenger(t *testing.T) {
	f := newFixture(t)
	dev, _ := crypto.GenerateKey(crypto.Device, nil)
	f.scores[dev.ID()] = 700
	p, err := f.reg.CreatePassenger(f.ctx, dev.Public(), "loyalty-7f3a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Score, 700; got != want {
		t.Errorf("score = %d, want %d", got, want)
	}
	if len(p.Devices) != 1 || !p.Devices[0].Equal(dev.Public()) {
		t.Errorf("devices = %v, want [%v]", p.Devices, dev.Public())
	}
	if len(p.ScoreHistory) != 1 || p.ScoreHistory[0].Reason != "initial" {
		t.Errorf("score history = %+v, want one initial entry", p.ScoreHistory)
	}

	t.Run("ErrDeviceReused", func(t *testing.T) {
		before := f.count("registry_passengers")
		_, err := f.reg.CreatePassenger(f.ctx, dev.Public(), "")
		wantCode(t, err, CodeConflict)
		if got := f.count("registry_passengers"); got != before {
			t.Fatalf("passengers = %d after a refused registration, want %d", got, before)
		}
	})
	t.Run("ErrExternalRefReused", func(t *testing.T) {
		other, _ := crypto.GenerateKey(crypto.Device, nil)
		_, err := f.reg.CreatePassenger(f.ctx, other.Public(), "loyalty-7f3a")
		wantCode(t, err, CodeConflict)
		if got := f.count("registry_devices"); got != 1 {
			t.Fatalf("devices = %d after a refused registration, want 1", got)
		}
	})
	t.Run("ErrWrongKeyPurpose", func(t *testing.T) {
		ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		_, err := f.reg.CreatePassenger(f.ctx, ak.Public(), "")
		wantCode(t, err, CodeInvalid)
	})
	t.Run("ErrBadExternalRef", func(t *testing.T) {
		other, _ := crypto.GenerateKey(crypto.Device, nil)
		_, err := f.reg.CreatePassenger(f.ctx, other.Public(), "jane.doe @example.com")
		wantCode(t, err, CodeInvalid)
	})
}

func TestEnrollDevice(t *testing.T) {
	f := newFixture(t)
	p1, _ := f.passenger(700)
	_, d2 := f.passenger(700)
	phone, _ := crypto.GenerateKey(crypto.Device, nil)
	if err := f.reg.EnrollDevice(f.ctx, p1, phone.Public()); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.EnrollDevice(f.ctx, p1, phone.Public()); err != nil {
		t.Fatalf("enrolling the same key again: %v, want nil", err)
	}
	wantCode(t, f.reg.EnrollDevice(f.ctx, p1, d2.Public()), CodeConflict)
	wantCode(t, f.reg.EnrollDevice(f.ctx, protocol.ID{9}, phone.Public()), CodeNotFound)
	devs, err := f.reg.DevicesByKeyID(f.ctx, phone.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Passenger != p1 {
		t.Fatalf("devices by key id = %+v, want one of %s", devs, p1)
	}
}

func TestOptIn(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")
	p, dev := f.passenger(700)

	ic, created, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first opt-in: created = false")
	}
	c := ic.Signed.Body
	if got, want := c.Limit, protocol.M(250_00, "EUR"); got != want {
		t.Errorf("limit = %v, want %v", got, want)
	}
	if got, want := c.TxCap, protocol.M(100_00, "EUR"); got != want {
		t.Errorf("cap = %v, want %v", got, want)
	}
	if !c.ValidAt(flightDate.Add(20*time.Hour)) || c.ValidAt(flightDate.Add(-25*time.Hour)) {
		t.Errorf("window [%v, %v) does not cover the flight", c.NotBefore, c.NotAfter)
	}
	if err := ic.Signed.Verify(f.issuer.Public(), nil); err != nil {
		t.Fatal(err)
	}

	t.Run("Idempotent", func(t *testing.T) {
		again, created, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
		if err != nil {
			t.Fatal(err)
		}
		if created {
			t.Error("second opt-in: created = true")
		}
		if !slices.Equal(again.Signed.Raw, ic.Signed.Raw) {
			t.Error("second opt-in returned a different credential")
		}
		if got := f.count("registry_credentials"); got != 1 {
			t.Errorf("credentials = %d, want 1", got)
		}
	})
	t.Run("ErrOtherDeviceSameFlight", func(t *testing.T) {
		phone, _ := crypto.GenerateKey(crypto.Device, nil)
		if err := f.reg.EnrollDevice(f.ctx, p, phone.Public()); err != nil {
			t.Fatal(err)
		}
		_, _, err := f.reg.OptIn(f.ctx, p, phone.Public(), fl)
		wantCode(t, err, CodeConflict)
	})
	t.Run("ErrDeviceOfAnother", func(t *testing.T) {
		_, other := f.passenger(700)
		_, _, err := f.reg.OptIn(f.ctx, p, other.Public(), fl)
		wantCode(t, err, CodeForbidden)
	})
	t.Run("ErrUnknownFlight", func(t *testing.T) {
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), "XX999-2026-11-21")
		wantCode(t, err, CodeNotFound)
		if !errors.Is(err, ground.ErrNotFound) {
			t.Error("unknown flight does not match ground.ErrNotFound")
		}
	})
	t.Run("ErrUnknownPassenger", func(t *testing.T) {
		_, _, err := f.reg.OptIn(f.ctx, protocol.ID{7}, dev.Public(), fl)
		wantCode(t, err, CodeNotFound)
	})
	t.Run("ErrFlightOver", func(t *testing.T) {
		f.clock.Add(5 * 24 * time.Hour)
		defer f.clock.Add(-5 * 24 * time.Hour)
		p2, d2 := f.passenger(700)
		_, _, err := f.reg.OptIn(f.ctx, p2, d2.Public(), fl)
		wantCode(t, err, CodeInvalid)
	})
}

func TestOptInRefusals(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")

	t.Run("ErrScoreBelowThreshold", func(t *testing.T) {
		p, dev := f.passenger(540)
		before := f.count("registry_credentials")
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
		e := wantCode(t, err, CodeIneligible)
		if !strings.Contains(e.Message, "540") || !strings.Contains(e.Message, "550") {
			t.Errorf("refusal %q does not name the score and the threshold", e.Message)
		}
		if got := f.count("registry_credentials"); got != before {
			t.Errorf("credentials = %d after a refusal, want %d", got, before)
		}
	})
	t.Run("ErrNoFunding", func(t *testing.T) {
		dev, _ := crypto.GenerateKey(crypto.Device, nil)
		f.scores[dev.ID()] = 800
		p, err := f.reg.CreatePassenger(f.ctx, dev.Public(), "")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.reg.OptIn(f.ctx, p.ID, dev.Public(), fl)
		e := wantCode(t, err, CodeIneligible)
		if !strings.Contains(e.Message, "funding") {
			t.Errorf("refusal %q does not say why", e.Message)
		}
	})
	t.Run("ErrCardExpiresFirst", func(t *testing.T) {
		p, dev := f.passenger(800)
		card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.JCB, Token: "tok_jcb_1", Last4: "0001", ExpMonth: 11, ExpYear: 2026}
		if err := f.reg.SetFunding(f.ctx, p, card); err != nil {
			t.Fatal(err)
		}
		// The card is valid through 2026-11-30; the credential until
		// 2026-11-23: fine.
		if _, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl); err != nil {
			t.Fatal(err)
		}
		p2, dev2 := f.passenger(800)
		card.ExpMonth, card.ExpYear = 11, 2026
		if err := f.reg.SetFunding(f.ctx, p2, card); err != nil {
			t.Fatal(err)
		}
		// A flight on 2026-11-30 needs the card into December.
		late, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "124", Date: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), Aircraft: "D-AIUA", Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.reg.OptIn(f.ctx, p2, dev2.Public(), late.ID)
		wantCode(t, err, CodeIneligible)
	})
	t.Run("ErrArrears", func(t *testing.T) {
		p, dev := f.passenger(800)
		if err := f.reg.MarkArrears(f.ctx, p, protocol.ID{0xaa}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
		e := wantCode(t, err, CodeIneligible)
		if !strings.Contains(e.Message, "arrears") {
			t.Errorf("refusal %q does not say why", e.Message)
		}
	})
}

func TestLimitBandsThroughOptIn(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	eur := f.flight("100", "D-AIUA", "EUR")
	jpy := f.flight("200", "D-AIUA", "JPY")
	for _, tc := range []struct {
		score     int
		fl        protocol.FlightID
		limit, tx protocol.Money
	}{
		{560, eur, protocol.M(100_00, "EUR"), protocol.M(40_00, "EUR")},
		{700, eur, protocol.M(250_00, "EUR"), protocol.M(100_00, "EUR")},
		{790, eur, protocol.M(600_00, "EUR"), protocol.M(250_00, "EUR")},
		{790, jpy, protocol.M(100_000, "JPY"), protocol.M(40_000, "JPY")},
	} {
		p, dev := f.passenger(tc.score)
		c := f.optIn(p, dev, tc.fl).Body
		if c.Limit != tc.limit || c.TxCap != tc.tx {
			t.Errorf("score %d on %s: limit %v cap %v, want %v and %v", tc.score, tc.fl, c.Limit, c.TxCap, tc.limit, tc.tx)
		}
	}
}

func TestArrearsScoreAndIdempotence(t *testing.T) {
	f := newFixture(t)
	p, _ := f.passenger(700)
	inv := protocol.ID{1, 2, 3}
	for range 3 {
		if err := f.reg.MarkArrears(f.ctx, p, inv, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	acct, err := f.reg.Passenger(f.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := acct.Score, 700-ArrearsPenalty; got != want {
		t.Fatalf("score = %d after one invoice marked three times, want %d", got, want)
	}
	if len(acct.Arrears) != 1 || acct.Arrears[0].Invoice != inv {
		t.Fatalf("arrears = %+v, want invoice %s", acct.Arrears, inv)
	}
	if got := acct.ScoreHistory[0]; got.Change != -ArrearsPenalty || !strings.Contains(got.Reason, inv.String()) {
		t.Fatalf("latest score event = %+v", got)
	}
	other, _ := f.passenger(700)
	wantCode(t, f.reg.MarkArrears(f.ctx, other, inv, time.Time{}), CodeConflict)
	wantCode(t, f.reg.MarkArrears(f.ctx, protocol.ID{5}, protocol.ID{6}, time.Time{}), CodeNotFound)

	list, more, err := f.reg.ListArrears(f.ctx, 10)
	if err != nil || more || len(list) != 1 {
		t.Fatalf("ListArrears = %v, %v, %v; want one entry", list, more, err)
	}
	for range 2 {
		if err := f.reg.ClearArrears(f.ctx, p, inv, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if list, _, _ := f.reg.ListArrears(f.ctx, 10); len(list) != 0 {
		t.Fatalf("arrears after clearing = %v", list)
	}
	// Marking a paid invoice again does not re-open it.
	if err := f.reg.MarkArrears(f.ctx, p, inv, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := f.reg.ListArrears(f.ctx, 10); len(list) != 0 {
		t.Fatalf("a redelivered decline re-opened paid arrears: %v", list)
	}
	err = f.reg.ClearArrears(f.ctx, p, protocol.ID{0xee}, time.Time{})
	if !errors.Is(err, ground.ErrNotFound) {
		t.Fatalf("clearing unknown arrears: %v, want not found", err)
	}
}

func TestAircraftAndFlights(t *testing.T) {
	f := newFixture(t)
	k := f.aircraft("D-AIUA")
	t.Run("SameAgain", func(t *testing.T) {
		created, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUA", Key: k.Public()})
		if err != nil || created {
			t.Fatalf("re-register = %v, %v; want false, nil", created, err)
		}
	})
	t.Run("ErrOtherKey", func(t *testing.T) {
		k2, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUA", Key: k2.Public()})
		wantCode(t, err, CodeConflict)
	})
	t.Run("ErrKeyOfAnother", func(t *testing.T) {
		_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUB", Key: k.Public()})
		wantCode(t, err, CodeConflict)
	})
	t.Run("ErrBadNKey", func(t *testing.T) {
		k2, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUC", Key: k2.Public(), NKey: "UNOTAKEY"})
		wantCode(t, err, CodeInvalid)
	})
	t.Run("ErrUnknownAircraft", func(t *testing.T) {
		_, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "1", Date: flightDate, Aircraft: "N12345", Currency: "EUR"})
		wantCode(t, err, CodeNotFound)
	})
	t.Run("ErrUnsupportedCurrency", func(t *testing.T) {
		_, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "1", Date: flightDate, Aircraft: "D-AIUA", Currency: "SEK"})
		wantCode(t, err, CodeInvalid)
	})
	t.Run("ErrCatalogCurrency", func(t *testing.T) {
		_, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "1", Date: flightDate, Aircraft: "D-AIUA", Currency: "EUR",
			Catalog: []protocol.CatalogItem{{SKU: "tea", Name: "Tea", Price: protocol.M(300, "USD")}}})
		wantCode(t, err, CodeInvalid)
	})
	fl := f.flight("123", "D-AIUA", "EUR")
	t.Run("SameAgain", func(t *testing.T) {
		_, created, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "123", Date: flightDate, Aircraft: "D-AIUA", Currency: "EUR",
			Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
		if err != nil || created {
			t.Fatalf("the same flight again = created %v, %v; want an unchanged answer", created, err)
		}
	})
	t.Run("ErrOtherCatalog", func(t *testing.T) {
		_, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "123", Date: flightDate, Aircraft: "D-AIUA", Currency: "EUR"})
		if e := wantCode(t, err, CodeConflict); e != nil && !strings.Contains(e.Message, string(fl)) {
			t.Errorf("conflict message %q does not name the flight id", e.Message)
		}
	})
	t.Run("UpdateCatalog", func(t *testing.T) {
		got, err := f.reg.UpdateFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "123", Date: flightDate, Aircraft: "D-AIUA", Currency: "EUR",
			Catalog: []protocol.CatalogItem{{SKU: "tea", Name: "Tea", Price: protocol.M(300, "EUR")}},
			Caps:    protocol.Caps{VelocityCount: 3}})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if len(got.Catalog) != 1 || got.Catalog[0].SKU != "tea" || got.Caps.VelocityCount != 3 || got.Caps.CodeFreshSeconds != DefaultCodeFreshSeconds {
			t.Fatalf("updated flight = %+v", got)
		}
	})
	t.Run("ErrCurrencyChange", func(t *testing.T) {
		_, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{Carrier: "XX", Number: "123", Date: flightDate, Aircraft: "D-AIUA", Currency: "USD"})
		wantCode(t, err, CodeConflict)
	})
	t.Run("Directory", func(t *testing.T) {
		info, err := f.reg.Flight(f.ctx, fl)
		if err != nil || info != (ground.FlightInfo{Flight: fl, Aircraft: "D-AIUA", Currency: "EUR"}) {
			t.Fatalf("Flight = %+v, %v", info, err)
		}
		key, err := f.reg.AircraftKey(f.ctx, "D-AIUA")
		if err != nil || !key.Equal(k.Public()) {
			t.Fatalf("AircraftKey = %v, %v", key, err)
		}
		if _, err := f.reg.AircraftKey(f.ctx, "N1"); !errors.Is(err, ground.ErrNotFound) {
			t.Fatalf("AircraftKey(unknown) = %v, want not found", err)
		}
		if _, err := f.reg.Flight(f.ctx, "XX9-2026-01-01"); !errors.Is(err, ground.ErrNotFound) {
			t.Fatalf("Flight(unknown) = %v, want not found", err)
		}
		tl, err := f.reg.IssuerTrust(f.ctx)
		if err != nil || len(tl.Lookup(f.issuer.ID(), crypto.Issuer, flightDate)) != 1 {
			t.Fatalf("IssuerTrust = %v, %v", tl, err)
		}
	})
}

func TestCrew(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")
	pre, err := crypto.HashPIN("9876", crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = f.reg.SetCrew(f.ctx, fl, []CrewInput{{ID: "c1", Role: "purser", PIN: "1234"}, {ID: "c2", Role: "attendant", PINHash: pre}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.reg.FlightDetails(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Crew) != 2 {
		t.Fatalf("crew = %+v", got.Crew)
	}
	if ok, err := crypto.VerifyPIN(got.Crew[0].PINHash, "1234"); !ok || err != nil {
		t.Fatalf("c1's stored hash does not verify the PIN: %v", err)
	}
	if got.Crew[1].PINHash != pre {
		t.Fatalf("c2's pre-hashed PIN was changed")
	}
	for name, crew := range map[string][]CrewInput{
		"ErrRole":    {{ID: "c1", Role: "pilot", PIN: "1234"}},
		"ErrBoth":    {{ID: "c1", Role: "purser", PIN: "1234", PINHash: pre}},
		"ErrNeither": {{ID: "c1", Role: "purser"}},
		"ErrBadHash": {{ID: "c1", Role: "purser", PINHash: "$argon2id$v=19$m=64,t=1,p=1$short$short"}},
		"ErrShort":   {{ID: "c1", Role: "purser", PIN: "12"}},
		"ErrTwice":   {{ID: "c1", Role: "purser", PIN: "1234"}, {ID: "c1", Role: "attendant", PIN: "1234"}},
	} {
		t.Run(name, func(t *testing.T) { wantCode(t, f.reg.SetCrew(f.ctx, fl, crew), CodeInvalid) })
	}
	wantCode(t, f.reg.SetCrew(f.ctx, "XX9-2026-11-21", nil), CodeNotFound)
}

func TestManifest(t *testing.T) {
	f := newFixture(t)
	ak := f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")
	if err := f.reg.SetCrew(f.ctx, fl, []CrewInput{{ID: "c1", Role: "purser", PIN: "1234"}}); err != nil {
		t.Fatal(err)
	}
	p1, d1 := f.passenger(700)
	p2, d2 := f.passenger(800)
	p3, d3 := f.passenger(600)
	c1 := f.optIn(p1, d1, fl)
	c2 := f.optIn(p2, d2, fl)
	f.optIn(p3, d3, fl)
	if err := f.reg.Revoke(f.ctx, c2.Body.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.MarkArrears(f.ctx, p3, protocol.ID{0x33}, time.Time{}); err != nil {
		t.Fatal(err)
	}

	s, err := f.reg.BuildManifest(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	m := f.verifyManifest(s.Raw).Body
	if m.Serial != 1 || m.Aircraft != "D-AIUA" || !m.AircraftKey.Equal(ak.Public()) || m.Currency != "EUR" {
		t.Fatalf("manifest header = serial %d aircraft %s currency %s", m.Serial, m.Aircraft, m.Currency)
	}
	if got, want := m.ExpiresAt.Sub(m.IssuedAt), DefaultManifestTTL; got != want {
		t.Errorf("lifetime = %v, want %v", got, want)
	}
	creds, _ := m.ParseCredentials()
	if len(creds) != 2 || creds[0].Body.ID != c1.Body.ID {
		t.Fatalf("manifest credentials = %d, want the 2 live ones, c1 first", len(creds))
	}
	wantDeny := []protocol.DenyEntry{
		{Passenger: p3, Reason: protocol.DenyArrears},
		{Credential: c2.Body.ID, Reason: protocol.DenyRevoked},
	}
	if !slices.Equal(m.Deny, wantDeny) {
		t.Fatalf("deny = %+v, want %+v", m.Deny, wantDeny)
	}
	if len(m.Crew) != 1 || m.Crew[0].ID != "c1" || len(m.Catalog) != 1 || m.Caps != DefaultCaps("EUR") {
		t.Fatalf("crew %+v catalog %+v caps %+v", m.Crew, m.Catalog, m.Caps)
	}
	again, err := f.reg.BuildManifest(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	if again.Body.Serial != 2 {
		t.Fatalf("second manifest serial = %d, want 2", again.Body.Serial)
	}
	if got := f.count("registry_manifests"); got != 2 {
		t.Fatalf("stored manifests = %d, want 2", got)
	}
	wantCode(t, func() error { _, err := f.reg.BuildManifest(f.ctx, "XX9-2026-11-21"); return err }(), CodeNotFound)

	// A roster changed after a manifest was issued travels in the next
	// delta, the whole roster, once; no new manifest is issued for it.
	if err := f.reg.SetCrew(f.ctx, fl, []CrewInput{{ID: "c1", Role: "purser", PIN: "1234"}, {ID: "c9", Role: "attendant", PIN: "5678"}}); err != nil {
		t.Fatal(err)
	}
	if got := f.count("registry_manifests"); got != 2 {
		t.Fatalf("stored manifests after the roster changed = %d, want 2", got)
	}
	b, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: 2})
	if err != nil || b.Superseded || len(b.Deltas) != 1 {
		t.Fatalf("delta request on manifest 2 after the roster changed = %+v, %v; want one delta", b, err)
	}
	d, err := protocol.ParseManifestDelta(b.Deltas[0])
	if err != nil {
		t.Fatal(err)
	}
	if crew := d.Body.Crew; len(crew) != 2 || crew[1].ID != "c9" {
		t.Fatalf("delta after the roster changed: crew %+v, want c1 and c9", crew)
	}
	b, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: 2, AfterSeq: d.Body.Seq})
	if err != nil || len(b.Deltas) != 0 {
		t.Fatalf("delta request after the roster delta = %+v, %v; want up to date", b, err)
	}
	// A roster emptied cannot travel in a delta: a fresh manifest.
	if err := f.reg.SetCrew(f.ctx, fl, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.count("registry_manifests"); got != 3 {
		t.Fatalf("stored manifests after the roster was emptied = %d, want 3", got)
	}
}

func TestSyncManifest(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	f.aircraft("D-AIUB")
	fl := f.flight("123", "D-AIUA", "EUR")

	m1, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil {
		t.Fatal(err)
	}
	m1b, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil {
		t.Fatal(err)
	}
	if m1b.Body.Serial != m1.Body.Serial {
		t.Fatalf("a fresh manifest was rebuilt: serial %d then %d", m1.Body.Serial, m1b.Body.Serial)
	}
	f.clock.Add(DefaultReissueAfter)
	m2, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Body.Serial != 2 {
		t.Fatalf("manifest %v old: serial %d, want a new one", DefaultReissueAfter, m2.Body.Serial)
	}
	// A cabin server that keeps asking for deltas is moved to a fresh
	// manifest once the one it has is ReissueAfter old.
	if b, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: 2}); err != nil || b.Superseded {
		t.Fatalf("deltas of a fresh manifest = %+v, %v", b, err)
	}
	f.clock.Add(DefaultReissueAfter)
	b, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: 2})
	if err != nil || !b.Superseded {
		t.Fatalf("deltas of an old manifest = %+v, %v; want superseded", b, err)
	}
	m3, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil || m3.Body.Serial != 3 || !m3.Body.IssuedAt.Equal(f.clock.Now()) {
		t.Fatalf("manifest after the refresh = %v, %v; want serial 3 issued now", m3, err)
	}
	_, err = f.reg.SyncManifest(f.ctx, "D-AIUB", fl)
	wantCode(t, err, CodeForbidden)
	_, err = f.reg.SyncManifest(f.ctx, "D-AIUA", "XX9-2026-11-21")
	wantCode(t, err, CodeNotFound)
}

func TestDeltas(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	f.aircraft("D-AIUB")
	fl := f.flight("123", "D-AIUA", "EUR")
	early, ed := f.passenger(700)
	f.optIn(early, ed, fl)

	_, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: 1})
	wantCode(t, err, CodeNotFound) // no manifest yet

	m, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil {
		t.Fatal(err)
	}
	base := m.Body.Serial
	req := protocol.DeltaRequest{BaseSerial: base}
	batch, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, req)
	if err != nil || len(batch.Deltas) != 0 || batch.Superseded {
		t.Fatalf("deltas right after the manifest = %+v, %v; want none", batch, err)
	}

	// A late registrant appears in delta 1.
	late, ld := f.passenger(650)
	lateCred := f.optIn(late, ld, fl)
	batch, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, req)
	if err != nil || len(batch.Deltas) != 1 {
		t.Fatalf("deltas = %+v, %v; want one", batch, err)
	}
	d1 := verifyDelta(t, f.issuer.Public(), batch.Deltas[0]).Body
	creds, _ := d1.ParseCredentials()
	if d1.Seq != 1 || d1.BaseSerial != base || len(creds) != 1 || creds[0].Body.ID != lateCred.Body.ID || len(d1.Deny) != 0 {
		t.Fatalf("delta 1 = seq %d base %d creds %d deny %v", d1.Seq, d1.BaseSerial, len(creds), d1.Deny)
	}

	// An arrears entry appears in delta 2, and only it.
	if err := f.reg.MarkArrears(f.ctx, early, protocol.ID{0x44}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	batch, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: base, AfterSeq: 1})
	if err != nil || len(batch.Deltas) != 1 {
		t.Fatalf("deltas after 1 = %+v, %v; want one", batch, err)
	}
	d2 := verifyDelta(t, f.issuer.Public(), batch.Deltas[0]).Body
	if d2.Seq != 2 || len(d2.Credentials) != 0 || !slices.Equal(d2.Deny, []protocol.DenyEntry{{Passenger: early, Reason: protocol.DenyArrears}}) {
		t.Fatalf("delta 2 = seq %d creds %d deny %v", d2.Seq, len(d2.Credentials), d2.Deny)
	}

	// Paying lifts it in delta 3; a revocation denies in delta 4.
	if err := f.reg.ClearArrears(f.ctx, early, protocol.ID{0x44}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: base, AfterSeq: 2}); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Revoke(f.ctx, lateCred.Body.ID); err != nil {
		t.Fatal(err)
	}

	// From the start: every delta in order, without gaps.
	batch, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Deltas) != 4 {
		t.Fatalf("all deltas = %d, want 4", len(batch.Deltas))
	}
	for i, raw := range batch.Deltas {
		if got, want := verifyDelta(t, f.issuer.Public(), raw).Body.Seq, uint64(i+1); got != want {
			t.Fatalf("delta %d has seq %d, want %d", i, got, want)
		}
	}
	d3 := verifyDelta(t, f.issuer.Public(), batch.Deltas[2]).Body
	if !slices.Equal(d3.Undeny, []protocol.DenyEntry{{Passenger: early, Reason: protocol.DenyArrears}}) {
		t.Fatalf("delta 3 undeny = %v", d3.Undeny)
	}
	d4 := verifyDelta(t, f.issuer.Public(), batch.Deltas[3]).Body
	if !slices.Equal(d4.Deny, []protocol.DenyEntry{{Credential: lateCred.Body.ID, Reason: protocol.DenyRevoked}}) {
		t.Fatalf("delta 4 deny = %v", d4.Deny)
	}

	t.Run("ErrNeverIssued", func(t *testing.T) {
		_, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: base, AfterSeq: 9})
		wantCode(t, err, CodeInvalid)
		_, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: base + 1})
		wantCode(t, err, CodeInvalid)
	})
	t.Run("ErrWrongAircraft", func(t *testing.T) {
		_, err := f.reg.SyncDeltas(f.ctx, "D-AIUB", fl, req)
		wantCode(t, err, CodeForbidden)
	})
	t.Run("Superseded", func(t *testing.T) {
		m2, err := f.reg.BuildManifest(f.ctx, fl)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, req)
		if err != nil || !batch.Superseded || len(batch.Deltas) != 0 {
			t.Fatalf("old base = %+v, %v; want superseded", batch, err)
		}
		// The new manifest holds the state: nothing pending against it.
		batch, err = f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: m2.Body.Serial})
		if err != nil || batch.Superseded || len(batch.Deltas) != 0 {
			t.Fatalf("new base = %+v, %v; want empty", batch, err)
		}
	})
}

func TestDeltaBatchBounds(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")
	m, err := f.reg.BuildManifest(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	n := maxDeltaCredentials + 10
	for range n {
		p, d := f.passenger(700)
		f.optIn(p, d, fl)
	}
	batch, err := f.reg.SyncDeltas(f.ctx, "D-AIUA", fl, protocol.DeltaRequest{BaseSerial: m.Body.Serial})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Deltas) != 2 {
		t.Fatalf("deltas = %d, want 2 (%d credentials, %d per delta)", len(batch.Deltas), n, maxDeltaCredentials)
	}
	total := 0
	for _, raw := range batch.Deltas {
		d := verifyDelta(t, f.issuer.Public(), raw).Body
		total += len(d.Credentials)
	}
	if total != n {
		t.Fatalf("credentials across deltas = %d, want %d", total, n)
	}
	if _, err := protocol.EncodeDeltaBatch(batch); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryCredentialAndFunding(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("123", "D-AIUA", "EUR")
	p, d := f.passenger(700)
	c := f.optIn(p, d, fl)
	if err := f.reg.RevokeFor(f.ctx, c.Body.ID, protocol.DenyPassengerRequest, "moving to a new phone"); err != nil {
		t.Fatal(err)
	}
	got, err := f.reg.Credential(f.ctx, c.Body.ID)
	if err != nil || !slices.Equal(got.Raw, c.Raw) {
		t.Fatalf("Credential of a revoked one = %v; want it still", err)
	}
	if _, err := f.reg.Credential(f.ctx, protocol.ID{1}); !errors.Is(err, ground.ErrNotFound) {
		t.Fatalf("Credential(unknown) = %v", err)
	}
	fs, err := f.reg.Funding(f.ctx, p)
	if err != nil || fs.Kind != ground.FundingWallet {
		t.Fatalf("Funding = %+v, %v", fs, err)
	}
	if _, err := f.reg.Funding(f.ctx, protocol.ID{1}); !errors.Is(err, ground.ErrNotFound) {
		t.Fatalf("Funding(unknown) = %v", err)
	}
	wantCode(t, f.reg.Revoke(f.ctx, protocol.ID{1}), CodeNotFound)
	// Withdrawn at the passenger's request, the passenger may opt in again
	// for a new credential.
	again := f.optIn(p, d, fl)
	if again.Body.ID == c.Body.ID {
		t.Fatal("opt-in after revocation returned the revoked credential")
	}
}
