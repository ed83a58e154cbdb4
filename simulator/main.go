// Command simulator flies whole Airtab flights end to end with real parts.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	fs := flag.NewFlagSet("simulator", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./simulator\n\nFlies Airtab flights end to end with real parts and checks the money invariants.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	fmt.Println("Airtab simulator: the protocol and keys are in place; the flight simulation is not built yet.")
}
