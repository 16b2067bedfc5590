package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
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
// returned before in this process.
//
// The port is drawn at random below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where the kernel never puts
// the local end of an outgoing connection or a listener on port 0: a port
// from that range could be taken by any connection another test (or
// another test binary: go test runs packages side by side) opens before
// the caller listens on it. Without the range file it asks the kernel for
// a port (":0").
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := portRange()
	for range 1000 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			if port != 0 {
				continue // in use: draw again
			}
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
	t.Fatal("testutil: no free port found in 1000 tries")
	return ""
}

// portRange is where FreeAddr draws ports: [lo, hi) below the ephemeral
// range, or lo == hi when it is unknown or leaves too little room.
var portRange = sync.OnceValues(func() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil || first < 12000 {
		return 0, 0
	}
	return 10000, first
})
