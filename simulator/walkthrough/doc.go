// Package walkthrough holds the test that runs the README's "Running it for
// real" section as a script, with the real built binaries (ground, onboard,
// wallet), curl, jq and openssl, on free loopback ports: the README's
// commands are the test's steps, taken from README.md at test time, so the
// two cannot drift apart. See walkthrough_test.go and
// testdata/walkthrough.txtar.
package walkthrough
