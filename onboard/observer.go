package onboard

import "github.com/airtab/airtab/protocol"

// Observer receives the cabin server's sale decisions for operators'
// metrics (onboard/metrics implements it with Prometheus). It is called on
// the handler goroutines, so it must be quick and safe for concurrent use;
// it never changes a decision.
type Observer interface {
	// SaleDecided is called once per sale decided: reason 0 for an
	// approval, the decline's reason otherwise. A retry answered with an
	// earlier approval is not a new decision and is not reported.
	SaleDecided(reason protocol.Reason)
}

// observeSale reports a decision to the configured Observer, if any.
func (c *Cabin) observeSale(r protocol.Reason) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.SaleDecided(r)
	}
}
