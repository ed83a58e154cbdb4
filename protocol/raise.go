package protocol

// RaisedFrom reports whether credential c is older signed anew with limits
// at least as high: the same id, passenger, device, flight and validity
// window, the same currency, a limit and a transaction cap no lower. Ground
// raises a prepaid passenger's limit after a top-up this way (SPEC.md
// §10.4): a cabin server replaces the credential it holds by the raised
// one, and a code that still embeds the older one pays within the older
// limits.
func (c Credential) RaisedFrom(older Credential) bool {
	return c.Version == older.Version && c.ID == older.ID && c.Passenger == older.Passenger &&
		c.Device.Equal(older.Device.PublicKey) && c.Flight == older.Flight &&
		c.NotBefore.Equal(older.NotBefore) && c.NotAfter.Equal(older.NotAfter) &&
		c.Limit.Currency == older.Limit.Currency && c.TxCap.Currency == older.TxCap.Currency &&
		c.Limit.Minor >= older.Limit.Minor && c.TxCap.Minor >= older.TxCap.Minor
}
