package main

import (
	"os"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
)

// The tests that start nodes in this process and wait on them (quorum
// loss, a removed node, replica lag on the dashboard, MCP on a node, input
// from files and standard input against a node) and the demo call
// t.Parallel and run four at a time. Tests that send this process SIGINT,
// change directory or set the environment stay serial; serial tests end
// before any parallel one starts.
func TestMain(m *testing.M) { os.Exit(testutil.Main(m, 4)) }
