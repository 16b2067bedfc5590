// Command mcpbench measures flowdb's MCP server over stdio (a real `flowctl
// mcp` subprocess driven by the official Go SDK's client) against the same
// operations through the embedded Go API, in the same run and on the same
// disk:
//
//   - lease+ack: task_lease of one task then task_ack (embedded:
//     queue.Manager.Lease then Ack), the queue filled beforehand;
//   - remember+recall: memory_remember of a short text then memory_recall
//     of another text, k 5 (embedded: the hashed embedder, one transaction
//     of hnsw TxUpsert and the text record, then Search and the text reads).
//
// Each op pair is timed end to end; -workers callers run at once (over one
// MCP session: stdio has one). It prints pairs/s, p50 and p99.
//
//	cd bench && go run ./mcpbench [-pairs 2000] [-workers 8] [-dir /tmp]
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/embed"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var words = []string{"billing", "deploy", "invoice", "customer", "retry", "payment", "queue", "agent", "summary", "report",
	"latency", "error", "refund", "shipment", "order", "ticket", "alert", "budget", "schedule", "review"}

func text(i int) string {
	return fmt.Sprintf("note %d: the %s %s needs a %s after the %s", i, words[i%20], words[(i/20)%20], words[(i/7)%20], words[(i/3)%20])
}

// run times pairs op pairs over workers callers.
func run(pairs, workers int, op func(i int) error) (float64, time.Duration, time.Duration, error) {
	lat := make([]time.Duration, pairs)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= pairs {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if e := firstErr.Load(); e != nil {
		return 0, 0, 0, e.(error)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return float64(pairs) / el.Seconds(), lat[pairs/2], lat[pairs*99/100], nil
}

func call(cs *sdk.ClientSession, name string, args map[string]any) (map[string]any, error) {
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, err
	}
	if res.IsError {
		return nil, fmt.Errorf("%s: %v", name, res.Content[0].(*sdk.TextContent).Text)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func main() {
	pairs := flag.Int("pairs", 2000, "op pairs per scenario")
	workers := flag.Int("workers", 8, "concurrent callers")
	base := flag.String("dir", "", "directory for the stores (default a temp dir)")
	flag.Parse()
	if err := bench(*pairs, *workers, *base); err != nil {
		fmt.Fprintln(os.Stderr, "mcpbench:", err)
		os.Exit(1)
	}
}

func bench(pairs, workers int, base string) error {
	tmp, err := os.MkdirTemp(base, "mcpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	flowctl := filepath.Join(tmp, "flowctl")
	b := exec.Command("go", "build", "-o", flowctl, "./tools/flowctl")
	b.Dir = ".." // the root module: run from bench/
	b.Stderr = os.Stderr
	if err := b.Run(); err != nil {
		return fmt.Errorf("building flowctl: %w", err)
	}
	ctx := context.Background()
	fmt.Printf("%d pairs per scenario, %d concurrent callers\n\n", pairs, workers)
	fmt.Println("| ops | path | pairs/s | p50 | p99 |")
	fmt.Println("|---|---|---:|---:|---:|")
	row := func(ops, path string, op func(int) error) error {
		r, p50, p99, err := run(pairs, workers, op)
		if err != nil {
			return fmt.Errorf("%s %s: %w", ops, path, err)
		}
		fmt.Printf("| %s | %s | %.0f | %v | %v |\n", ops, path, r, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
		return nil
	}

	// MCP over stdio.
	cmd := exec.Command(flowctl, "--dir", filepath.Join(tmp, "mcp"), "mcp")
	cmd.Stderr = os.Stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "mcpbench", Version: "0"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	if _, err := call(cs, "queue_create", map[string]any{"queue": "q"}); err != nil {
		return err
	}
	for i := range pairs {
		if _, err := call(cs, "task_enqueue", map[string]any{"queue": "q", "payload": text(i)}); err != nil {
			return err
		}
	}
	if err := row("lease+ack", "MCP stdio", func(i int) error {
		m, err := call(cs, "task_lease", map[string]any{"queue": "q", "agent": "a"})
		if err != nil {
			return err
		}
		ts := m["tasks"].([]any)
		if len(ts) != 1 {
			return fmt.Errorf("leased %d", len(ts))
		}
		t := ts[0].(map[string]any)
		_, err = call(cs, "task_ack", map[string]any{"queue": "q", "id": t["id"], "token": t["token"], "result": "ok"})
		return err
	}); err != nil {
		return err
	}
	if err := row("remember+recall", "MCP stdio", func(i int) error {
		if _, err := call(cs, "memory_remember", map[string]any{"collection": "m", "text": text(i)}); err != nil {
			return err
		}
		_, err := call(cs, "memory_recall", map[string]any{"collection": "m", "text": text(i * 7), "k": 5})
		return err
	}); err != nil {
		return err
	}

	// The embedded Go API.
	d, err := db.Open(filepath.Join(tmp, "embedded"), nil)
	if err != nil {
		return err
	}
	defer d.Close()
	qm, err := queue.Attach(d, nil)
	if err != nil {
		return err
	}
	defer qm.Close()
	vm, err := hnsw.Attach(d)
	if err != nil {
		return err
	}
	h, _ := embed.NewHashed(0)
	if err := qm.Create(ctx, queue.Config{Name: "q"}); err != nil {
		return err
	}
	for i := range pairs {
		if _, err := qm.Enqueue(ctx, "q", queue.Task{Payload: []byte(text(i))}); err != nil {
			return err
		}
	}
	if err := row("lease+ack", "embedded Go API", func(i int) error {
		ls, err := qm.Lease(ctx, "q", "a", 1, nil, 0)
		if err != nil {
			return err
		}
		if len(ls) != 1 {
			return fmt.Errorf("leased %d", len(ls))
		}
		return qm.Ack(ctx, "q", ls[0].ID, ls[0].Token, []byte("ok"))
	}); err != nil {
		return err
	}
	if err := vm.Create(ctx, hnsw.Config{Name: "m", Dim: h.Dim(), Metric: quant.Cosine}); err != nil {
		return err
	}
	if err := row("remember+recall", "embedded Go API", func(i int) error {
		vs, err := h.Embed(ctx, []string{text(i)})
		if err != nil {
			return err
		}
		rec, _ := json.Marshal(map[string]any{"text": text(i)})
		key := binary.BigEndian.AppendUint64([]byte("m\x00"), uint64(i+1))
		tx := d.NewTxn()
		vm.TxUpsert(tx, "m", hnsw.Vector{ID: uint64(i + 1), Values: vs[0]})
		tx.Set("mem", key, rec)
		if err := d.CommitTxn(ctx, tx); err != nil {
			return err
		}
		qv, err := h.Embed(ctx, []string{text(i * 7)})
		if err != nil {
			return err
		}
		hits, err := vm.Search(ctx, "m", qv[0], 5, hnsw.SearchOptions{})
		if err != nil {
			return err
		}
		for _, hit := range hits {
			if _, err := d.Get(ctx, "mem", binary.BigEndian.AppendUint64([]byte("m\x00"), hit.ID)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}
