package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// maxProblems bounds how many problems one Check reports.
const maxProblems = 20

// ErrUnbalanced is matched by every error Check returns for a broken
// invariant (as opposed to a failed query).
var ErrUnbalanced = errors.New("ledger invariant broken")

// Check verifies the ledger's invariants over the whole database, in one
// read transaction so it sees one consistent state:
//
//   - per currency, the sum of every account's posted debits equals the sum
//     of posted credits;
//   - every account's posted totals equal the sums of the transfers that
//     debit and credit it;
//   - every transfer's currency is its accounts' currency;
//   - no account breaks its balance-limit flags;
//   - every reversal mirrors its original.
//
// Tests call it after every operation and the simulator after every run.
// It reads every row, so it is not for a hot path.
func Check(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("ledger: check: %w", err)
	}
	defer tx.Rollback()
	return CheckTx(ctx, tx)
}

// CheckTx is Check inside the caller's transaction.
func CheckTx(ctx context.Context, q Querier) error {
	var problems []string
	for _, c := range checks {
		p, err := c(ctx, q)
		if err != nil {
			return fmt.Errorf("ledger: check: %w", err)
		}
		problems = append(problems, p...)
		if len(problems) >= maxProblems {
			problems = problems[:maxProblems]
			break
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrUnbalanced, strings.Join(problems, "; "))
	}
	return nil
}

var checks = []func(context.Context, Querier) ([]string, error){
	checkCurrencies, checkAccountTotals, checkTransferCurrencies, checkFlags, checkReversals,
}

// listProblems runs query, which selects one text column per problem row, and
// formats each row with format.
func listProblems(ctx context.Context, q Querier, query, format string) ([]string, error) {
	rows, err := q.QueryContext(ctx, query+` LIMIT ?`, maxProblems)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf(format, s))
	}
	return out, rows.Err()
}

func checkCurrencies(ctx context.Context, q Querier) ([]string, error) {
	return listProblems(ctx, q, `SELECT currency || ': debits ' || SUM(debits_posted) || ' <> credits ' || SUM(credits_posted)
		FROM ledger_accounts GROUP BY currency HAVING SUM(debits_posted) <> SUM(credits_posted)`,
		"currency %s")
}

func checkAccountTotals(ctx context.Context, q Querier) ([]string, error) {
	return listProblems(ctx, q, `SELECT name || ': posted ' || debits_posted || '/' || credits_posted || ', transfers ' || d || '/' || c
		FROM (SELECT a.name, a.debits_posted, a.credits_posted, COALESCE(dd.sum, 0) AS d, COALESCE(cc.sum, 0) AS c
			FROM ledger_accounts a
			LEFT JOIN (SELECT debit_account AS id, SUM(amount) AS sum FROM ledger_transfers GROUP BY debit_account) dd ON dd.id = a.id
			LEFT JOIN (SELECT credit_account AS id, SUM(amount) AS sum FROM ledger_transfers GROUP BY credit_account) cc ON cc.id = a.id) AS totals
		WHERE debits_posted <> d OR credits_posted <> c`,
		"account %s (debits/credits)")
}

func checkTransferCurrencies(ctx context.Context, q Querier) ([]string, error) {
	return listProblems(ctx, q, `SELECT hex(t.id) || ' in ' || t.currency || ' between ' || d.currency || ' and ' || c.currency
		FROM ledger_transfers t
		JOIN ledger_accounts d ON d.id = t.debit_account
		JOIN ledger_accounts c ON c.id = t.credit_account
		WHERE t.currency <> d.currency OR t.currency <> c.currency`,
		"transfer %s")
}

func checkFlags(ctx context.Context, q Querier) ([]string, error) {
	return listProblems(ctx, q, `SELECT name FROM ledger_accounts
		WHERE ((flags & 1) <> 0 AND debits_posted > credits_posted) OR ((flags & 2) <> 0 AND credits_posted > debits_posted)`,
		"account %s breaks its balance limit")
}

func checkReversals(ctx context.Context, q Querier) ([]string, error) {
	return listProblems(ctx, q, `SELECT hex(r.id) FROM ledger_transfers r
		LEFT JOIN ledger_transfers o ON o.id = r.reverses
		WHERE r.reverses IS NOT NULL AND (o.id IS NULL OR o.reverses IS NOT NULL
			OR r.debit_account <> o.credit_account OR r.credit_account <> o.debit_account
			OR r.amount <> o.amount OR r.currency <> o.currency OR r.code <> o.code OR r.ref <> o.ref)`,
		"reversal %s does not mirror its original")
}
