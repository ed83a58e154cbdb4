package onboard

// PauseWriter makes the writer wait before its next batch until resume is
// called, so a test can let many requests queue up and see them committed
// together.
func (c *Cabin) PauseWriter() (resume func()) {
	c.writerGate.Lock()
	return c.writerGate.Unlock
}

// Pending returns the number of requests queued for the writer and not yet
// answered.
func (c *Cabin) Pending() int64 { return c.pending.Load() }
