package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScopes(t *testing.T) {
	for _, tc := range []struct {
		scope, resource, name string
		level                 Level
		want                  bool
	}{
		{"queue:jobs:write", Queue, "jobs", Write, true},
		{"queue:jobs:write", Queue, "jobs", Read, true},
		{"queue:jobs:write", Queue, "jobs", Admin, false},
		{"queue:jobs:write", Queue, "jobs2", Write, false},
		{"queue:jobs:write", KV, "jobs", Write, false},
		{"kv:cache-*:read", KV, "cache-1", Read, true},
		{"kv:cache-*:read", KV, "cache", Read, false},
		{"kv:*:read", KV, "", Read, true},
		{"*:*:admin", Vec, "any", Admin, true},
	} {
		sc, err := ParseScope(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		tok := &Token{Name: "t", Scopes: []Scope{sc}}
		if got := tok.Allows(tc.resource, tc.name, tc.level); got != tc.want {
			t.Errorf("%s allows %s %s %q = %v", tc.scope, tc.level, tc.resource, tc.name, got)
		}
	}
	for _, bad := range []string{"", "queue", "queue:jobs", "nope:x:read", "queue::read", "queue:a*b:read", "queue:x:root", "a:b:c:d"} {
		if _, err := ParseScope(bad); !errors.Is(err, ErrBadScope) {
			t.Errorf("ParseScope(%q) = %v", bad, err)
		}
	}
}

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	secret, hash, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hash, secret) || Hash(secret) != hash {
		t.Fatal("hash")
	}
	write := func(body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"tokens":[{"name":"a","hash":"` + hash + `","scopes":["kv:*:read"]}]}`)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Authenticate(secret)
	if err != nil || tok.Name != "a" || strings.Contains(tok.String(), secret) {
		t.Fatalf("authenticate: %v %v", tok, err)
	}
	for _, bad := range []string{"", "x", secret + "x"} {
		if _, err := s.Authenticate(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v", bad, err)
		}
	}
	// A bad edit keeps the tokens in force; a good one replaces them.
	write(`{"tokens":[{"name":"a","hash":"sha256:zz"}]}`)
	time.Sleep(2 * ReloadInterval)
	if _, err := s.Authenticate(secret); err != nil {
		t.Fatalf("after a bad edit: %v", err)
	}
	write(`{"tokens":[]}`)
	time.Sleep(2 * ReloadInterval)
	if _, err := s.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after revocation: %v", err)
	}
	if _, err := ParseFile([]byte(`{"tokens":[{"name":"a","hash":"` + hash + `","scopes":["bad"]}]}`)); !errors.Is(err, ErrBadFile) {
		t.Fatalf("bad scope in file: %v", err)
	}
}
