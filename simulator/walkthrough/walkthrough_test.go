package walkthrough

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The README marks each command block of "Running it for real" with an
// HTML comment on the line before it, which GitHub does not show:
//
//	<!-- step register -->          a block run in the reader's shell
//	<!-- step ground server -->     a server the reader leaves running in a terminal of its own
//	<!-- output -->                 what a command printed, not to be run
//	<!-- example -->                a command for another set-up (a PostgreSQL
//	                                database, a NATS cluster's configuration),
//	                                not run here: its own tests cover it
//
// Every indented code block of the section must carry one of them, and
// testdata/walkthrough.txtar must run every step, once, in README order
// (TestScriptRunsEveryStep), so a command added to the README is a command
// tested.
//
// A step becomes steps/<name>.sh in the script's work directory, the
// README's text with three substitutions, and nothing else:
//
//   - "go run ./<dir>/cmd/<name>" is the binary <name> built from the
//     checkout, on PATH;
//   - the README's fixed addresses 127.0.0.1:8080 (ground HTTP),
//     127.0.0.1:4222 (ground NATS) and 127.0.0.1:8443 (cabin server) are
//     free loopback ports of this run;
//   - variables a step sets (DAY=..., SESSION=...) are kept for the
//     following steps, as they would be in the reader's shell.
//
// A server step runs in the background (exec ... &name&) until the script
// stops it; its log is also written to NAME.log, where the script waits
// for what the README tells the reader to wait for ("manifest loaded").

const readmeSection = "## Running it for real"

// defaultAddrs are the addresses the README uses, replaced in a run by free
// ports; the key names the environment variable holding the run's
// address.
var defaultAddrs = []struct{ env, addr string }{
	{"GROUND_HTTP", "127.0.0.1:8080"},
	{"GROUND_NATS", "127.0.0.1:4222"},
	{"CABIN_HTTPS", "127.0.0.1:8443"},
}

// step is one command block of the README section.
type step struct {
	name   string
	server bool
	code   string // as in the README, unindented
	line   int    // of the marker, for messages
}

var (
	markerRE = regexp.MustCompile(`^<!-- (step ([a-z][a-z0-9-]*)( server)?|output|example) -->$`)
	goRunRE  = regexp.MustCompile(`go run \./(?:[a-z]+/)*cmd/([a-z]+)`)
	assignRE = regexp.MustCompile(`(?m)^\s*([A-Z][A-Z0-9_]*)=`)
)

// readSteps returns the steps of the README section, in order. It fails on
// a code block without a marker and on a marker without a block.
func readSteps(readme string) ([]step, error) {
	lines := strings.Split(readme, "\n")
	start := slices.Index(lines, readmeSection)
	if start < 0 {
		return nil, fmt.Errorf("README has no %q section", readmeSection)
	}
	var steps []step
	var pending string // the marker waiting for its block
	pendingLine := 0
	seen := map[string]bool{}
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") {
			break
		}
		if m := markerRE.FindStringSubmatch(l); m != nil {
			if pending != "" {
				return nil, fmt.Errorf("README line %d: marker %q has no code block before the next marker", pendingLine, pending)
			}
			pending, pendingLine = m[1], i+1
			continue
		}
		if !strings.HasPrefix(l, "    ") || strings.TrimSpace(l) == "" || (i > 0 && strings.TrimSpace(lines[i-1]) != "" && !markerRE.MatchString(lines[i-1])) {
			continue
		}
		// An indented code block starts here: it runs to the first line
		// that is neither indented nor blank.
		var block []string
		for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.TrimSpace(lines[i]) == ""); i++ {
			block = append(block, strings.TrimPrefix(lines[i], "    "))
		}
		i--
		code := strings.TrimRight(strings.Join(block, "\n"), "\n ") + "\n"
		switch {
		case pending == "":
			return nil, fmt.Errorf("README line %d: a code block in %q without a <!-- step NAME -->, <!-- output --> or <!-- example --> marker before it", i-len(block)+2, readmeSection)
		case pending == "output", pending == "example":
		default:
			f := strings.Fields(strings.TrimPrefix(pending, "step "))
			if seen[f[0]] {
				return nil, fmt.Errorf("README line %d: step %q twice", pendingLine, f[0])
			}
			seen[f[0]] = true
			steps = append(steps, step{name: f[0], server: len(f) > 1, code: code, line: pendingLine})
		}
		pending = ""
	}
	if pending != "" {
		return nil, fmt.Errorf("README line %d: marker %q has no code block", pendingLine, pending)
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("README section %q has no steps", readmeSection)
	}
	return steps, nil
}

