package natsvc

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/protocol"
)

// TestNotifierSpacesNotices: a burst of changes to one flight gives one
// notice at once and one more at the end of the interval, not one each;
// another flight's notice is not held back by it.
func TestNotifierSpacesNotices(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer s.Shutdown()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan string, 100)
	sub, err := nc.Subscribe(protocol.AllNotices, func(m *nats.Msg) { got <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a, f1, f2 := protocol.AircraftID("D-AIUA"), protocol.FlightID("XX1-2026-11-21"), protocol.FlightID("XX2-2026-11-21")
	// An interval longer than the test: the trailing notice is fired by
	// hand below, so nothing here depends on timing.
	n := &Notifier{Conn: nc, Interval: time.Hour}
	defer n.Stop()
	for range 20 {
		n.Notify(a, f1)
	}
	n.Notify(a, f2)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	wait := func(subj string, count int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for seen[subj] < count {
			select {
			case s := <-got:
				seen[s]++
			case <-deadline:
				t.Fatalf("notices %v: want %d on %s", seen, count, subj)
			}
		}
	}
	wait(protocol.NoticeSubject(a, f1), 1)
	wait(protocol.NoticeSubject(a, f2), 1)
	n.mu.Lock()
	st := n.flights[noticeKey{a, f1}]
	pending := st != nil && st.pending != nil
	n.mu.Unlock()
	if !pending {
		t.Fatal("the 19 changes after the first notice have no trailing notice scheduled")
	}
	n.trailing(noticeKey{a, f1}) // the interval's end
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	wait(protocol.NoticeSubject(a, f1), 2)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for len(got) > 0 {
		seen[<-got]++
	}
	if seen[protocol.NoticeSubject(a, f1)] != 2 || seen[protocol.NoticeSubject(a, f2)] != 1 {
		t.Errorf("notices = %v, want 2 for the burst's flight and 1 for the other", seen)
	}
}
