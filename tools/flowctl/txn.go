package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/spf13/cobra"
)

// flowctl txn: one transaction described as JSON.
//
//	{
//	  "idempotency_key": "agent-7/step-42",
//	  "ops": [
//	    {"op": "ack", "queue": "jobs", "id": "12", "token": "9934...", "result": "done"},
//	    {"op": "upsert", "collection": "memory", "id": "7", "vector": [0.1, ...], "tags": ["t"]},
//	    {"op": "set", "ns": "agent", "key": "a1/last", "value": "12", "ttl": "10m"},
//	    {"op": "enqueue", "queue": "jobs", "payload": "summarise 12"},
//	    {"op": "require", "ns": "agent", "key": "a1/lock", "value": "mine"}
//	  ]
//	}
//
// Each operation names its kind in "op" and takes the fields listed in
// txnOps (unknown fields, unknown kinds and missing required fields are bad
// input: exit 2). Task ids, lease tokens and vector ids are JSON strings
// (they exceed 2^53; plain numbers are accepted too). Keys, values and
// payloads are text, or "hex:..." for bytes, as in the kv commands;
// durations are Go durations ("10s"). An enqueue's "key" is the task's
// idempotency key (queue.Task.IdempotencyKey); "delay" makes it ready that
// long after the command runs. The transaction commits whole or not
// at all (db.DB.CommitTxn); the outcome is printed per operation. A
// refused transaction exits 1 and names the refused operation.
//
// With --node the client reads the file (or standard input) and sends its
// text in the hidden --ops-json flag, so the node never reads the client's
// files or standard input.

// txnOpSpec describes one operation kind of the JSON: the fields it takes
// and those it requires ("op" aside).
type txnOpSpec struct {
	fields   []string
	required []string
}

var txnOps = map[string]txnOpSpec{
	"set":             {fields: []string{"ns", "key", "value", "ttl"}, required: []string{"ns", "key", "value"}},
	"delete":          {fields: []string{"ns", "key", "prefix"}, required: []string{"ns", "key"}},
	"require":         {fields: []string{"ns", "key", "value"}, required: []string{"ns", "key", "value"}},
	"require_absent":  {fields: []string{"ns", "key"}, required: []string{"ns", "key"}},
	"require_present": {fields: []string{"ns", "key"}, required: []string{"ns", "key"}},
	"enqueue": {fields: []string{"queue", "payload", "priority", "key", "delay", "requires", "tags", "affinity"},
		required: []string{"queue", "payload"}},
	"ack":            {fields: []string{"queue", "id", "token", "result"}, required: []string{"queue", "id", "token"}},
	"nack":           {fields: []string{"queue", "id", "token", "reason"}, required: []string{"queue", "id", "token"}},
	"extend":         {fields: []string{"queue", "id", "token", "lease"}, required: []string{"queue", "id", "token", "lease"}},
	"cancel":         {fields: []string{"queue", "id"}, required: []string{"queue", "id"}},
	"upsert":         {fields: []string{"collection", "id", "vector", "tags", "vectors"}, required: []string{"collection"}},
	"delete_vectors": {fields: []string{"collection", "ids"}, required: []string{"collection", "ids"}},
	"heartbeat":      {fields: []string{"agent", "load", "status"}, required: []string{"agent"}},
	"register": {fields: []string{"agent", "pool", "capabilities", "capacity", "labels", "heartbeat_interval"},
		required: []string{"agent", "capacity"}},
}

// txnID is a task id, lease token or vector id: a JSON string of digits
// (or a number) in, a string out.
type txnID uint64

func (id *txnID) UnmarshalJSON(b []byte) error {
	s := string(b)
	if u, err := strconv.Unquote(s); err == nil {
		s = u
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("bad id %s (want a string of digits)", b)
	}
	*id = txnID(v)
	return nil
}

func (id txnID) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(id), 10) + `"`), nil
}

// txnDuration is a Go duration written as a string ("10s").
type txnDuration time.Duration

