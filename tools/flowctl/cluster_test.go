package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/raftsm"
)

// TestClusterCommandErrors: every cluster command that cannot be done ends
// at once with a typed error that says why, through the admin endpoint:
// not a member, already a member, the only member, an unknown shard.
func TestClusterCommandErrors(t *testing.T) {
	node := startNode(t)
	for _, c := range []struct {
		args []string
		want error
	}{
		{[]string{"cluster", "remove", "9"}, raftsm.ErrNotMember},
		{[]string{"cluster", "transfer", "2", "9"}, raftsm.ErrNotMember},
		{[]string{"cluster", "transfer", "77", "1"}, raftsm.ErrUnknownShard},
		{[]string{"cluster", "add", "1", "127.0.0.1:1"}, raftsm.ErrAlreadyMember},
		{[]string{"cluster", "remove", "1"}, raftsm.ErrRejected},
	} {
		start := time.Now()
		_, err := run(t, append([]string{"--node", node}, c.args...)...)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", strings.Join(c.args, " "), err, c.want)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%s: took %v", strings.Join(c.args, " "), el)
		}
	}
	var ue usageError
	if _, err := run(t, "--node", node, "cluster", "add", "x", "127.0.0.1:1"); !errors.As(err, &ue) {
		t.Errorf("cluster add x: %v, want a usage error", err)
	}
}

// TestNodeFilesPrivate: every file and directory a node creates,
// Dragonboat's included, is private to its user (0600 files, 0700
// directories).
func TestNodeFilesPrivate(t *testing.T) {
	raft, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := filepath.Join(t.TempDir(), "node")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		a := &app{out: io.Discard, errOut: io.Discard} // the node logs from Dragonboat's goroutines too
		done <- a.runNode(ctx, nodeFile{ID: 1, Dir: dir, Raft: raft, Admin: admin, Members: map[string]string{"1": raft}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := run(t, "--node", "http://"+admin, "kv", "set", "ns", "k", "v"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never took a write")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want nothing for group and others", path, fi.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d files under %s", n, dir)
	}
}

// TestNodeStartRefusesStranger: node start refuses a replica id that is
// not among --members (unless joining), and leaves no directory behind.
func TestNodeStartRefusesStranger(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	raft := testutil.FreeAddr(t)
	_, err := run(t, "--dir", dir, "node", "start", "--id", "4", "--raft", raft, "--admin", testutil.FreeAddr(t),
		"--members", "1=127.0.0.1:7001,2=127.0.0.1:7002,3="+raft)
	var ue usageError
	if !errors.As(err, &ue) || !errors.Is(err, raftsm.ErrConfig) {
		t.Fatalf("id 4 not among the members: got %v, want a usage error wrapping raftsm.ErrConfig", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start left %s: %v", dir, err)
	}
}

// TestOutcomeUnknownExitCode: a write sent to a node that dies before it
// answers (the connection closes after the request was read) is reported
// as outcome unknown, errors.Is(db.ErrOutcomeUnknown), and flowctl exits
// 3; a request that never connected is a plain failure (exit 1); a 504
// from the node is outcome unknown too.
func TestOutcomeUnknownExitCode(t *testing.T) {
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dying.Close()
	if _, err := run(t, "--node", dying.URL, "kv", "set", "ns", "k", "v"); !errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("write to a node that died mid-request: %v, want db.ErrOutcomeUnknown", err)
	}
	if _, err := run(t, "--node", dying.URL, "cluster", "add", "4", "127.0.0.1:1"); !errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("cluster add to a node that died mid-request: %v, want db.ErrOutcomeUnknown", err)
	}
	if _, err := run(t, "--node", dying.URL, "cluster", "status"); err == nil || errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("status (a read) from a node that died: %v, want a plain error", err)
	}
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpError(w, db.ErrOutcomeUnknown)
	}))
	defer gateway.Close()
	if _, err := run(t, "--node", gateway.URL, "cluster", "remove", "3"); !errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("504: %v, want db.ErrOutcomeUnknown", err)
	}
	// A data command the node ran and whose write's outcome is unknown
	// there: the class crosses /v1/exec.
	unknown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(execResponse{Error: "db: outcome unknown: shard 2: timeout", Classes: []string{db.ErrOutcomeUnknown.Error()}})
	}))
	defer unknown.Close()
	if _, err := run(t, "--node", unknown.URL, "kv", "set", "ns", "k", "v"); !errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("a node's outcome unknown through /v1/exec: %v, want db.ErrOutcomeUnknown", err)
	}
	down := "http://" + testutil.FreeAddr(t)
	if _, err := run(t, "--node", down, "kv", "set", "ns", "k", "v"); err == nil || errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("write to no node at all: %v, want a plain error (nothing was sent)", err)
	}
	for _, c := range []struct {
		node string
		code int
	}{{dying.URL, 3}, {down, 1}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFlowctlMain$")
		cmd.Env = append(os.Environ(), "FLOWCTL_TEST_MAIN=--node "+c.node+" kv set ns k v")
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("flowctl --node %s kv set: %v, want exit status %d", c.node, err, c.code)
		}
	}
}

