package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Errors. Match them with errors.Is.
var (
	// ErrUnauthenticated: no token, or one the tokens file does not hold
	// (unknown, revoked) or that has expired.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrForbidden: the token's scopes do not cover the call.
	ErrForbidden = errors.New("auth: forbidden")
	// ErrBadScope: a scope that does not parse.
	ErrBadScope = errors.New("auth: bad scope")
	// ErrBadFile: a tokens file that does not parse.
	ErrBadFile = errors.New("auth: bad tokens file")
)

// Level is what a scope allows on a resource.
type Level int

// Levels, each including those below it.
const (
	Read Level = iota + 1
	Write
	Admin
)

func (l Level) String() string {
	switch l {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Resources.
const (
	KV     = "kv"
	Queue  = "queue"
	Agent  = "agent"
	Vec    = "vec"
	Server = "server"
)

// Scope is one parsed scope.
type Scope struct {
	Resource string // a resource or "*"
	Name     string // exact, "*" or "prefix*"
	Level    Level
}

// ParseScope parses RESOURCE:NAME:LEVEL.
func ParseScope(s string) (Scope, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[1] == "" {
		return Scope{}, fmt.Errorf("%w: %q: want RESOURCE:NAME:LEVEL", ErrBadScope, s)
	}
	var sc Scope
	switch parts[0] {
	case KV, Queue, Agent, Vec, Server, "*":
		sc.Resource = parts[0]
	default:
		return Scope{}, fmt.Errorf("%w: %q: unknown resource %q", ErrBadScope, s, parts[0])
	}
	if i := strings.IndexByte(parts[1], '*'); i >= 0 && i != len(parts[1])-1 {
		return Scope{}, fmt.Errorf("%w: %q: * only at the end of a name", ErrBadScope, s)
	}
	sc.Name = parts[1]
	switch parts[2] {
	case "read":
		sc.Level = Read
	case "write":
		sc.Level = Write
	case "admin":
		sc.Level = Admin
	default:
		return Scope{}, fmt.Errorf("%w: %q: level must be read, write or admin", ErrBadScope, s)
	}
	return sc, nil
}

func (s Scope) String() string { return s.Resource + ":" + s.Name + ":" + s.Level.String() }

// covers reports whether s allows level on resource/name.
func (s Scope) covers(resource, name string, level Level) bool {
	if s.Level < level || (s.Resource != "*" && s.Resource != resource) {
		return false
	}
	if p, ok := strings.CutSuffix(s.Name, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return s.Name == name
}

// Token is an authenticated caller.
type Token struct {
	Name    string
	Scopes  []Scope
	Expires time.Time // zero: never
}

// String names the token; it never shows a secret.
func (t *Token) String() string { return "token " + t.Name }

// Allows reports whether t may act at level on resource/name. A nil Token
// stands for a server without authentication and allows everything.
func (t *Token) Allows(resource, name string, level Level) bool {
	if t == nil {
		return true
	}
	for _, s := range t.Scopes {
		if s.covers(resource, name, level) {
			return true
		}
	}
	return false
}

// Check is Allows as an error: nil, or one matching ErrForbidden.
func (t *Token) Check(resource, name string, level Level) error {
	if t.Allows(resource, name, level) {
		return nil
	}
	return fmt.Errorf("%w: %s may not %s %s %q", ErrForbidden, t, level, resource, name)
}

// NewSecret returns a new random token secret (32 bytes, hex) and the hash
// to store for it in a tokens file.
func NewSecret() (secret, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	secret = "fdb_" + hex.EncodeToString(b[:])
	return secret, Hash(secret), nil
}

// Hash returns the stored form of a secret: "sha256:" and its hex SHA-256.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(h[:])
}

// FileEntry is one token of a tokens file.
type FileEntry struct {
	Name    string    `json:"name"`
	Hash    string    `json:"hash"`
	Scopes  []string  `json:"scopes"`
	Expires time.Time `json:"expires,omitzero"`
}

// File is a tokens file.
type File struct {
	Tokens []FileEntry `json:"tokens"`
}

// ParseFile decodes and validates a tokens file's bytes.
func ParseFile(b []byte) (map[[32]byte]*Token, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	out := make(map[[32]byte]*Token, len(f.Tokens))
	for i, e := range f.Tokens {
		hexHash, ok := strings.CutPrefix(e.Hash, "sha256:")
		raw, err := hex.DecodeString(hexHash)
		if !ok || err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("%w: token %d (%q): hash must be sha256:<64 hex digits>", ErrBadFile, i, e.Name)
		}
		t := &Token{Name: e.Name, Expires: e.Expires}
		for _, s := range e.Scopes {
			sc, err := ParseScope(s)
			if err != nil {
				return nil, fmt.Errorf("%w: token %d (%q): %w", ErrBadFile, i, e.Name, err)
			}
			t.Scopes = append(t.Scopes, sc)
		}
		out[[32]byte(raw)] = t
	}
	return out, nil
}

// Store holds the tokens of a tokens file, re-read when the file changes
// (checked at most every ReloadInterval) or on Reload.
type Store struct {
	path string
	now  func() time.Time

	mu struct {
		sync.Mutex
		tokens  map[[32]byte]*Token
		mod     time.Time
		size    int64
		checked time.Time
	}
}

// ReloadInterval bounds how often a Store looks at its file's modification
// time: a revoked token is refused at most this long after the file changed.
const ReloadInterval = 100 * time.Millisecond

// Open reads the tokens file at path.
func Open(path string) (*Store, error) {
	s := &Store{path: path, now: time.Now}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the file. On error the tokens read before stay in force.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

// reloadLocked REQUIRES: s.mu held.
func (s *Store) reloadLocked() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	tokens, err := ParseFile(b)
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	s.mu.tokens, s.mu.mod, s.mu.size = tokens, fi.ModTime(), fi.Size()
	return nil
}

// Authenticate returns the token whose secret is given.
func (s *Store) Authenticate(secret string) (*Token, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	h := sha256.Sum256([]byte(secret))
	now := s.now()
	s.mu.Lock()
	if now.Sub(s.mu.checked) >= ReloadInterval {
		s.mu.checked = now
		if fi, err := os.Stat(s.path); err != nil {
			s.mu.tokens = nil // a removed file revokes every token
		} else if !fi.ModTime().Equal(s.mu.mod) || fi.Size() != s.mu.size {
			_ = s.reloadLocked() // a bad edit keeps the tokens in force
		}
	}
	var found *Token
	for k, t := range s.mu.tokens {
		// Constant-time over the hash; the map is small.
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			found = t
		}
	}
	s.mu.Unlock()
	if found == nil {
		return nil, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
	}
	if !found.Expires.IsZero() && !now.Before(found.Expires) {
		return nil, fmt.Errorf("%w: %s expired", ErrUnauthenticated, found)
	}
	return found, nil
}

// Bearer returns the token of an Authorization: Bearer header ("" if none).
func Bearer(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

type ctxKey struct{}

// result is what the server's middleware found about a request's caller.
type result struct {
	tok *Token
	err error
}

// WithCaller returns ctx carrying the outcome of authenticating a request:
// its token (nil without authentication) or the authentication error.
func WithCaller(ctx context.Context, t *Token, err error) context.Context {
	return context.WithValue(ctx, ctxKey{}, result{t, err})
}

// Caller returns the token ctx carries, or its authentication error. A ctx
// that carries neither (a server without authentication) gives nil, nil.
func Caller(ctx context.Context) (*Token, error) {
	r, _ := ctx.Value(ctxKey{}).(result)
	return r.tok, r.err
}
