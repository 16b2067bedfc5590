package registry_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/registry"
)

// Register agents with capabilities, report a heartbeat, and look agents
// up by what they can do.
func Example() {
	dir, err := os.MkdirTemp("", "flowdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := db.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	r, err := registry.Attach(d, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx := context.Background()
	for _, a := range []registry.AgentSpec{
		{ID: "coder-1", Pool: "coders", Capabilities: []string{"go", "python"}, Capacity: 4},
		{ID: "coder-2", Pool: "coders", Capabilities: []string{"python"}, Capacity: 2},
	} {
		if err := r.Register(ctx, a); err != nil {
			log.Fatal(err)
		}
	}
	if err := r.Heartbeat(ctx, "coder-1", 3, "busy"); err != nil {
		log.Fatal(err)
	}
	for _, a := range r.ByCapabilities([]string{"python"}) {
		fmt.Printf("%s: load %d of %d, healthy %v\n", a.ID, a.Load, a.Capacity, a.Healthy)
	}
	a, err := r.Get("coder-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("coder-1 status:", a.Status)
	// Output:
	// coder-1: load 3 of 4, healthy true
	// coder-2: load 0 of 2, healthy true
	// coder-1 status: busy
}
