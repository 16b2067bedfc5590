// Command mcpbench measures flowdb's MCP server over stdio (a real `flowctl
// mcp` subprocess driven by the official Go SDK's client) and over
// streamable HTTP (the /mcp endpoint of a real `flowctl serve`), against the
// same operations through the Go client package (client/, Connect RPC to
// the same `flowctl serve`) and through the embedded Go API, in the same
// run and on the same disk:
//
//   - lease+ack: task_lease of one task then task_ack (client: Lease then
//     Ack; embedded: queue.Manager.Lease then Ack), the queue filled
//     beforehand;
//   - remember+recall: memory_remember of a short text then memory_recall
//     of another text, k 5, which answers with the texts (client: the
//     hashed embedder in the client process, Set of the text and Upsert
//     of the vector, then Search and a Get of each hit's text; embedded: one
//     transaction of hnsw TxUpsert and the text record, then Search and the
//     text reads).
//
// Each op pair is timed end to end; -workers callers run at once (over one
// MCP session per transport, one client). It prints pairs/s, p50, p99 and
// each row's rate as a fraction of the Go client's and the embedded API's.
//
//	cd bench && go run ./mcpbench [-pairs 2000] [-workers 8] [-dir /tmp]
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/client"
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

// result is one row.
type result struct {
	ops, path string
	rate      float64
	p50, p99  time.Duration
}

// startServe starts `flowctl --dir dir serve` on a free loopback port and
// returns it with its base URL.
func startServe(flowctl, dir string) (*exec.Cmd, string, error) {
	cmd := exec.Command(flowctl, "--dir", dir, "serve", "--listen", "127.0.0.1:0")
	errOut, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(errOut)
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "flowdb serving "); ok {
			go io.Copy(os.Stderr, errOut)
			return cmd, strings.Fields(rest)[0], nil
		}
		fmt.Fprintln(os.Stderr, sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, "", fmt.Errorf("flowctl serve did not start")
}

// mcpOps returns the two op pairs through an MCP session, after creating
// and filling the queue.
func mcpOps(cs *sdk.ClientSession, pairs int) (leaseAck, rememberRecall func(int) error, err error) {
	if _, err := call(cs, "queue_create", map[string]any{"queue": "q"}); err != nil {
		return nil, nil, err
	}
	for i := range pairs {
		if _, err := call(cs, "task_enqueue", map[string]any{"queue": "q", "payload": text(i)}); err != nil {
			return nil, nil, err
		}
	}
	leaseAck = func(i int) error {
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
	}
	rememberRecall = func(i int) error {
		if _, err := call(cs, "memory_remember", map[string]any{"collection": "m", "text": text(i)}); err != nil {
			return err
		}
		_, err := call(cs, "memory_recall", map[string]any{"collection": "m", "text": text(i * 7), "k": 5})
		return err
	}
	return leaseAck, rememberRecall, nil
}

