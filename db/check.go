package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Problem is one piece of damage found by Check.
type Problem struct {
	// Key is the raw Pebble key, hex-encoded ("" for store-wide problems).
	Key   string `json:"key,omitempty"`
	Table string `json:"table,omitempty"`
	Err   string `json:"error"`
}

// CheckReport summarizes a Check.
type CheckReport struct {
	Keys         int            `json:"keys"`
	ByTable      map[string]int `json:"by_table"`
	Frames       int            `json:"frames"`
	FirstFrame   uint64         `json:"first_frame"`
	LastFrame    uint64         `json:"last_frame"`
	AppliedIndex uint64         `json:"applied_index"`
	Problems     []Problem      `json:"problems"`
	// Warnings are findings that are not damage (a machine's Check
	// returned an error matching ErrCheckWarning): they do not make the
	// report fail OK.
	Warnings []Problem `json:"warnings,omitempty"`
}

// ErrCheckWarning marks an error a Machine's Check returns for a finding
// that is worth reporting but is not damage (for example, vectors a graph
// cannot reach in a collection written before the graph kept them
// reachable): Check lists it under Warnings, not Problems.
var ErrCheckWarning = errors.New("db: check warning")

// OK reports whether Check found no damage.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// maxProblems caps the problems listed in one report.
const maxProblems = 1000

// Check walks the whole store and verifies: Pebble's own LSM invariants and
// block checksums (CheckLevels); the checksum and decoding of every frame
// kept in the command log, that their indexes are contiguous and end at the
// applied index; and every entry of every registered table (kv values, TTL
// index entries, and the tables later packages register). Unknown tables are
// damage. Then it runs every attached machine's cross-table check
// (Machine.Check) on the same snapshot. progress, if non-nil, is called
// with the number of keys seen so far every 4096 keys. Check reads a
// consistent snapshot and may run while the store is in use.
func (d *DB) Check(ctx context.Context, progress func(keys int)) (*CheckReport, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	r := &CheckReport{ByTable: map[string]int{}}
	add := func(key []byte, table, format string, args ...any) {
		for i, a := range args {
			// Pebble joins its corruption errors with a carrier whose
			// text is "<corruption detail carrier>": print the detail.
			if err, ok := a.(error); ok {
				if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
					args[i] = info.String()
				}
			}
		}
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, Problem{Key: fmt.Sprintf("%x", key), Table: table, Err: fmt.Sprintf(format, args...)})
		}
	}
	if err := d.pdb.CheckLevels(nil); err != nil {
		add(nil, "", "pebble: %v", err)
	}
	snap := d.pdb.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	reg := d.reg.load()
	var dec wal.Decoder
	var frame wal.Frame
	var appliedSeen bool
	for ok := it.First(); ok; ok = it.Next() {
		if r.Keys%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return r, err
			}
			if progress != nil && r.Keys > 0 {
				progress(r.Keys)
			}
		}
		r.Keys++
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			add(k, "", "read value: %v", err)
			continue
		}
		shard, table, rest, ok := keys.Split(k)
		if !ok {
			add(k, "", "key shorter than a shard/table prefix")
			continue
		}
		switch table {
		case keys.TableMeta:
			r.ByTable["meta"]++
			if string(rest) == "applied" {
				idx, _, err := decodeApplied(v)
				if err != nil {
					add(k, "meta", "%v", err)
				}
				if shard == keys.LocalShard {
					r.AppliedIndex, appliedSeen = idx, true
				}
			}
		case keys.TableLog:
			r.ByTable["log"]++
			if len(rest) != 8 {
				add(k, "log", "log key suffix of %d bytes", len(rest))
				continue
			}
			idx := binary.BigEndian.Uint64(rest)
			if err := dec.Decode(v, &frame); err != nil {
				add(k, "log", "frame %d: %v", idx, err)
			}
			if shard == keys.LocalShard {
				if r.Frames > 0 && idx != r.LastFrame+1 {
					add(k, "log", "frame %d follows frame %d: gap in the command log", idx, r.LastFrame)
				}
				if r.Frames == 0 {
					r.FirstFrame = idx
				}
				r.LastFrame = idx
				r.Frames++
			}
		default:
			spec := reg.tables[table]
			if spec == nil {
				add(k, fmt.Sprintf("%#x", table), "unknown table")
				continue
			}
			r.ByTable[spec.Name]++
			if spec.Check != nil {
				if err := spec.Check(rest, v); err != nil {
					add(k, spec.Name, "%v", err)
				}
			}
		}
	}
	if err := it.Error(); err != nil {
		add(nil, "", "iterate: %v", err)
	}
	for _, m := range reg.machines {
		if m.Check == nil {
			continue
		}
		for _, err := range m.Check(ctx, snap) {
			if errors.Is(err, ErrCheckWarning) {
				r.Warnings = append(r.Warnings, Problem{Table: m.Name, Err: err.Error()})
				continue
			}
			add(nil, m.Name, "%v", err)
		}
	}
	if r.Frames > 0 {
		switch {
		case !appliedSeen:
			add(nil, "meta", "command log present but no applied index")
		case r.LastFrame != r.AppliedIndex:
			add(nil, "log", "last frame %d != applied index %d", r.LastFrame, r.AppliedIndex)
		}
	}
	if progress != nil {
		progress(r.Keys)
	}
	return r, nil
}
