package clearing

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

func capture(t *testing.T, a *SimAcquirer, key protocol.ID, attempt uint32, token string) (CaptureResult, error) {
	t.Helper()
	return a.Capture(context.Background(), CaptureRequest{Key: key, Attempt: attempt, Card: cardWith(token), Amount: eur(100)})
}

func TestSimAcquirerTokens(t *testing.T) {
	a := NewSimAcquirer(SimConfig{Clock: func() time.Time { return t0 }})
	for token, want := range map[string]DeclineCode{
		"tok_ok":               "",
		"tok_insufficient_abc": DeclineInsufficientFunds,
		"tok_expired_abc":      DeclineCardExpired,
		"tok_fraud_abc":        DeclineFraudSuspected,
	} {
		r, err := capture(t, a, protocol.NewID(nil), 1, token)
		if err != nil || r.Approved != (want == "") || r.Decline != want {
			t.Errorf("%s: %+v, %v; want decline %q", token, r, err, want)
		}
	}
	expired := cardWith("tok_ok_2")
	expired.ExpYear, expired.ExpMonth = 2026, 10
	r, err := a.Capture(context.Background(), CaptureRequest{Key: protocol.NewID(nil), Attempt: 1, Card: expired, Amount: eur(1)})
	if err != nil || r.Decline != DeclineCardExpired {
		t.Errorf("card expired 10/2026 at %s: %+v, %v", t0.Format(time.DateOnly), r, err)
	}
}

func TestSimAcquirerDeterministic(t *testing.T) {
	outcomes := func(seed uint64) (string, int) {
		a := NewSimAcquirer(SimConfig{Seed: seed, DeclinePercent: 30})
		s, declined := "", 0
		for i := range 200 {
			r, err := capture(t, a, protocol.NewID(nil), 1, fmt.Sprintf("tok_card_%d", i))
			if err != nil {
				t.Fatal(err)
			}
			s += string(r.Decline) + ","
			if !r.Approved {
				declined++
			}
		}
		return s, declined
	}
	a1, n := outcomes(7)
	a2, _ := outcomes(7)
	b, _ := outcomes(8)
	if a1 != a2 {
		t.Error("the same seed and tokens gave different outcomes")
	}
	if a1 == b {
		t.Error("another seed gave the same outcomes")
	}
	if n < 30 || n > 90 {
		t.Errorf("%d of 200 declined at 30%%", n)
	}
}

func TestSimAcquirerIdempotent(t *testing.T) {
	a := NewSimAcquirer(SimConfig{})
	key := protocol.NewID(nil)
	r1, err1 := capture(t, a, key, 1, "tok_ok")
	r2, err2 := capture(t, a, key, 1, "tok_ok")
	if err1 != nil || err2 != nil || r1 != r2 || !r1.Approved {
		t.Fatalf("two calls with one key: %+v %v, %+v %v", r1, err1, r2, err2)
	}
	if got := a.Captures(key); got != 1 {
		t.Errorf("captures = %d, want 1", got)
	}
	// A decline is an answer too: the same key declines again, a new
	// attempt is asked afresh.
	a.FailNext(1, SimDeclineInsufficient)
	k2 := protocol.NewID(nil)
	if r, _ := capture(t, a, k2, 1, "tok_ok"); r.Approved {
		t.Fatal("forced decline approved")
	}
	if r, _ := capture(t, a, k2, 1, "tok_ok"); r.Approved {
		t.Error("the same key approved after its decline")
	}
	if r, _ := capture(t, a, k2, 2, "tok_ok"); !r.Approved {
		t.Error("a new attempt was not asked afresh")
	}
}

func TestSimAcquirerTimeouts(t *testing.T) {
	t.Run("BeforeCapture", func(t *testing.T) {
		a := NewSimAcquirer(SimConfig{})
		key := protocol.NewID(nil)
		a.FailNext(2, SimTimeout)
		for range 2 {
			if _, err := capture(t, a, key, 1, "tok_ok"); !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
		}
		if a.Captures(key) != 0 {
			t.Fatal("captured on a timeout before capture")
		}
		if r, err := capture(t, a, key, 1, "tok_ok"); err != nil || !r.Approved || a.Captures(key) != 1 {
			t.Fatalf("retry: %+v %v, captures %d", r, err, a.Captures(key))
		}
	})
	t.Run("AfterCapture", func(t *testing.T) {
		a := NewSimAcquirer(SimConfig{})
		key := protocol.NewID(nil)
		a.FailNext(1, SimTimeoutAfterCapture)
		if _, err := capture(t, a, key, 1, "tok_ok"); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if r, err := capture(t, a, key, 1, "tok_ok"); err != nil || !r.Approved {
			t.Fatalf("retry: %+v %v", r, err)
		}
		if got := a.Captures(key); got != 1 {
			t.Errorf("captures = %d, want 1", got)
		}
	})
	t.Run("ContextDeadline", func(t *testing.T) {
		a := NewSimAcquirer(SimConfig{Latency: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := a.Capture(ctx, CaptureRequest{Key: protocol.NewID(nil), Attempt: 1, Card: card, Amount: eur(1)})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
		}
	})
}

func TestSimAcquirerRefundVoid(t *testing.T) {
	a := NewSimAcquirer(SimConfig{})
	ctx := context.Background()
	key := protocol.NewID(nil)
	if err := a.Refund(ctx, key, eur(100)); !errors.Is(err, ErrNotCaptured) {
		t.Errorf("refund before capture: %v, want ErrNotCaptured", err)
	}
	if _, err := capture(t, a, key, 1, "tok_ok"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := a.Refund(ctx, key, eur(100)); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Refunded(key) {
		t.Error("not refunded")
	}

	k2 := protocol.NewID(nil)
	if refunded, err := a.Void(ctx, k2); err != nil || refunded {
		t.Fatalf("void before capture: %v %v", refunded, err)
	}
	if r, _ := capture(t, a, k2, 1, "tok_ok"); r.Approved || r.Decline != DeclineVoided {
		t.Errorf("capture after void: %+v", r)
	}
	k3 := protocol.NewID(nil)
	if _, err := capture(t, a, k3, 1, "tok_ok"); err != nil {
		t.Fatal(err)
	}
	if refunded, err := a.Void(ctx, k3); err != nil || !refunded {
		t.Errorf("void after capture: refunded %v, %v", refunded, err)
	}
	if refunded, _ := a.Void(ctx, k3); refunded {
		t.Error("second void refunded again")
	}
}
