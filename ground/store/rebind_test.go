package store_test

import (
	"testing"

	"github.com/airtab/airtab/ground/store"
)

// TestRebindPostgresLexing: what PostgreSQL reads as a string, a quoted
// body or a comment keeps its question marks, however it is written.
func TestRebindPostgresLexing(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"EscapeStringQuote", `SELECT E'it\'s ?', ?`, `SELECT E'it\'s ?', $1`},
		{"EscapeStringBackslash", `SELECT e'\\', ?`, `SELECT e'\\', $1`},
		{"EscapeStringDoubledQuote", `SELECT E'a''?', ?`, `SELECT E'a''?', $1`},
		{"StandardStringBackslash", `SELECT 'a\', ?`, `SELECT 'a\', $1`},
		{"DoubledQuote", `SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"TaggedDollarQuote", `DO $fn$ BEGIN PERFORM '?'; RAISE NOTICE '%', 1 ? 2; END $fn$; SELECT ?`, `DO $fn$ BEGIN PERFORM '?'; RAISE NOTICE '%', 1 ? 2; END $fn$; SELECT $1`},
		{"DollarQuoteInsideTag", `SELECT $a$ $$ ? $$ $a$, ?`, `SELECT $a$ $$ ? $$ $a$, $1`},
		{"DollarInIdentifier", `SELECT a$b$ FROM t WHERE x = ?`, `SELECT a$b$ FROM t WHERE x = $1`},
		{"PositionalThenBare", `SELECT $1::text WHERE a = ?2`, `SELECT $1::text WHERE a = $2`},
		{"NestedComment", `SELECT /* a /* ? */ ? */ ?`, `SELECT /* a /* ? */ ? */ $1`},
		{"Cast", `SELECT ?::bigint, ?::text`, `SELECT $1::bigint, $2::text`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.Rebind(tc.in); got != tc.want {
				t.Errorf("Rebind(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}
