package wirejson

import (
	"encoding/json"
	"testing"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "COFFEE", "<b>&</b>", "\"\\", "\x00\x1f\x7f", "Zoë", "\u2028\u2029", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestScanner(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"OK", ` {"s":"x","n":-12,"u":7,"b":true,"a":[1,2]} `, true},
		{"Empty", `{"s":"","n":0,"u":0,"b":false,"a":[]}`, true},
		{"Escape", `{"s":"\n"}`, false},
		{"NonASCII", `{"s":"é"}`, false},
		{"Fraction", `{"n":1.5}`, false},
		{"Exponent", `{"n":1e3}`, false},
		{"LeadingZero", `{"n":01}`, false},
		{"NegativeUint", `{"u":-1}`, false},
		{"Overflow", `{"n":9223372036854775808}`, false},
		{"Null", `{"s":null}`, false},
		{"Duplicate", `{"s":"a","s":"b"}`, false},
		{"Unknown", `{"x":1}`, false},
		{"TrailingComma", `{"s":"a",}`, false},
		{"Trailing", `{"s":"a"} {}`, false},
		{"Truncated", `{"s":"a"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScanner([]byte(tc.in))
			ok := s.Object(func(key []byte) bool {
				switch string(key) {
				case "s":
					s.String()
				case "n":
					s.Int(64)
				case "u":
					s.Uint(64)
				case "b":
					s.Bool()
				case "a":
					return s.Array(func() bool { _, ok := s.Int(64); return ok })
				default:
					return false
				}
				return true
			}) && s.End()
			if ok != tc.ok {
				t.Errorf("scan %s = %v, want %v", tc.in, ok, tc.ok)
			}
		})
	}
}
