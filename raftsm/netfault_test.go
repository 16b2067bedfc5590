package raftsm

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
)

// faultNet is a loopback TCP proxy in front of every node of a test
// cluster, which injects network faults between nodes.
//
// Each node listens on its own address (Config.ListenAddress) and is known
// to its peers by its proxy's address (Config.RaftAddress, the address in
// Members). Dragonboat opens one connection per direction: node A dials
// B's proxy to send A's messages to B, so B's proxy carries exactly the
// traffic A -> B. The proxy reads Dragonboat's frames
//
//	magic (2) | method (2) | size (8) | header crc (4) | payload crc (4) | payload (size)
//
// learns the sender from the first one (a MessageBatch's SourceAddress, a
// snapshot Chunk's From), and then, per frame and per directed link,
// drops it, duplicates it, or delays it; a link can be blocked (every
// frame dropped: a partition, one way or both) and its connections cut.
// Whole frames are dropped or repeated, so the stream stays well formed
// and Raft sees lost, repeated and late messages, as on a real network.
type faultNet struct {
	t  *testing.T
	mu struct {
		sync.Mutex
		byAddr map[string]uint64               // proxy (Raft) address -> replica id
		links  map[[2]uint64]linkFault         // (from, to) -> fault
		conns  map[[2]uint64]map[net.Conn]bool // open connections per link
		rng    *rand.Rand
	}
	wg        sync.WaitGroup
	listeners []net.Listener
	// frames passed, dropped and duplicated (the test reports them, so a
	// proxy that injected nothing shows).
	passed, dropped, duplicated atomic.Int64
}

// linkFault is what happens to the frames of one directed link.
type linkFault struct {
	blocked   bool          // drop every frame
	drop, dup float64       // probability to drop or to send twice
	delay     time.Duration // each frame waits up to this long
}

func newFaultNet(t *testing.T, seed uint64) *faultNet {
	f := &faultNet{t: t}
	f.mu.byAddr = map[string]uint64{}
	f.mu.links = map[[2]uint64]linkFault{}
	f.mu.conns = map[[2]uint64]map[net.Conn]bool{}
	f.mu.rng = rand.New(rand.NewPCG(seed, 0xfa17))
	t.Cleanup(f.close)
	return f
}

// add starts the proxy of replica id, forwarding to listen, and returns
// its address (the replica's Raft address).
func (f *faultNet) add(id uint64, listen string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.mu.byAddr[l.Addr().String()] = id
	f.listeners = append(f.listeners, l)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c, id, listen)
			}()
		}
	}()
	return l.Addr().String()
}

func (f *faultNet) close() {
	for _, l := range f.listeners {
		l.Close()
	}
	f.cut(nil)
	f.wg.Wait()
}

// set sets the fault of the link from -> to.
func (f *faultNet) set(from, to uint64, lf linkFault) {
	f.mu.Lock()
	f.mu.links[[2]uint64{from, to}] = lf
	f.mu.Unlock()
}

// heal clears every fault.
func (f *faultNet) heal() {
	f.mu.Lock()
	clear(f.mu.links)
	f.mu.Unlock()
}

// isolate blocks every link between id and the others in ids (both ways,
// or only outgoing or incoming).
func (f *faultNet) isolate(id uint64, ids []uint64, out, in bool) {
	for _, o := range ids {
		if o == id {
			continue
		}
		if out {
			f.set(id, o, linkFault{blocked: true})
		}
		if in {
			f.set(o, id, linkFault{blocked: true})
		}
	}
}

