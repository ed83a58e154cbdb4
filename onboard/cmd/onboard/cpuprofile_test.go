package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/airtab/airtab/onboard/app"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
)

// TestCPUProfile: --cpuprofile writes a CPU profile of the cabin server
// from start to shutdown, in the gzipped protobuf form go tool pprof reads.
func TestCPUProfile(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	profile := filepath.Join(t.TempDir(), "cabin.pprof")
	m := app.NewMain()
	if err := m.ParseFlags(append(setup(t, f, filepath.Join(t.TempDir(), "data")), "--cpuprofile", profile), io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config.CPUProfile, profile; got != want {
		t.Fatalf("CPUProfile = %q, want %q", got, want)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("profile starts %x, want the gzip magic 1f8b", b[:min(len(b), 2)])
	}
}
