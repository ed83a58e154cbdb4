package natsvc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkClearingJetStream measures what JetStream costs clearing per
// invoice, with every write fsynced (the default, SyncInterval 0) and with
// nats-server's own two-minute sync: the aircraft's invoice published and
// acknowledged in batches, clearing's consumer fetching and acknowledging
// it, its receipt published asynchronously in a batch as clearing does
// (ground/clearing/nats.go), and the aircraft's receipt consumer fetching
// and acknowledging the receipt. Compare ns/op of the two with
//
//	go test ./ground/natsvc/ -run '^$' -bench ClearingJetStream -benchtime 4000x
func BenchmarkClearingJetStream(b *testing.B) {
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"SyncAlways", 0}, {"Sync2m", 2 * time.Minute}} {
		b.Run(c.name, func(b *testing.B) { benchClearing(b, c.interval) })
	}
}

func benchClearing(b *testing.B, interval time.Duration) {
	ctx := context.Background()
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: b.TempDir(), Logger: quiet, SyncInterval: interval})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := EnsureStreams(ctx, js, Streams{Logger: quiet}); err != nil {
		b.Fatal(err)
	}
	const a, f = protocol.AircraftID("D-AIBM"), protocol.FlightID("XX1-2026-12-03")
	clearing, err := js.CreateOrUpdateConsumer(ctx, protocol.StreamInvoices, jetstream.ConsumerConfig{Durable: "bench-clearing", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	aircraft, err := js.CreateOrUpdateConsumer(ctx, protocol.StreamReceipts, jetstream.ConsumerConfig{Durable: "bench-receipts",
		FilterSubject: protocol.ReceiptFilter(a), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	invoice, receipt := make([]byte, 480), make([]byte, 330) // about the protocol's sizes
	const batch = 256                                        // clearing's batch
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		if err := publishAll(js, protocol.InvoiceSubject(a, f), invoice, n, done); err != nil {
			b.Fatal(err)
		}
		if err := consumeAll(clearing, n); err != nil {
			b.Fatal(err)
		}
		if err := publishAll(js, protocol.ReceiptSubject(a, f), receipt, n, done); err != nil {
			b.Fatal(err)
		}
		if err := consumeAll(aircraft, n); err != nil {
			b.Fatal(err)
		}
		done += n
	}
}

// publishAll publishes n messages to subject at once and waits for every
// acknowledgement.
func publishAll(js jetstream.JetStream, subject string, data []byte, n, from int) error {
	var acks []jetstream.PubAckFuture
	for i := range n {
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID(fmt.Sprint(subject, from+i)))
		if err != nil {
			return err
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("publish to %s: no acknowledgement", subject)
		}
	}
	return nil
}

// consumeAll fetches and acknowledges n messages.
func consumeAll(c jetstream.Consumer, n int) error {
	for n > 0 {
		msgs, err := c.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return err
		}
		got := 0
		var last jetstream.Msg
		for m := range msgs.Messages() {
			if last != nil {
				if err := last.Ack(); err != nil {
					return err
				}
			}
			last = m
			got++
		}
		if last != nil { // the last one waits until the server has them all
			if err := last.DoubleAck(context.Background()); err != nil {
				return err
			}
		}
		if got == 0 {
			return fmt.Errorf("fetch: nothing, %d to go (%v)", n, msgs.Error())
		}
		n -= got
	}
	return nil
}