// cut closes the open connections of the links match selects (all if nil).
func (f *faultNet) cut(match func(from, to uint64) bool) {
	f.mu.Lock()
	var cs []net.Conn
	for l, m := range f.mu.conns {
		if match == nil || match(l[0], l[1]) {
			for c := range m {
				cs = append(cs, c)
			}
		}
	}
	f.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// decide returns what to do with one frame of link l: how many copies to
// send (0, 1 or 2) and after what delay. Snapshot chunks (not Raft
// messages: parts of one stream) are only ever blocked.
func (f *faultNet) decide(l [2]uint64, chunk bool) (int, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.mu.links[l]
	switch {
	case lf.blocked:
		return 0, 0
	case chunk:
		return 1, 0
	case lf.drop > 0 && f.mu.rng.Float64() < lf.drop:
		return 0, 0
	}
	n := 1
	if lf.dup > 0 && f.mu.rng.Float64() < lf.dup {
		n = 2
	}
	var d time.Duration
	if lf.delay > 0 {
		d = time.Duration(f.mu.rng.Int64N(int64(lf.delay)))
	}
	return n, d
}

func (f *faultNet) track(l [2]uint64, c net.Conn, open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.mu.conns[l]
	if m == nil {
		m = map[net.Conn]bool{}
		f.mu.conns[l] = m
	}
	if open {
		m[c] = true
	} else {
		delete(m, c)
	}
}

// serve proxies one connection to replica to (at listen): frames from the
// client, raw bytes (poison acknowledgements) back.
func (f *faultNet) serve(client net.Conn, to uint64, listen string) {
	defer client.Close()
	server, err := net.Dial("tcp", listen)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		io.Copy(client, server)
		client.Close()
	}()
	var link [2]uint64
	known := false
	defer func() {
		if known {
			f.track(link, client, false)
			f.track(link, server, false)
		}
	}()
	hdr := make([]byte, 20)
	for {
		if _, err := io.ReadFull(client, hdr[:2]); err != nil {
			return
		}
		if hdr[0] != 0xAE || hdr[1] != 0x7D {
			// Poison (the sender closes the connection) or garbage:
			// pass it on as is.
			server.Write(hdr[:2])
			continue
		}
		if _, err := io.ReadFull(client, hdr[2:]); err != nil {
			return
		}
		method := binary.BigEndian.Uint16(hdr[2:])
		size := binary.BigEndian.Uint64(hdr[4:])
		if size > 1<<30 {
			return
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(client, payload); err != nil {
			return
		}
		if !known {
			from, err := f.sender(method, payload)
			if err != nil {
				f.t.Logf("faultNet: frame to %d: %v", to, err)
				return
			}
			link, known = [2]uint64{from, to}, true
			f.track(link, client, true)
			f.track(link, server, true)
		}
		copies, delay := f.decide(link, method != 100)
		switch copies {
		case 0:
			f.dropped.Add(1)
		case 2:
			f.duplicated.Add(1)
		}
		f.passed.Add(1)
		if delay > 0 {
			time.Sleep(delay)
		}
		for range copies {
			if _, err := server.Write(hdr); err != nil {
				return
			}
			if _, err := server.Write(payload); err != nil {
				return
			}
		}
	}
}

// sender returns the replica that sent a frame: the SourceAddress of a
// Raft message batch (its proxy's address), the From of a snapshot chunk.
func (f *faultNet) sender(method uint16, payload []byte) (uint64, error) {
	switch method {
	case 100:
		var b pb.MessageBatch
		if err := b.Unmarshal(payload); err != nil {
			return 0, err
		}
		f.mu.Lock()
		id, ok := f.mu.byAddr[b.SourceAddress]
		f.mu.Unlock()
		if !ok {
			return 0, errors.New("unknown source address " + b.SourceAddress)
		}
		return id, nil
	case 200:
		var c pb.Chunk
		if err := c.Unmarshal(payload); err != nil {
			return 0, err
		}
		return c.From, nil
	}
	return 0, errors.New("unknown frame method")
}

// TestPreVoteIsolatedFollower: a follower cut off for many election
// timeouts does not drive terms up (PreVote: it asks before it stands,
// and nobody would vote for it), so when the partition heals it rejoins
// without forcing an election: every shard's term is as it was, give or
// take a spurious election on a loaded host.
func TestPreVoteIsolatedFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	fn := newFaultNet(t, 7)
	ns, _ := startClusterNet(t, 3, 0, fn)
	terms := func() map[uint32]uint64 {
		out := map[uint32]uint64{}
		for _, n := range ns {
			for _, s := range n.n.Shards() {
				if _, term, ok, err := n.n.NodeHost().GetLeaderID(uint64(s)); err == nil && ok {
					out[s] = max(out[s], term)
				}
			}
		}
		return out
	}
	shard := ns[0].n.Shards()[1]
	var follower *tnode
	for _, n := range ns {
		if !n.n.Leads(shard) && follower == nil {
			follower = n
		}
	}
	before := terms()
	fn.isolate(follower.id, []uint64{1, 2, 3}, true, true)
	time.Sleep(time.Second) // 20 election timeouts of 50 ms
	fn.heal()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The follower is back: it applies a write made after the heal.
	if err := ns[0].n.DB().Set(ctx, "kv", []byte("after"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.n.DB().Get(ctx, "kv", []byte("after")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	after := terms()
	for s, b := range before {
		if after[s] > b+2 {
			t.Errorf("shard %d: term %d before the partition, %d after: the isolated follower %d forced elections", s, b, after[s], follower.id)
		}
	}
	t.Logf("terms before %v, after %v; %d frames dropped", before, after, fn.dropped.Load())
}
