package sim

// FlightReport is one flight's outcome, counted from what the parts did:
// the handhelds' own records of approvals, the cabin server's journal and
// close report, and ground's clearing records and ledger. Nothing here
// comes from the simulator's plan.
type FlightReport struct {
	Flight   string `json:"flight"`
	Aircraft string `json:"aircraft"`
	Currency string `json:"currency"`
	// Role is "feeder" for the earlier flight that puts passengers in
	// arrears; empty for the flights the run is about.
	Role       string `json:"role,omitempty"`
	Passengers int    `json:"passengers"`
	// Registered passengers got an answer from ground; Refused of them
	// were refused a credential for a low credit score (they have no code
	// to show); Late registered after the manifest sync.
	Registered  int `json:"registered"`
	Refused     int `json:"refused_registration"`
	Late        int `json:"late_registration"`
	Approved    int `json:"approved"`
	Declined    int `json:"declined"`
	Settled     int `json:"settled"`
	Collections int `json:"collections"`
	Voided      int `json:"voided"`
	Quarantined int `json:"quarantined"`
	Disputed    int `json:"disputed"` // approved on board, refused on the ground: never charged
	// Unpaid counts approved sales that did not end settled, in
	// collections or voided (quarantined, disputed, still posted, lost).
	Unpaid           int   `json:"unpaid"`
	ApprovedMinor    int64 `json:"approved_minor"`
	SettledMinor     int64 `json:"settled_minor"`
	CollectionsMinor int64 `json:"collections_minor"`
	VoidedMinor      int64 `json:"voided_minor"`
	// Journal is what the cabin server's journal and close report say.
	Journal JournalCounts `json:"journal"`
	// Ground is what clearing received for the flight.
	Ground        GroundCounts `json:"ground"`
	FraudAttempts int          `json:"fraud_attempts"`
	FraudAccepted int          `json:"fraud_accepted"`
	Crashes       int          `json:"crashes"`
	Outages       int          `json:"outages"`
	ReplaySeconds float64      `json:"replay_seconds"`
	Reconciled    bool         `json:"reconciled"`
	// Problems says why the flight did not reconcile.
	Problems []string `json:"problems,omitempty"`
	// Declines counts declines by reason name.
	Declines map[string]int `json:"declines,omitempty"`
	// UnknownAfterIssue counts sales declined unknown_credential for a
	// passenger whose credential ground issued while the link was up,
	// before the sale: the manifest change push should make it 0.
	UnknownAfterIssue int `json:"unknown_credential_after_issue"`
	// WalletShort counts sales of prepaid passengers in collections
	// because the wallet could not pay: the hold makes it 0.
	WalletShort int `json:"wallet_short_collections"`
	// Fraud counts fraud attempts by kind, and Rejections how they were
	// turned away.
	Fraud      map[string]int `json:"fraud,omitempty"`
	Rejections map[string]int `json:"fraud_rejections,omitempty"`
}

// JournalCounts are the cabin server's own figures at the end.
type JournalCounts struct {
	Sales       uint64 `json:"sales"`
	Voids       uint64 `json:"voids"`
	SalesMinor  int64  `json:"sales_minor"`
	VoidsMinor  int64  `json:"voids_minor"`
	LastSeq     uint64 `json:"last_seq"`
	Cleared     int64  `json:"cleared"`
	Outstanding int64  `json:"outstanding"` // pending or sent without a receipt
}

// GroundCounts are what ground's clearing received and authenticated.
type GroundCounts struct {
	Sales      int    `json:"sales"`
	Voids      int    `json:"voids"`
	SalesMinor int64  `json:"sales_minor"`
	VoidsMinor int64  `json:"voids_minor"`
	LastSeq    uint64 `json:"last_seq"`
	Missing    uint64 `json:"missing_seqs"`
	HeadMatch  bool   `json:"chain_head_matches"`
}

// Totals add up every flight.
type Totals struct {
	Approved      int `json:"approved"`
	Declined      int `json:"declined"`
	Settled       int `json:"settled"`
	Collections   int `json:"collections"`
	Voided        int `json:"voided"`
	Lost          int `json:"lost"`
	DoubleCharged int `json:"double_charged"`
	FraudAttempts int `json:"fraud_attempts"`
	FraudAccepted int `json:"fraud_accepted"`
}

// Invariants are the money rules every run must keep.
type Invariants struct {
	NoLostInvoice   bool `json:"no_lost_invoice"`
	ExactlyOnce     bool `json:"exactly_once"`
	LedgerBalanced  bool `json:"ledger_balanced"`
	LimitsRespected bool `json:"limits_respected"`
	FraudRejected   bool `json:"fraud_rejected"`
	Reconciled      bool `json:"reconciled"`
	// NoneUnpaid: every sale a handheld holds as approved ended settled,
	// in collections or voided on the ground: none quarantined, disputed
	// or still posted.
	NoneUnpaid bool `json:"none_unpaid"`
	// ChangesOnBoard: no sale was declined unknown_credential for a
	// passenger whose credential ground issued while the link was up.
	ChangesOnBoard bool `json:"changes_on_board"`
	// PrepaidCovered: no prepaid passenger's sale went to collections for
	// want of balance: the cabin never approved beyond the held balance.
	PrepaidCovered bool `json:"prepaid_covered"`
}

// OK reports whether every invariant held.
func (iv Invariants) OK() bool {
	return iv.NoLostInvoice && iv.ExactlyOnce && iv.LedgerBalanced && iv.LimitsRespected && iv.FraudRejected && iv.Reconciled && iv.NoneUnpaid &&
		iv.ChangesOnBoard && iv.PrepaidCovered
}

// Timing is how long a phase of the run took, wall clock.
type Timing struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
}

// Options echoes the run's switches.
type Options struct {
	Passengers  int     `json:"passengers"`
	Handhelds   int     `json:"handhelds"`
	Flights     int     `json:"flights"`
	Outages     bool    `json:"outages"`
	Crash       bool    `json:"crash"`
	Fraud       bool    `json:"fraud"`
	DeclineRate float64 `json:"decline_rate"`
}

// Report is the whole run, printed as one JSON object with --json.
type Report struct {
	Seed    uint64         `json:"seed"`
	Options Options        `json:"options"`
	Flights []FlightReport `json:"flights"`
	// Feeder is the earlier flight that put passengers in arrears; its
	// figures count in the invariants but not in Totals.
	Feeder     *FlightReport `json:"feeder,omitempty"`
	Totals     Totals        `json:"totals"`
	Invariants Invariants    `json:"invariants"`
	Violations []string      `json:"violations,omitempty"`
	OK         bool          `json:"ok"`
	// SampleCode is one payment code scanned on the first flight.
	SampleCode string `json:"sample_code,omitempty"`
	// QRFiles are the PNG files written with --qr-out.
	QRFiles []string `json:"qr_files,omitempty"`
	// LedgerProblem is what ledger.Check found, if anything.
	LedgerProblem string   `json:"ledger_problem,omitempty"`
	Timings       []Timing `json:"timings"`
	Seconds       float64  `json:"seconds"`
	DataDir       string   `json:"data_dir,omitempty"`
}
