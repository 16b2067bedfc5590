package testutil

import (
	"net"
	"sync"
	"testing"
)

// handedOut holds every address FreeAddr returned in this process.
var handedOut struct {
	sync.Mutex
	addrs map[string]bool
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago (the listener is closed before it returns) and that FreeAddr has not
// returned before in this process: the kernel may hand a port it just freed
// to the next listener, and tests that run in parallel would then be given
// one port twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		handedOut.Lock()
		fresh := !handedOut.addrs[addr]
		if fresh {
			if handedOut.addrs == nil {
				handedOut.addrs = map[string]bool{}
			}
			handedOut.addrs[addr] = true
		}
		handedOut.Unlock()
		if fresh {
			return addr
		}
	}
	t.Fatal("testutil: every free port the kernel offered was handed out before")
	return ""
}
