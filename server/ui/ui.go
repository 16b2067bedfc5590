package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
)

//go:embed assets
var assets embed.FS

// Options configures the dashboard. DB, Queues, Registry and Vectors are
// required (Mount serves 500 on every page without them); the zero value of
// every other field takes its default.
type Options struct {
	DB       *db.DB
	Queues   *queue.Manager
	Registry *registry.Registry
	Vectors  *hnsw.Manager
	// Scheduler, if set, fills the scheduler page.
	Scheduler *sched.Scheduler
	// Cluster, if set (a replicated node), fills the cluster page.
	Cluster server.Cluster
	// Tokens is the server's tokens store; with it the login form's cookie
	// authenticates browsers that send no Authorization header. nil: the
	// server has no authentication (loopback), every caller sees all.
	Tokens *auth.Store
	// Targets are the overview's goals. Zero fields take DefaultTargets'.
	Targets Targets
	// PageSize is the rows per page of every table. Default 50, at most
	// queue.MaxPage.
	PageSize int
	// Logger receives the dashboard's errors. Default DB.Logger().
	Logger *slog.Logger
}

// Targets are the figures the overview holds the live ones against.
type Targets struct {
	DurableOpsPerSec float64       // at least (under load)
	CommitP99        time.Duration // at most
	DeadPerSec       float64       // at most (task loss: dead letters)
	CacheHitRatio    float64       // at least (Pebble block cache)
	MemoryBytes      uint64        // at most (Go heap in use)
	RaftCommit       time.Duration // at most (Raft commit p99 on a node)
}

// DefaultTargets are the overview's targets unless Options say otherwise:
// the engine's own figures on a laptop-class machine (thousands of durable
// operations per second with group commit, a commit well under 10 ms).
var DefaultTargets = Targets{
	DurableOpsPerSec: 10000,
	CommitP99:        10 * time.Millisecond,
	DeadPerSec:       0,
	CacheHitRatio:    0.9,
	MemoryBytes:      1 << 30,
	RaftCommit:       30 * time.Millisecond,
}

// CookieName is the login form's cookie (the token's secret, HttpOnly,
// SameSite=Strict, Path /ui).
const CookieName = "flowdb_ui"

// CSRFHeader carries the per-session token every action must send (the
// pages put it in <meta name="csrf">).
const CSRFHeader = "X-FlowDB-CSRF"

// Dashboard serves the pages under /ui/. Create it with Mount.
type Dashboard struct {
	o       Options
	log     *slog.Logger
	pages   map[string]*template.Template
	csrfKey [32]byte
	static  http.Handler

	mu struct {
		sync.Mutex
		samples []sample // the overview's history, one per poll at most every 500 ms
	}
}

// Mount mounts the dashboard at /ui/ on s, behind the server's middleware
// (its Host, cross-site and content-type checks, size limit and bearer
// authentication). It starts nothing: figures are read when a page asks.
func Mount(s *server.Server, o Options) *Dashboard {
	d := New(o)
	s.Handle("/ui/", d)
	s.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusFound))
	return d
}