// scripts turns the steps into shell scripts for a run whose addresses are
// addrs (by defaultAddrs env name).
func scripts(steps []step, addrs map[string]string) map[string]string {
	out := map[string]string{}
	var vars []string // set by the steps so far, kept across steps
	for _, s := range steps {
		code := goRunRE.ReplaceAllString(s.code, "$1")
		for _, d := range defaultAddrs {
			code = strings.ReplaceAll(code, d.addr, addrs[d.env])
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# README step %s (README.md line %d), generated by walkthrough_test.go\n", s.name, s.line)
		if s.server {
			// exec, so the script's signals reach the server itself; its
			// log also goes to NAME.log, for waitfor -log.
			fmt.Fprintf(&b, "exec 2> >(tee %s.log >&2)\n", s.name)
			b.WriteString("exec " + code)
			out[s.name] = b.String()
			continue
		}
		for _, m := range assignRE.FindAllStringSubmatch(code, -1) {
			if !slices.Contains(vars, m[1]) {
				vars = append(vars, m[1])
			}
		}
		b.WriteString("set -euo pipefail\n")
		b.WriteString("if [ -f .walkthrough.env ]; then . ./.walkthrough.env; fi\n")
		b.WriteString(code)
		if len(vars) > 0 {
			fmt.Fprintf(&b, "declare -p %s > .walkthrough.env\n", strings.Join(vars, " "))
		}
		out[s.name] = b.String()
	}
	return out
}

// scriptSteps returns the step names the script runs, in order: "step
// NAME" commands and "exec bash steps/NAME.sh" lines.
func scriptSteps(script string) []string {
	var names []string
	re := regexp.MustCompile(`^(?:\[[^]]*\] )?(?:step(?: -\S+ (?:'[^']*'|\S+))* ([a-z0-9-]+)|exec bash steps/([a-z0-9-]+)\.sh\b)`)
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "-- ") { // the archive's files start here
			break
		}
		if m := re.FindStringSubmatch(l); m != nil {
			names = append(names, m[1]+m[2])
		}
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScriptRunsEveryStep fails when the README and the script differ: a
// README step the script does not run, a script step the README does not
// have, or the two in another order.
func TestScriptRunsEveryStep(t *testing.T) {
	steps, err := readSteps(readFile(t, "../../README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var readme []string
	for _, s := range steps {
		readme = append(readme, s.name)
	}
	script := scriptSteps(readFile(t, "testdata/walkthrough.txtar"))
	if !slices.Equal(slices.Compact(slices.Clone(script)), readme) || len(slices.Compact(slices.Clone(script))) != len(script) {
		t.Fatalf("README steps and the script's differ:\nREADME %q\nscript %q\n(the script runs every README step once, in README order)", readme, script)
	}
}

// TestReadSteps checks the README reader on a small document.
func TestReadSteps(t *testing.T) {
	doc := readmeSection + "\n\nText.\n\n<!-- step one server -->\n\n    go run ./ground/cmd/ground --http 127.0.0.1:8080 \\\n        --data-dir d\n\n" +
		"More text.\n\n<!-- output -->\n\n    {\"ok\":true}\n\n<!-- step two -->\n\n    A=1\n    echo $A\n\n    B=2\n\n## Next\n\n    not in the section\n"
	steps, err := readSteps(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].name != "one" || !steps[0].server || steps[1].name != "two" || steps[1].server {
		t.Fatalf("steps = %+v", steps)
	}
	if got, want := steps[1].code, "A=1\necho $A\n\nB=2\n"; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
	sc := scripts(steps, map[string]string{"GROUND_HTTP": "127.0.0.1:1234"})
	if got := sc["one"]; !strings.Contains(got, "exec ground --http 127.0.0.1:1234 \\\n") {
		t.Errorf("server script = %q", got)
	}
	if got := sc["two"]; !strings.Contains(got, "declare -p A B > .walkthrough.env") {
		t.Errorf("step script = %q", got)
	}
	for name, doc := range map[string]string{
		"Unmarked":       readmeSection + "\n\nText.\n\n    rm -rf /\n",
		"MarkerNoBlock":  readmeSection + "\n\n<!-- step a -->\n\nText.\n\n<!-- step b -->\n\n    true\n",
		"Twice":          readmeSection + "\n\n<!-- step a -->\n\n    true\n\n<!-- step a -->\n\n    true\n",
		"NoSection":      "# Other\n",
		"TrailingMarker": readmeSection + "\n\n<!-- step a -->\n",
	} {
		if _, err := readSteps(doc); err == nil {
			t.Errorf("%s: readSteps = nil error", name)
		}
	}
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildBinaries builds the commands the README runs into dir.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./ground/cmd/ground", "./onboard/cmd/onboard", "./protocol/cmd/wallet")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// pollTimeout bounds every wait of the script: generous, as the machine
// may be busy; a wait that ends early costs nothing.
const pollTimeout = 30 * time.Second

// TestWalkthrough runs testdata/walkthrough.txtar: the README's steps with
// the real binaries, checking what each printed.
func TestWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" { // CI must run it, as it does the browser tests
				t.Fatalf("%s not found under CI=%s (install the Debian package %s): the README walkthrough cannot run", tool, os.Getenv("CI"), tool)
			}
			t.Skipf("%s not found (install the Debian package %s): the README walkthrough is not run", tool, tool)
		}
	}
	steps, err := readSteps(readFile(t, "../../README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	buildBinaries(t, bin)
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			addrs := map[string]string{}
			for _, d := range defaultAddrs {
				addrs[d.env] = freeAddr(t)
				env.Setenv(d.env, addrs[d.env])
			}
			if err := os.Mkdir(filepath.Join(env.WorkDir, "steps"), 0o755); err != nil {
				return err
			}
			for name, sh := range scripts(steps, addrs) {
				if err := os.WriteFile(filepath.Join(env.WorkDir, "steps", name+".sh"), []byte(sh), 0o644); err != nil {
					return err
				}
			}
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"step":       cmdStep,
			"waitfor":    cmdWaitFor,
			"gitignored": cmdGitIgnored(readFile(t, "../../.gitignore")),
		},
	})
}

