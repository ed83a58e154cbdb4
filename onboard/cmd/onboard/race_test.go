//go:build race

package main

// raceEnabled reports a -race build, whose shadow memory makes resident
// size meaningless.
const raceEnabled = true
