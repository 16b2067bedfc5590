package queue

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
)

// TestCloseDBBeforeManager closes the store while the queue's ticker is
// busy and the manager still open: DB.Close stops the ticker first
// (db.Machine.Stop), so the ticker never reads the closed store (it
// panicked with "pebble: closed" before), and the manager's own Close
// afterwards is a no-op.
func TestCloseDBBeforeManager(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		d, err := db.Open("/c", testutil.StoreOptions(vfs.NewMem(), nil))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Attach(d, &Options{TickInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Create(ctx, Config{Name: "q"}); err != nil {
			t.Fatal(err)
		}
		// Delayed tasks keep the ticker reading its timer index.
		var ts []Task
		for i := range 50 {
			ts = append(ts, Task{Payload: []byte{byte(i)}, NotBefore: time.Now().Add(time.Hour)})
		}
		if _, err := m.EnqueueBatch(ctx, "q", ts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseAfterFailedAttach: an Attach whose load fails (a damaged queue
// definition) leaves a store that still closes; DB.Close used to wait
// forever on the ticker the failed Attach never started.
func TestCloseAfterFailedAttach(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	d, err := db.Open("/f", testutil.StoreOptions(fs, nil))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(ctx, Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	// Damage written straight to Pebble, as a bad disk would.
	if err := d.Pebble().Set(keys.NameKey(d.Placement().ShardFor("q"), keys.TableQueueDef, "q"), []byte{0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = db.Open("/f", testutil.StoreOptions(fs, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(d, nil); err == nil {
		t.Fatal("attach over a damaged queue definition succeeded")
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("DB.Close hangs after a failed Attach")
	}
}
