package passengerapi_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestProtocolImportsNoServer checks the dependency direction: no package
// under protocol/ (commands and tests included) depends on ground/,
// onboard/ or simulator/, so a passenger app built on protocol carries no
// server code and protocol's tests need none.
func TestProtocolImportsNoServer(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-deps", "-test", "-f", `{{.ImportPath}} <- {{join .Imports " "}}`, "github.com/airtab/airtab/protocol/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	const mod = "github.com/airtab/airtab/"
	seen := 0
	for line := range strings.Lines(string(out)) {
		pkg, _, _ := strings.Cut(strings.TrimSpace(line), " <- ")
		pkg, _, _ = strings.Cut(pkg, " ") // "p [q.test]": p as built for q's tests
		if !strings.HasPrefix(pkg, mod) {
			continue
		}
		seen++
		for _, side := range []string{"ground", "onboard", "simulator"} {
			if rest, ok := strings.CutPrefix(pkg, mod); ok && (rest == side || strings.HasPrefix(rest, side+"/")) {
				t.Errorf("%s is a dependency of protocol/..., imported by %s", pkg, importersOf(string(out), pkg))
			}
		}
	}
	if seen < 3 {
		t.Fatalf("go list saw %d packages of the module; want protocol, crypto and more:\n%s", seen, out)
	}
}

// importersOf lists the packages in a go list -deps listing that import pkg.
func importersOf(listing, pkg string) string {
	var who []string
	for line := range strings.Lines(listing) {
		p, imports, _ := strings.Cut(strings.TrimSpace(line), " <- ")
		for _, i := range strings.Fields(imports) {
			if i == pkg {
				who = append(who, p)
			}
		}
	}
	return strings.Join(who, ", ")
}
