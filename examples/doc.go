// Package examples holds programs that use flowdb through its server:
// worker (a Go agent over package client) and python/worker.py (an agent
// in Python with only the standard library, over HTTP/JSON). Their tests
// run them against a real server on loopback.
package examples
