package natsvc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
)

// HeartbeatConfig configures a Heartbeat. Conn is required.
type HeartbeatConfig struct {
	Conn *nats.Conn
	// Interval between heartbeats. Default 5 s.
	Interval time.Duration
	// Clock is the time published. Default time.Now.
	Clock func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Heartbeat publishes ground's clock (protocol.Heartbeat) on
// protocol.HeartbeatSubject once at start and then every Interval, so a
// cabin server can tell the link is live and how far its clock drifts.
type Heartbeat struct {
	cfg    HeartbeatConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartHeartbeat publishes the first heartbeat and starts the ticker. Stop
// it with Stop.
func StartHeartbeat(cfg HeartbeatConfig) (*Heartbeat, error) {
	if cfg.Conn == nil {
		return nil, errors.New("natsvc: HeartbeatConfig.Conn is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Heartbeat{cfg: cfg}
	if err := h.beat(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Go(func() { h.run(ctx) })
	return h, nil
}

// Stop stops the ticker and waits for it.
func (h *Heartbeat) Stop() {
	h.cancel()
	h.wg.Wait()
}

func (h *Heartbeat) run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Log the first failure and the recovery, not every tick.
		err := h.beat()
		if err != nil && !failing {
			h.cfg.Logger.Warn("heartbeat publish failing", "err", err)
		} else if err == nil && failing {
			h.cfg.Logger.Info("heartbeat publish recovered")
		}
		failing = err != nil
	}
}

func (h *Heartbeat) beat() error {
	b, err := protocol.EncodeHeartbeat(protocol.Heartbeat{Time: h.cfg.Clock().UTC()})
	if err != nil {
		return err
	}
	return h.cfg.Conn.Publish(protocol.HeartbeatSubject, b)
}
