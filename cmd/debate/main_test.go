package main

import (
	"os"
	"testing"
)

// TestMain lets a test start this test binary as the debate command itself
// (DEBATE_TEST_EXEC=1 os.Args[0] worker …): a real separate process, which a test can
// kill, without building the binary first.
func TestMain(m *testing.M) {
	if os.Getenv("DEBATE_TEST_EXEC") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
