package ui

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strings"
	"time"
)

// navPages are the pages of the navigation bar, in order.
var navPages = []string{"overview", "queues", "agents", "scheduler", "vectors", "cluster"}

// funcs are the templates' helpers. None returns template.HTML: every
// value reaches the page through html/template's escaping.
var funcs = template.FuncMap{
	// spark returns an SVG polyline's points for a sparkline of w×h.
	"spark": func(xs []Num, w, h float64) string {
		if len(xs) < 2 {
			return ""
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range xs {
			f := float64(x)
			if !math.IsNaN(f) {
				lo, hi = min(lo, f), max(hi, f)
			}
		}
		if math.IsInf(lo, 1) {
			return ""
		}
		lo = min(lo, 0)
		if hi <= lo {
			hi = lo + 1
		}
		var b strings.Builder
		for i, x := range xs {
			f := float64(x)
			if math.IsNaN(f) {
				continue
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", float64(i)*w/float64(len(xs)-1), h-(f-lo)/(hi-lo)*h)
		}
		return strings.TrimSpace(b.String())
	},
	// q builds a query string from key/value pairs, skipping empty values.
	"q": func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				v.Set(kv[i], kv[i+1])
			}
		}
		if len(v) == 0 {
			return ""
		}
		return "?" + v.Encode()
	},
	"pct":  func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") },
	"zero": func(t time.Time) bool { return t.IsZero() },
	"join": strings.Join,
	"hex": func(b []byte) string {
		const max = 4096
		if len(b) > max {
			return fmt.Sprintf("%x… (%d bytes)", b[:max], len(b))
		}
		return fmt.Sprintf("%x", b)
	},
	"dur":   func(d time.Duration) string { return d.String() },
	"pages": func() []string { return navPages },
}