func (d *txnDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("bad duration %s (want a string such as \"10s\")", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = txnDuration(v)
	return nil
}

// txnVector is one vector of an upsert.
type txnVector struct {
	ID     *txnID    `json:"id"`
	Vector []float32 `json:"vector"`
	Tags   []string  `json:"tags"`
}

// txnOpJSON holds the fields of every operation kind; txnOps says which
// each kind takes.
type txnOpJSON struct {
	Op         string            `json:"op"`
	NS         string            `json:"ns"`
	Key        string            `json:"key"`
	Value      string            `json:"value"`
	TTL        txnDuration       `json:"ttl"`
	Prefix     bool              `json:"prefix"`
	Queue      string            `json:"queue"`
	Payload    string            `json:"payload"`
	Priority   int               `json:"priority"`
	Delay      txnDuration       `json:"delay"`
	Requires   []string          `json:"requires"`
	Tags       []string          `json:"tags"`
	Affinity   string            `json:"affinity"`
	ID         txnID             `json:"id"`
	Token      txnID             `json:"token"`
	Result     string            `json:"result"`
	Reason     string            `json:"reason"`
	Lease      txnDuration       `json:"lease"`
	Collection string            `json:"collection"`
	Vector     []float32         `json:"vector"`
	Vectors    []txnVector       `json:"vectors"`
	IDs        []txnID           `json:"ids"`
	Agent      string            `json:"agent"`
	Load       int               `json:"load"`
	Status     string            `json:"status"`
	Pool       string            `json:"pool"`
	Caps       []string          `json:"capabilities"`
	Capacity   int               `json:"capacity"`
	Labels     map[string]string `json:"labels"`
	HBInterval txnDuration       `json:"heartbeat_interval"`
}

// txnSpec is a parsed transaction file.
type txnSpec struct {
	IdempotencyKey string            `json:"idempotency_key"`
	Ops            []json.RawMessage `json:"ops"`
	ops            []txnOpJSON
}

// parseTxnSpec parses and checks a transaction file. Every error is bad
// input (usageError, exit 2).
func parseTxnSpec(b []byte) (*txnSpec, error) {
	bad := func(format string, args ...any) (*txnSpec, error) {
		return nil, usageError{fmt.Errorf("txn: "+format, args...)}
	}
	var spec txnSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return bad("%v", err)
	}
	if dec.More() {
		return bad("trailing data after the transaction object")
	}
	if len(spec.Ops) == 0 {
		return bad("no operations (\"ops\" is empty or missing)")
	}
	for i, raw := range spec.Ops {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return bad("operation %d: %v", i, err)
		}
		var name string
		if err := json.Unmarshal(fields["op"], &name); err != nil || name == "" {
			return bad("operation %d: \"op\" must name the operation (%s)", i, txnOpNames())
		}
		s, ok := txnOps[name]
		if !ok {
			return bad("operation %d: unknown op %q (one of %s)", i, name, txnOpNames())
		}
		for f := range fields {
			if f != "op" && !slices.Contains(s.fields, f) {
				return bad("operation %d (%s): unknown field %q (it takes %s)", i, name, f, strings.Join(s.fields, ", "))
			}
		}
		for _, f := range s.required {
			if _, ok := fields[f]; !ok {
				return bad("operation %d (%s): %q is required", i, name, f)
			}
		}
		var op txnOpJSON
		if err := json.Unmarshal(raw, &op); err != nil {
			return bad("operation %d (%s): %v", i, name, err)
		}
		if name == "upsert" {
			_, one := fields["vector"]
			_, many := fields["vectors"]
			_, id := fields["id"]
			switch {
			case one == many:
				return bad("operation %d (upsert): give either \"id\" and \"vector\" or \"vectors\"", i)
			case one && !id:
				return bad("operation %d (upsert): \"id\" is required with \"vector\"", i)
			case many && (id || fields["tags"] != nil):
				return bad("operation %d (upsert): \"id\" and \"tags\" go inside each of \"vectors\"", i)
			}
			for j, v := range op.Vectors {
				if v.ID == nil || v.Vector == nil {
					return bad("operation %d (upsert): vectors[%d] needs \"id\" and \"vector\"", i, j)
				}
			}
		}
		spec.ops = append(spec.ops, op)
	}
	return &spec, nil
}

