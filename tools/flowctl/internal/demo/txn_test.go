package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
)

// TestDemoTxn: the demo's agent steps commit, and its conflicting step is
// refused at the stale ack (operation 3) with nothing of it applied, as
// the demo prints.
func TestDemoTxn(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(filepath.Join(t.TempDir(), "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	qm, err := queue.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer qm.Close()
	vm, err := hnsw.Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	say := func(format string, args ...any) {
		out.WriteString(strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
	}
	rep, err := demoTxn(ctx, d, qm, vm, say)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Steps != 200 || rep.StepsPerS <= 0 || rep.RefusedOp != 3 || !rep.NothingApplied ||
		!strings.Contains(rep.Refused, "lease lost") {
		t.Fatalf("report %+v\n%s", rep, out.String())
	}
	for _, want := range []string{"refused at operation 3 (queue.ack)", "memory 9999 absent: ok", "key last-task still", "acked once (done): ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if st, err := qm.Stats(txnFollowUps); err != nil || st.Enqueued != 200 {
		t.Fatalf("follow-ups: %+v %v", st, err)
	}
}