// TestFlowctlMain runs main with the arguments in FLOWCTL_TEST_MAIN (for
// tests of exit statuses); without it, it does nothing.
func TestFlowctlMain(t *testing.T) {
	args := os.Getenv("FLOWCTL_TEST_MAIN")
	if args == "" {
		t.Skip("runs flowctl's main for other tests")
	}
	os.Args = append([]string{"flowctl"}, strings.Fields(args)...)
	main()
	os.Exit(0)
}

// TestClusterStatusNoQuorum: cluster status on a node that lost its
// quorum ends within the endpoint's deadline with raftsm.ErrNoQuorum (it
// used to wait forever).
func TestClusterStatusNoQuorum(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	raft1, raft2 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	admin1 := testutil.FreeAddr(t)
	members := map[string]string{"1": raft1, "2": raft2}
	var cancels []context.CancelFunc
	var dones []chan error
	for i, raft := range []string{raft1, raft2} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		admin := admin1
		if i == 1 {
			admin = testutil.FreeAddr(t)
		}
		go func() {
			a := &app{out: io.Discard, errOut: io.Discard} // the node logs from Dragonboat's goroutines too
			done <- a.runNode(ctx, nodeFile{ID: uint64(i + 1), Dir: filepath.Join(t.TempDir(), "n"), Raft: raft, Admin: admin,
				Members: members, RTTMillisecond: 5, ElectionRTT: 20, HeartbeatRTT: 2})
		}()
		cancels, dones = append(cancels, cancel), append(dones, done)
	}
	defer func() { cancels[0](); <-dones[0] }()
	n1 := "http://" + admin1
	for deadline := time.Now().Add(60 * time.Second); ; {
		if _, err := run(t, "--node", n1, "kv", "set", "ns", "k", "v"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two-node cluster never took a write")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancels[1]()
	<-dones[1]
	start := time.Now()
	_, err := run(t, "--node", n1, "cluster", "status")
	if !errors.Is(err, raftsm.ErrNoQuorum) {
		t.Fatalf("status without a quorum: %v, want raftsm.ErrNoQuorum", err)
	}
	if el := time.Since(start); el > statusTimeout+2*time.Second {
		t.Fatalf("status without a quorum took %v", el)
	}
}

// TestRemovedNodeRefuses: a node removed from its cluster answers every
// admin call with 410 and raftsm.ErrRemoved (not a stale status, not a
// 500), and refuses to start again.
func TestRemovedNodeRefuses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	raft1, raft2 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	admin1, admin2 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir1, dir2 := filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2")
	members := map[string]string{"1": raft1, "2": raft2}
	start := func(id uint64, dir, raft, admin string) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			a := &app{out: io.Discard, errOut: io.Discard} // the node logs from Dragonboat's goroutines too
			done <- a.runNode(ctx, nodeFile{ID: id, Dir: dir, Raft: raft, Admin: admin, DataShards: 1, Members: members,
				RTTMillisecond: 5, ElectionRTT: 20, HeartbeatRTT: 2})
		}()
		return cancel, done
	}
	stop1, done1 := start(1, dir1, raft1, admin1)
	stop2, done2 := start(2, dir2, raft2, admin2)
	defer func() { stop1(); <-done1 }()
	n1, n2 := "http://"+admin1, "http://"+admin2
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := run(t, "--node", n1, "kv", "set", "ns", "k", "v"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two-node cluster never took a write")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustRun(t, "--node", n1, "cluster", "remove", "2")
	for {
		_, err := run(t, "--node", n2, "cluster", "status")
		if errors.Is(err, raftsm.ErrRemoved) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the removed node still answers status: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := run(t, "--node", n2, "kv", "get", "ns", "k"); !errors.Is(err, raftsm.ErrRemoved) {
		t.Fatalf("data call on a removed node: %v, want raftsm.ErrRemoved", err)
	}
	if _, err := run(t, "--node", n1, "cluster", "add", "2", raft2); !errors.Is(err, raftsm.ErrRemovedID) {
		t.Fatalf("adding the removed id back: %v, want raftsm.ErrRemovedID", err)
	}
	stop2()
	if err := <-done2; err != nil {
		t.Fatalf("removed node's shutdown: %v", err)
	}
	cancel, done := start(2, dir2, raft2, admin2)
	defer cancel()
	select {
	case err := <-done:
		if !errors.Is(err, raftsm.ErrRemoved) {
			t.Fatalf("restart of a removed node: %v, want raftsm.ErrRemoved", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a removed node started again")
	}
}
