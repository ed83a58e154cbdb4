package harness

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestMeasureReplay runs the replay measurement small and fast, so CI
// keeps it working; the figures come from the bench command (5,000
// invoices over 1 Mbit/s and 600 ms). No timing is asserted.
func TestMeasureReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := MeasureReplay(ctx, 200, 8000, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Bytes < int64(res.Invoices)*100 || res.Seconds <= 0 {
		t.Fatalf("implausible measurement: %v", res)
	}
}

// TestMeasureReplayFlight is the real figure: a full flight of 5,000
// invoices over 1 Mbit/s with a 600 ms round trip. It runs only when
// AIRTAB_REPLAY_BENCH is set:
//
//	AIRTAB_REPLAY_BENCH=1 go test ./simulator/harness -run TestMeasureReplayFlight -v
func TestMeasureReplayFlight(t *testing.T) {
	if os.Getenv("AIRTAB_REPLAY_BENCH") == "" {
		t.Skip("set AIRTAB_REPLAY_BENCH=1 to measure a full flight's replay")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := MeasureReplay(ctx, 5000, 1000, 600*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
}