// New returns the dashboard as a handler of paths under /ui/, for servers
// that mount it themselves behind server.Server's middleware.
func New(o Options) *Dashboard {
	def := DefaultTargets
	t := &o.Targets
	if t.DurableOpsPerSec == 0 {
		t.DurableOpsPerSec = def.DurableOpsPerSec
	}
	if t.CommitP99 == 0 {
		t.CommitP99 = def.CommitP99
	}
	if t.CacheHitRatio == 0 {
		t.CacheHitRatio = def.CacheHitRatio
	}
	if t.MemoryBytes == 0 {
		t.MemoryBytes = def.MemoryBytes
	}
	if t.RaftCommit == 0 {
		t.RaftCommit = def.RaftCommit
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.PageSize > queue.MaxPage {
		o.PageSize = queue.MaxPage
	}
	if o.Logger == nil && o.DB != nil {
		o.Logger = o.DB.Logger()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{o: o, log: o.Logger, pages: map[string]*template.Template{}}
	if _, err := rand.Read(d.csrfKey[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/layout.html"))
	for _, p := range []string{"overview", "queues", "queue", "task", "agents", "scheduler", "vectors", "cluster", "login"} {
		d.pages[p] = template.Must(template.Must(base.Clone()).ParseFS(assets, "assets/"+p+".html"))
	}
	sub, _ := fs.Sub(assets, "assets")
	d.static = http.StripPrefix("/ui/static/", http.FileServerFS(sub))
	return d
}

// errForbidden and errUnauthenticated map to 403 and 401.
var errMissing = errors.New("ui: store not configured")

// caller resolves the request's token: the server's middleware found one
// in the Authorization header, or the login cookie names one.
func (d *Dashboard) caller(r *http.Request) (*auth.Token, string, error) {
	tok, err := auth.Caller(r.Context())
	if err == nil {
		return tok, auth.Bearer(r.Header), nil
	}
	if d.o.Tokens != nil {
		if c, cerr := r.Cookie(CookieName); cerr == nil && c.Value != "" {
			t, aerr := d.o.Tokens.Authenticate(c.Value)
			if aerr == nil {
				return t, c.Value, nil
			}
			err = aerr
		}
	}
	return nil, "", err
}

// csrf is the per-session token for the secret that authenticated the
// request ("" on a server without authentication).
func (d *Dashboard) csrf(secret string) string {
	m := hmac.New(sha256.New, d.csrfKey[:])
	m.Write([]byte("csrf\x00"))
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

type ctxKey struct{}

type reqInfo struct {
	tok  *auth.Token
	csrf string
}

func info(ctx context.Context) reqInfo { r, _ := ctx.Value(ctxKey{}).(reqInfo); return r }

// ServeHTTP routes /ui/...: static assets and the login page to everyone,
// everything else to authenticated callers only (401 with the login page
// otherwise); each data view checks its own scopes.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	path := r.URL.Path
	switch {
	case len(path) > len("/ui/static/") && path[:len("/ui/static/")] == "/ui/static/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		d.static.ServeHTTP(w, r)
		return
	case path == "/ui/login" && r.Method == http.MethodGet:
		d.render(w, r, http.StatusOK, "login", nil)
		return
	case path == "/ui/api/login" && r.Method == http.MethodPost:
		d.login(w, r)
		return
	case path == "/ui/api/logout" && r.Method == http.MethodPost:
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if d.o.DB == nil || d.o.Queues == nil || d.o.Registry == nil || d.o.Vectors == nil {
		http.Error(w, errMissing.Error(), http.StatusInternalServerError)
		return
	}
	tok, secret, err := d.caller(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowdb"`)
		if isAPI(path) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
			return
		}
		d.render(w, r, http.StatusUnauthorized, "login", nil)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, reqInfo{tok: tok, csrf: d.csrf(secret)}))
	if r.Method == http.MethodPost {
		got := r.Header.Get(CSRFHeader)
		if want := d.csrf(secret); subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong " + CSRFHeader + " header (reload the page)"})
			return
		}
		switch path {
		case "/ui/api/replay":
			d.deadAction(w, r, true)
		case "/ui/api/purge":
			d.deadAction(w, r, false)
		default:
			http.NotFound(w, r)
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if isAPI(path) {
		d.serveAPI(w, r, path[len("/ui/api/"):])
		return
	}
	d.servePage(w, r, path[len("/ui/"):])
}

func isAPI(path string) bool {
	return len(path) >= len("/ui/api/") && path[:len("/ui/api/")] == "/ui/api/"
}

// view is one page's data builder: the same value feeds the JSON endpoint
// /ui/api/NAME and the page /ui/NAME.
type view func(r *http.Request) (any, error)

func (d *Dashboard) views() map[string]view {
	return map[string]view{
		"overview":  d.overview,
		"queues":    d.queues,
		"queue":     d.queue,
		"task":      d.task,
		"agents":    d.agents,
		"scheduler": d.scheduler,
		"vectors":   d.vectors,
		"cluster":   d.cluster,
	}
}

func (d *Dashboard) serveAPI(w http.ResponseWriter, r *http.Request, name string) {
	v, ok := d.views()[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
		return
	}
	data, err := v(r)
	if err != nil {
		writeJSON(w, status(err), map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, data)
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" {
		name = "overview"
	}
	v, ok := d.views()[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, err := v(r)
	if err != nil {
		d.render(w, r, status(err), name, pageError(err.Error()))
		return
	}
	d.render(w, r, http.StatusOK, name, data)
}

// pageError is a page's data when its view failed: the page shows it.
type pageError string

type pageData struct {
	Page  string
	CSRF  string
	Token string
	Query map[string]string // the request's query (first values)
	Err   string
	Data  any
}

// render writes page name; with the X-FlowDB-Fragment header only its
// live region (the poller swaps it in place).
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	ri := info(r.Context())
	pd := pageData{Page: name, CSRF: ri.csrf, Data: data, Query: map[string]string{}}
	if e, ok := data.(pageError); ok {
		pd.Err, pd.Data = string(e), nil
	}
	for k, v := range r.URL.Query() {
		pd.Query[k] = v[0]
	}
	if ri.tok != nil {
		pd.Token = ri.tok.Name
	}
	tmpl := "layout"
	if r.Header.Get("X-FlowDB-Fragment") == "1" {
		tmpl = "region"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := d.pages[name].ExecuteTemplate(w, tmpl, pd); err != nil {
		d.log.Warn("ui: render", "page", name, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// status maps an error to its HTTP status.
func status(err error) int {
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, hnsw.ErrNoCollection), errors.Is(err, hnsw.ErrNotFound),
		errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, queue.ErrInvalid), errors.Is(err, errBadRequest), errors.Is(err, hnsw.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errBadRequest: a malformed query parameter or action body.
var errBadRequest = errors.New("ui: bad request")

// login checks a token's secret and sets the session cookie. It passed
// the server's forgery checks (JSON only, same origin).
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"token\": \"...\"}"})
		return
	}
	if d.o.Tokens == nil {
		writeJSON(w, http.StatusOK, map[string]string{"token": "(no authentication)"})
		return
	}
	tok, err := d.o.Tokens.Authenticate(body.Token)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: body.Token, Path: "/ui", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	writeJSON(w, http.StatusOK, map[string]string{"token": tok.Name})
}

// deadAction replays or purges dead letters: {"queue": Q, "ids": [...]},
// which needs queue:Q:admin.
func (d *Dashboard) deadAction(w http.ResponseWriter, r *http.Request, replay bool) {
	var body struct {
		Queue string   `json:"queue"`
		IDs   []string `json:"ids"` // decimal strings: JavaScript numbers lose ids above 2^53
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%v: %v", errBadRequest, err)})
		return
	}
	ids := make([]uint64, 0, len(body.IDs))
	for _, s := range body.IDs {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%v: id %q", errBadRequest, s)})
			return
		}
		ids = append(ids, id)
	}
	if err := info(r.Context()).tok.Check(auth.Queue, body.Queue, auth.Admin); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	var err error
	if replay {
		err = d.o.Queues.Replay(r.Context(), body.Queue, ids)
	} else {
		err = d.o.Queues.Purge(r.Context(), body.Queue, ids)
	}
	if err != nil {
		writeJSON(w, status(err), map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"done": len(ids)})
}