// cmdStep is the script command "step [-until REGEXP] NAME": it runs
// steps/NAME.sh with bash, failing when it fails; with -until, again until
// its stdout matches REGEXP (for what becomes true a moment later: a
// replayed flight reconciling). Its stdout and stderr are the script's
// stdout and stderr.
func cmdStep(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! step")
	}
	var until *regexp.Regexp
	if len(args) == 3 && args[0] == "-until" {
		until = regexp.MustCompile("(?m)" + args[1])
		args = args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: step [-until REGEXP] NAME")
	}
	script := filepath.Join("steps", args[0]+".sh")
	deadline := time.Now().Add(pollTimeout)
	for {
		err := ts.Exec("bash", script)
		if until == nil {
			ts.Check(err)
			return
		}
		if err == nil && until.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("step %s: stdout does not match %q after %v (last error %v)", args[0], until, pollTimeout, err)
		}
		// A second, as a person would: the step may be a sign-in, of
		// which the cabin server allows 5 a minute.
		time.Sleep(time.Second)
	}
}

// harnessFiles are what this test, not the README, puts in the work
// directory.
var harnessFiles = regexp.MustCompile(`^(steps|\.tmp|\.walkthrough\.env|[a-z]+\.log)$`)

// cmdGitIgnored is the script command "gitignored": every file or
// directory the README's commands made at the top of the work directory
// (the checkout's, for a reader) is ignored by a line "/NAME/" or "/NAME"
// of the checkout's .gitignore.
func cmdGitIgnored(gitignore string) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 0 {
			ts.Fatalf("usage: gitignored")
		}
		ignored := map[string]bool{}
		for l := range strings.Lines(gitignore) {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "/") && !strings.Contains(strings.Trim(l, "/"), "/") {
				ignored[strings.Trim(l, "/")] = true
			}
		}
		entries, err := os.ReadDir(ts.Getenv("WORK"))
		ts.Check(err)
		for _, e := range entries {
			if !harnessFiles.MatchString(e.Name()) && !ignored[e.Name()] {
				ts.Fatalf("the README's commands made %s, which .gitignore does not cover (add /%s/)", e.Name(), e.Name())
			}
		}
	}
}

// cmdWaitFor is the script command "waitfor FILE|URL..." or "waitfor -log
// FILE REGEXP": it waits until each file exists, or each URL answers 200 (an
// https URL without checking the certificate: only readiness is asked
// here), or until a line of the log FILE matches REGEXP.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: waitfor FILE|URL... | waitfor -log FILE REGEXP")
	}
	if args[0] == "-log" {
		if len(args) != 3 {
			ts.Fatalf("usage: waitfor -log FILE REGEXP")
		}
		re := regexp.MustCompile("(?m)" + args[2])
		deadline := time.Now().Add(pollTimeout)
		for {
			b, _ := os.ReadFile(ts.MkAbs(args[1]))
			if re.Match(b) {
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitfor -log %s: no line matches %q after %v", args[1], args[2], pollTimeout)
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	for _, a := range args {
		ready := func() error {
			if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
				_, err := os.Stat(ts.MkAbs(a))
				return err
			}
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, a, nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		}
		deadline := time.Now().Add(pollTimeout)
		for err := ready(); err != nil; err = ready() {
			if time.Now().After(deadline) {
				ts.Fatalf("waitfor %s: not ready after %v: %v", a, pollTimeout, err)
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
}
