package raftsm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
)

// writeCA makes a CA and returns it with its key, writing its PEM to path.
func writeCA(t *testing.T, path, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "CERTIFICATE", der)
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// nodeCert writes a certificate for 127.0.0.1 signed by ca, and its key.
func nodeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64) *TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return &TLS{CertFile: certFile, KeyFile: keyFile}
}

// childConfig is what a child process node starts from.
type childConfig struct {
	ID      uint64
	Dir     string
	Addr    string
	Members map[uint64]string
	Join    bool
	TLS     TLS
}

// TestTLSChild is the body of a node process started by
// TestMutualTLSProcesses; it does nothing in a normal run. It serves
// "get <key>" lines on stdin (a linearizable read) until stdin closes.
func TestTLSChild(t *testing.T) {
	spec := os.Getenv("FLOWDB_TLS_CHILD")
	if spec == "" {
		t.Skip("run by TestMutualTLSProcesses")
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(spec), &cc); err != nil {
		t.Fatal(err)
	}
	tlsCfg := cc.TLS
	n, err := Open(context.Background(), Config{Dir: cc.Dir, ReplicaID: cc.ID, RaftAddress: cc.Addr, Members: cc.Members,
		Join: cc.Join, RTTMillisecond: 5, LogDB: "tiny", TLS: &tlsCfg, Logger: testutil.Quiet(),
		Store: testutil.StoreOptions(nil, nil)})
	if err != nil {
		fmt.Println("err open:", err)
		return
	}
	defer n.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		key, ok := strings.CutPrefix(sc.Text(), "get ")
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		v, err := n.DB().Get(ctx, "kv", []byte(key))
		cancel()
		if err != nil {
			fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Println("ok", string(v))
		}
	}
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(t *testing.T, cc childConfig) *child {
	t.Helper()
	spec, _ := json.Marshal(cc)
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "FLOWDB_TLS_CHILD="+string(spec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		c.in.Close()
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	})
	if line := c.line(t); line != "ready" {
		// Say why: the rest of the child's output, and its stderr (a
		// panic or a race report lands there).
		c.in.Close() // a child still serving exits on EOF
		timer := time.AfterFunc(10*time.Second, func() { c.cmd.Process.Kill() })
		rest := []string{line}
		for c.out.Scan() {
			rest = append(rest, c.out.Text())
		}
		c.cmd.Wait()
		timer.Stop()
		t.Fatalf("node %d did not start:\n%s\nstderr:\n%s", cc.ID, strings.Join(rest, "\n"), stderr.String())
	}
	return c
}

func (c *child) line(t *testing.T) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("child exited: %v", c.out.Err())
	}
	return c.out.Text()
}

func (c *child) get(t *testing.T, key string) string {
	t.Helper()
	fmt.Fprintf(c.in, "get %s\n", key)
	return c.line(t)
}

// TestMutualTLSProcesses: three node processes (this one and two children)
// replicate over loopback with mutual TLS; a fourth process whose
// certificate another CA signed is added as a member but never gets in.
func TestMutualTLSProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts node processes")
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	ca, caKey := writeCA(t, caFile, "flowdb test CA")
	rogueCA, rogueKey := writeCA(t, filepath.Join(dir, "rogue-ca.crt"), "rogue CA")
	addrs := map[uint64]string{1: testutil.FreeAddr(t), 2: testutil.FreeAddr(t), 3: testutil.FreeAddr(t)}
	certs := map[uint64]*TLS{}
	for id := uint64(1); id <= 3; id++ {
		certs[id] = nodeCert(t, dir, fmt.Sprintf("node%d", id), ca, caKey, int64(id+1))
		certs[id].CAFile = caFile
	}
	var children []*child
	for id := uint64(2); id <= 3; id++ {
		children = append(children, startChild(t, childConfig{ID: id, Dir: filepath.Join(dir, fmt.Sprintf("n%d", id)),
			Addr: addrs[id], Members: addrs, TLS: *certs[id]}))
	}
	n, err := Open(t.Context(), Config{Dir: filepath.Join(dir, "n1"), ReplicaID: 1, RaftAddress: addrs[1], Members: addrs,
		RTTMillisecond: 5, LogDB: "tiny", TLS: certs[1], Logger: testutil.Quiet(), Store: testutil.StoreOptions(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := n.DB().Set(ctx, "kv", fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range children {
		if got := c.get(t, "k19"); got != "ok v19" {
			t.Fatalf("node %d over TLS: %q", i+2, got)
		}
	}

	// A process with a certificate from another CA, added as member 4.
	addr4 := testutil.FreeAddr(t)
	rogue := nodeCert(t, dir, "rogue", rogueCA, rogueKey, 99)
	rogue.CAFile = caFile // it trusts the cluster's CA; the cluster does not trust it
	if err := n.AddReplica(ctx, 4, addr4); err != nil {
		t.Fatal(err)
	}
	c4 := startChild(t, childConfig{ID: 4, Dir: filepath.Join(dir, "n4"), Addr: addr4, Join: true, TLS: *rogue})
	if got := c4.get(t, "k0"); !strings.HasPrefix(got, "err") {
		t.Fatalf("a node whose certificate the cluster's CA did not sign read %q", got)
	}
	// The cluster still works with 3 of its 4 members.
	if err := n.DB().Set(ctx, "kv", []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := children[0].get(t, "after"); got != "ok x" {
		t.Fatalf("node 2 after the refused join: %q", got)
	}
}

// TestInsecureRefused: a non-loopback Raft address needs TLS or Insecure.
func TestInsecureRefused(t *testing.T) {
	t.Parallel()
	cfg := Config{Dir: t.TempDir(), ReplicaID: 1, RaftAddress: "10.1.2.3:5000"}
	if _, err := Open(t.Context(), cfg); !errors.Is(err, ErrInsecure) {
		t.Fatalf("open on 10.1.2.3 without TLS: %v, want ErrInsecure", err)
	}
	cfg.ListenAddress, cfg.RaftAddress = "0.0.0.0:5000", "127.0.0.1:5000"
	if _, err := Open(t.Context(), cfg); !errors.Is(err, ErrInsecure) {
		t.Fatalf("listen on 0.0.0.0 without TLS: %v, want ErrInsecure", err)
	}
}
