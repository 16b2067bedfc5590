package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/server"
)

// pki makes a CA and two certificates it signs (server for 127.0.0.1,
// client), written as PEM files in dir.
type pki struct {
	ca              *x509.Certificate
	caKey           *ecdsa.PrivateKey
	caFile          string
	srvCert, srvKey string
	cliCert         tls.Certificate
	pool            *x509.CertPool
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, caKey: key, caFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", der)
	certDER, keyDER := p.issue(t, 2, x509.ExtKeyUsageServerAuth)
	p.srvCert, p.srvKey = filepath.Join(dir, "srv.pem"), filepath.Join(dir, "srv.key")
	writePEM(t, p.srvCert, "CERTIFICATE", certDER)
	writePEM(t, p.srvKey, "EC PRIVATE KEY", keyDER)
	certDER, keyDER = p.issue(t, 3, x509.ExtKeyUsageClientAuth)
	cc, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	p.cliCert = cc
	return p
}

func (p *pki) issue(t *testing.T, serial int64, usage x509.ExtKeyUsage) (cert, key []byte) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "flowdb test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	return der, kd
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t, t.TempDir())
	tc, err := server.TLSConfig(p.srvCert, p.srvKey, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, nil)
	l, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	hs := server.HTTPServer(e.srv.Handler(), tc)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	url := "https://" + l.Addr().String()
	ctx := context.Background()
	ok, _ := client.New(url, &client.Options{TLS: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.cliCert}}})
	defer ok.Close()
	if err := ok.Set(ctx, "n", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("mTLS client: %v", err)
	}
	// Without a client certificate the handshake fails; nothing is written.
	noCert, _ := client.New(url, &client.Options{TLS: &tls.Config{RootCAs: p.pool}, Retries: -1})
	defer noCert.Close()
	if err := noCert.Set(ctx, "n", []byte("k2"), []byte("v")); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// A client that does not trust the server's CA refuses it.
	noCA, _ := client.New(url, &client.Options{TLS: &tls.Config{Certificates: []tls.Certificate{p.cliCert}}, Retries: -1})
	defer noCA.Close()
	if err := noCA.Set(ctx, "n", []byte("k3"), []byte("v")); err == nil {
		t.Fatal("a client trusted an unknown CA")
	}
	for _, k := range []string{"k2", "k3"} {
		if _, err := e.d.Get(ctx, "n", []byte(k)); err == nil {
			t.Fatalf("%s was written", k)
		}
	}
}
