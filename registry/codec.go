package registry

import (
	"fmt"
	"slices"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
)

// Limits on what Register accepts (checked before anything is logged).
const (
	MaxIDSize       = 256
	MaxCapabilities = 64
	MaxLabelSize    = 256
	MaxLabels       = 64
	MaxCapacity     = 1 << 20
	MaxStatusSize   = 256
)

var errBadRecord = fmt.Errorf("%w: registry record", db.ErrBadRecord)

// encodeSpec is the body of a register record and the definition part of a
// stored agent: id | pool | capabilities | capacity | labels | interval.
func encodeSpec(e codec.Enc, s *AgentSpec) codec.Enc {
	e = e.S(s.ID).S(s.Pool).Strings(s.Capabilities).U(uint64(s.Capacity))
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // map order never reaches a record
	e = e.U(uint64(len(keys)))
	for _, k := range keys {
		e = e.S(k).S(s.Labels[k])
	}
	return e.I(int64(s.HeartbeatInterval))
}

func decodeSpec(d *codec.Dec) AgentSpec {
	s := AgentSpec{ID: d.S(MaxIDSize), Pool: d.S(MaxLabelSize), Capabilities: d.Strings(MaxCapabilities, MaxLabelSize)}
	s.Capacity = int(d.U())
	n := d.U()
	if n > MaxLabels {
		d.OK = false
	}
	for i := uint64(0); i < n && d.OK; i++ {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		k := d.S(MaxLabelSize)
		s.Labels[k] = d.S(MaxLabelSize)
	}
	s.HeartbeatInterval = time.Duration(d.I())
	if d.OK && s.validate() != nil {
		d.OK = false
	}
	return s
}

// encodeAgent is a stored agent: spec | load | status | healthy | registered
// | last heartbeat | idle since (times in Unix nanoseconds of record time).
func encodeAgent(a *Agent) []byte {
	e := encodeSpec(nil, &a.AgentSpec).U(uint64(a.Load)).S(a.Status)
	h := uint64(0)
	if a.Healthy {
		h = 1
	}
	return e.U(h).I(a.registered).I(a.lastBeat).I(a.idleSince)
}

func decodeAgent(v []byte) (*Agent, bool) {
	d := codec.NewDec(v)
	a := &Agent{AgentSpec: decodeSpec(d)}
	a.Load, a.Status = int(d.U()), d.S(MaxStatusSize)
	h := d.U()
	a.Healthy = h == 1
	a.registered, a.lastBeat, a.idleSince = d.I(), d.I(), d.I()
	if !d.Done() || h > 1 || a.Load < 0 || a.Load > MaxCapacity {
		return nil, false
	}
	a.setTimes()
	return a, true
}

func encodePool(p *Pool) []byte {
	return codec.Enc(nil).S(p.Name).U(uint64(p.MinWarm)).U(uint64(p.MaxSize)).I(int64(p.RetireAfter))
}

func decodePool(v []byte) (Pool, bool) {
	d := codec.NewDec(v)
	p := Pool{Name: d.S(MaxLabelSize), MinWarm: int(d.U()), MaxSize: int(d.U()), RetireAfter: time.Duration(d.I())}
	return p, d.Done() && p.validate() == nil
}

func binaryDuration(d time.Duration) []byte { return codec.Enc(nil).U64(uint64(d)) }

func durationOf(b []byte) time.Duration { return time.Duration(codec.NewDec(b).U64()) }
