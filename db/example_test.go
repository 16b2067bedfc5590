package db_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/flowdb/flowdb/db"
)

// Example shows the key-value API: open, write durably, read, scan, batch.
func Example() {
	dir, _ := os.MkdirTemp("", "flowdb-example-")
	defer os.RemoveAll(dir)

	d, err := db.Open(dir, nil) // defaults: fsync before every acknowledgement
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()

	// Set returns once the write is durable.
	if err := d.Set(ctx, "agents", []byte("planner-1"), []byte(`{"pool":"planners"}`)); err != nil {
		log.Fatal(err)
	}
	// A session that expires on its own.
	if err := d.SetTTL(ctx, "sessions", []byte("s-42"), []byte("planner-1"), 30*time.Minute); err != nil {
		log.Fatal(err)
	}
	// Several writes, atomically.
	b := d.NewBatch()
	b.Set("memory", []byte("planner-1/0001"), []byte("user prefers short plans"))
	b.Set("memory", []byte("planner-1/0002"), []byte("deadline is Friday"))
	if err := d.Commit(ctx, b); err != nil {
		log.Fatal(err)
	}

	v, err := d.Get(ctx, "agents", []byte("planner-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(v))
	for e, err := range d.Scan(ctx, "memory", db.ScanOptions{Prefix: []byte("planner-1/")}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s = %s\n", e.Key, e.Value)
	}
	// Output:
	// {"pool":"planners"}
	// planner-1/0001 = user prefers short plans
	// planner-1/0002 = deadline is Friday
}
