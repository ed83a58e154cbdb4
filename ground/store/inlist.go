package store

import "strings"

// InChunk is how many values one statement's IN list asks for when a batch
// reads many rows by key: a fixed arity, a shorter chunk padded with its
// first value, so every chunk runs the same prepared statement however many
// keys a batch has. Ground clearing, its ledger and the registry read a
// batch's rows this way.
const InChunk = 64

// InList is "(?, ?, …)" with InChunk placeholders.
var InList = "(" + strings.TrimSuffix(strings.Repeat("?, ", InChunk), ", ") + ")"

// InArgs returns the values of chunk (one to InChunk of them) as the
// arguments of an InList, each made by arg, padded to InChunk with the
// first.
func InArgs[T any](chunk []T, arg func(T) any) []any {
	args := make([]any, InChunk)
	for i := range args {
		v := chunk[0]
		if i < len(chunk) {
			v = chunk[i]
		}
		args[i] = arg(v)
	}
	return args
}