func txnOpNames() string {
	names := make([]string, 0, len(txnOps))
	for n := range txnOps {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// describe names what operation o acts on, for the outcome table.
func (o *txnOpJSON) describe() string {
	switch o.Op {
	case "set", "delete", "require", "require_absent", "require_present":
		return o.NS + "/" + o.Key
	case "enqueue":
		return o.Queue
	case "ack", "nack", "extend", "cancel":
		return fmt.Sprintf("%s/%d", o.Queue, o.ID)
	case "upsert":
		if o.Vectors != nil {
			return fmt.Sprintf("%s (%d vectors)", o.Collection, len(o.Vectors))
		}
		return fmt.Sprintf("%s/%d", o.Collection, o.ID)
	case "delete_vectors":
		return fmt.Sprintf("%s (%d ids)", o.Collection, len(o.IDs))
	default:
		return o.Agent
	}
}

// add adds o to tx. The returned function, called after a commit, gives
// the ids of enqueued tasks.
func (o *txnOpJSON) add(s *store, tx *db.Txn) (func() []uint64, error) {
	bytesOf := func(v string) ([]byte, error) { return parseBytes(v) }
	switch o.Op {
	case "set", "delete", "require", "require_absent", "require_present":
		key, err := bytesOf(o.Key)
		if err != nil {
			return nil, err
		}
		val, err := bytesOf(o.Value)
		if err != nil {
			return nil, err
		}
		switch o.Op {
		case "set":
			tx.SetTTL(o.NS, key, val, time.Duration(o.TTL))
		case "delete":
			if o.Prefix {
				tx.DeletePrefix(o.NS, key)
			} else {
				tx.Delete(o.NS, key)
			}
		case "require":
			tx.Require(o.NS, key, val)
		case "require_absent":
			tx.RequireAbsent(o.NS, key)
		default:
			tx.RequirePresent(o.NS, key)
		}
	case "enqueue":
		p, err := bytesOf(o.Payload)
		if err != nil {
			return nil, err
		}
		t := queue.Task{Payload: p, Priority: o.Priority, IdempotencyKey: o.Key, Requires: o.Requires, Tags: o.Tags, Affinity: o.Affinity}
		if o.Delay > 0 {
			t.NotBefore = time.Now().Add(time.Duration(o.Delay))
		}
		e := s.Q.TxEnqueue(tx, o.Queue, t)
		return func() []uint64 { return e.IDs }, nil
	case "ack":
		r, err := bytesOf(o.Result)
		if err != nil {
			return nil, err
		}
		s.Q.TxAck(tx, o.Queue, uint64(o.ID), uint64(o.Token), r)
	case "nack":
		s.Q.TxNack(tx, o.Queue, uint64(o.ID), uint64(o.Token), o.Reason)
	case "extend":
		s.Q.TxExtend(tx, o.Queue, uint64(o.ID), uint64(o.Token), time.Duration(o.Lease))
	case "cancel":
		s.Q.TxCancel(tx, o.Queue, uint64(o.ID))
	case "upsert":
		vs := []hnsw.Vector{{ID: uint64(o.ID), Values: o.Vector, Tags: o.Tags}}
		if o.Vectors != nil {
			vs = vs[:0]
			for _, v := range o.Vectors {
				vs = append(vs, hnsw.Vector{ID: uint64(*v.ID), Values: v.Vector, Tags: v.Tags})
			}
		}
		s.V.TxUpsert(tx, o.Collection, vs...)
	case "delete_vectors":
		ids := make([]uint64, len(o.IDs))
		for i, id := range o.IDs {
			ids[i] = uint64(id)
		}
		s.V.TxDelete(tx, o.Collection, ids...)
	case "heartbeat":
		s.R.TxHeartbeat(tx, o.Agent, o.Load, o.Status)
	case "register":
		s.R.TxRegister(tx, registry.AgentSpec{ID: o.Agent, Pool: o.Pool, Capabilities: o.Caps, Capacity: o.Capacity,
			Labels: o.Labels, HeartbeatInterval: time.Duration(o.HBInterval)})
	}
	return nil, nil
}

// txnOutcome is what flowctl txn prints (--json).
type txnOutcome struct {
	Committed bool           `json:"committed"`
	Index     uint64         `json:"index,string,omitempty"`
	RefusedOp *int           `json:"refused_op,omitempty"`
	Error     string         `json:"error,omitempty"`
	Ops       []txnOpOutcome `json:"ops"`
}

type txnOpOutcome struct {
	Op     string  `json:"op"`
	Target string  `json:"target"`
	Status string  `json:"status"` // applied, refused, not applied
	IDs    []txnID `json:"ids,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func (a *app) txnCmd() *cobra.Command {
	var file, body string
	c := &cobra.Command{
		Use:   "txn --file OPS.json",
		Short: "Commit a transaction described as JSON (- for standard input): every operation applies, or none",
		Long: "Commit one transaction: key-value writes and conditions, queue, vector and registry operations,\n" +
			"all applied or none. OPS.json is {\"idempotency_key\": \"...\", \"ops\": [{\"op\": \"ack\", ...}, ...]};\n" +
			"ops: " + txnOpNames() + ".\n" +
			"Ids and tokens are JSON strings; keys, values and payloads text or \"hex:...\"; durations \"10s\".\n" +
			"Prints each operation's outcome. Exit 1 if the transaction was refused (nothing applied), 2 on bad input.",
		Args: exactArgs(0, "no arguments (the operations come from --file)"),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("ops-json") {
				return nil // sent by a client (--node)
			}
			if file == "" {
				return usageError{errors.New("txn needs --file OPS.json (or --file - for standard input)")}
			}
			r := a.in
			if r == nil {
				r = cmd.InOrStdin()
			}
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return usageError{fmt.Errorf("txn: %w", err)}
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, maxTxnFile+1))
			if err != nil {
				return fmt.Errorf("txn: reading %s: %w", file, err)
			}
			if len(b) > maxTxnFile {
				return usageError{fmt.Errorf("txn: %s is over %d bytes", file, maxTxnFile)}
			}
			// Set as a flag so that --node forwards the text itself.
			return cmd.Flags().Set("ops-json", string(b))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := parseTxnSpec([]byte(body))
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) { return runTxn(cmd, s, spec) })
		},
	}
	c.Flags().StringVar(&file, "file", "", "the transaction as JSON (- for standard input)")
	c.Flags().StringVar(&body, "ops-json", "", "the transaction's JSON text (what --node sends)")
	c.Flags().MarkHidden("ops-json")
	return c
}

// maxTxnFile bounds a transaction file: JSON text of vectors is several
// times their encoded size (db.MaxTxnBytes).
const maxTxnFile = 48 << 20

// runTxn builds spec's transaction, commits it and reports per operation.
func runTxn(cmd *cobra.Command, s *store, spec *txnSpec) (output, error) {
	tx := s.NewTxn()
	if spec.IdempotencyKey != "" {
		tx.SetIdempotencyKey(spec.IdempotencyKey)
	}
	ids := make([]func() []uint64, len(spec.ops))
	for i := range spec.ops {
		f, err := spec.ops[i].add(s, tx)
		if err != nil {
			return output{}, fmt.Errorf("txn: operation %d (%s): %w", i, spec.ops[i].Op, err)
		}
		ids[i] = f
	}
	out := txnOutcome{Ops: make([]txnOpOutcome, len(spec.ops))}
	for i, o := range spec.ops {
		out.Ops[i] = txnOpOutcome{Op: o.Op, Target: o.describe(), Status: "not applied"}
	}
	err := s.CommitTxn(cmd.Context(), tx)
	var te *db.TxnError
	switch {
	case err == nil:
		out.Committed, out.Index = true, tx.Index()
		for i := range out.Ops {
			out.Ops[i].Status = "applied"
			if ids[i] != nil {
				for _, id := range ids[i]() {
					out.Ops[i].IDs = append(out.Ops[i].IDs, txnID(id))
				}
			}
		}
	case errors.As(err, &te) && te.Op >= 0 && te.Op < len(out.Ops):
		op := te.Op
		out.RefusedOp, out.Error = &op, err.Error()
		out.Ops[op].Status, out.Ops[op].Error = "refused", te.Err.Error()
		err = fmt.Errorf("txn: operation %d (%s %s) refused, nothing applied: %w", op, out.Ops[op].Op, out.Ops[op].Target, err)
	default:
		out.Error = err.Error()
		err = fmt.Errorf("txn: not committed: %w", err)
	}
	return output{JSON: out, Text: func(w io.Writer) { out.print(w) }}, err
}

func (o *txnOutcome) print(w io.Writer) {
	switch {
	case o.Committed && o.Index > 0:
		fmt.Fprintf(w, "committed at index %d (%d operations)\n", o.Index, len(o.Ops))
	case o.Committed:
		fmt.Fprintf(w, "committed (%d operations)\n", len(o.Ops))
	case o.RefusedOp != nil:
		fmt.Fprintf(w, "refused at operation %d: nothing applied\n", *o.RefusedOp)
	default:
		fmt.Fprintf(w, "not committed: nothing applied\n")
	}
	for i, op := range o.Ops {
		fmt.Fprintf(w, "%3d  %-15s %-32s %s", i, op.Op, op.Target, op.Status)
		for j, id := range op.IDs {
			sep := ", "
			if j == 0 {
				sep = "  id "
			}
			fmt.Fprintf(w, "%s%d", sep, id)
		}
		if op.Error != "" {
			fmt.Fprintf(w, ": %s", op.Error)
		}
		fmt.Fprintln(w)
	}
}

// txn runs on a node with --node, as the other data commands (exec.go).
func init() { remoteGroups["txn"] = true }