// memKey is the key of a memory's text in the client and embedded rows.
func memKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte("m\x00"), id) }

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
	h, _ := embed.NewHashed(0)

	// MCP over stdio.
	cmd := exec.Command(flowctl, "--dir", filepath.Join(tmp, "stdio"), "mcp")
	cmd.Stderr = os.Stderr
	stdio, err := sdk.NewClient(&sdk.Implementation{Name: "mcpbench", Version: "0"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return err
	}
	defer stdio.Close()

	// MCP over streamable HTTP and the Go client, on one `flowctl serve`.
	srv, url, err := startServe(flowctl, filepath.Join(tmp, "serve"))
	if err != nil {
		return err
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	httpcs, err := sdk.NewClient(&sdk.Implementation{Name: "mcpbench", Version: "0"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: url + "/mcp"}, nil)
	if err != nil {
		return err
	}
	defer httpcs.Close()
	c, err := client.New(url, nil)
	if err != nil {
		return err
	}
	defer c.Close()

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

	type path struct {
		name                     string
		leaseAck, rememberRecall func(int) error
	}
	var paths []path
	for _, x := range []struct {
		name string
		cs   *sdk.ClientSession
	}{{"MCP stdio", stdio}, {"MCP HTTP", httpcs}} {
		la, rr, err := mcpOps(x.cs, pairs)
		if err != nil {
			return fmt.Errorf("%s: %w", x.name, err)
		}
		paths = append(paths, path{x.name, la, rr})
	}

	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "qc"}); err != nil {
		return err
	}
	for i := range pairs {
		if _, err := c.Enqueue(ctx, "qc", client.Task{Payload: []byte(text(i))}); err != nil {
			return err
		}
	}
	if err := c.CreateCollection(ctx, client.CollectionConfig{Name: "mc", Dim: h.Dim(), Metric: "cosine"}); err != nil {
		return err
	}
	paths = append(paths, path{"Go client (Connect RPC)",
		func(i int) error {
			ls, err := c.Lease(ctx, "qc", "a", 1, nil, 0)
			if err != nil {
				return err
			}
			if len(ls) != 1 {
				return fmt.Errorf("leased %d", len(ls))
			}
			return c.Ack(ctx, "qc", ls[0].ID, ls[0].Token, []byte("ok"))
		},
		func(i int) error {
			vs, err := h.Embed(ctx, []string{text(i)})
			if err != nil {
				return err
			}
			// The text first: a vector found by a search has its text.
			id := uint64(i + 1)
			rec, _ := json.Marshal(map[string]any{"text": text(i)})
			if err := c.Set(ctx, "mem", memKey(id), rec); err != nil {
				return err
			}
			if err := c.Upsert(ctx, "mc", []client.Vector{{ID: id, Values: vs[0]}}); err != nil {
				return err
			}
			qv, err := h.Embed(ctx, []string{text(i * 7)})
			if err != nil {
				return err
			}
			hits, err := c.Search(ctx, "mc", qv[0], 5, client.SearchOptions{})
			if err != nil {
				return err
			}
			for _, hit := range hits {
				if _, err := c.Get(ctx, "mem", memKey(hit.ID)); err != nil {
					return err
				}
			}
			return nil
		}})

	if err := qm.Create(ctx, queue.Config{Name: "q"}); err != nil {
		return err
	}
	for i := range pairs {
		if _, err := qm.Enqueue(ctx, "q", queue.Task{Payload: []byte(text(i))}); err != nil {
			return err
		}
	}
	if err := vm.Create(ctx, hnsw.Config{Name: "m", Dim: h.Dim(), Metric: quant.Cosine}); err != nil {
		return err
	}
	paths = append(paths, path{"embedded Go API",
		func(i int) error {
			ls, err := qm.Lease(ctx, "q", "a", 1, nil, 0)
			if err != nil {
				return err
			}
			if len(ls) != 1 {
				return fmt.Errorf("leased %d", len(ls))
			}
			return qm.Ack(ctx, "q", ls[0].ID, ls[0].Token, []byte("ok"))
		},
		func(i int) error {
			vs, err := h.Embed(ctx, []string{text(i)})
			if err != nil {
				return err
			}
			rec, _ := json.Marshal(map[string]any{"text": text(i)})
			tx := d.NewTxn()
			vm.TxUpsert(tx, "m", hnsw.Vector{ID: uint64(i + 1), Values: vs[0]})
			tx.Set("mem", memKey(uint64(i+1)), rec)
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
				if _, err := d.Get(ctx, "mem", memKey(hit.ID)); err != nil {
					return err
				}
			}
			return nil
		}})

	var rows []result
	for _, ops := range []string{"lease+ack", "remember+recall"} {
		for _, p := range paths {
			op := p.leaseAck
			if ops == "remember+recall" {
				op = p.rememberRecall
			}
			r, p50, p99, err := run(pairs, workers, op)
			if err != nil {
				return fmt.Errorf("%s %s: %w", ops, p.name, err)
			}
			rows = append(rows, result{ops, p.name, r, p50, p99})
		}
	}
	fmt.Printf("%d pairs per scenario, %d concurrent callers\n\n", pairs, workers)
	fmt.Println("| ops | path | pairs/s | p50 | p99 | rate / Go client | rate / embedded |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		var cl, em float64
		for _, o := range rows {
			if o.ops == r.ops && strings.HasPrefix(o.path, "Go client") {
				cl = o.rate
			}
			if o.ops == r.ops && o.path == "embedded Go API" {
				em = o.rate
			}
		}
		fmt.Printf("| %s | %s | %.0f | %v | %v | %.2f | %.3f |\n", r.ops, r.path, r.rate,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.rate/cl, r.rate/em)
	}
	return nil
}
