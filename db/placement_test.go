package db

import (
	"fmt"
	"slices"
	"testing"

	"github.com/flowdb/flowdb/internal/keys"
)

func TestPlacement(t *testing.T) {
	one := Placement{DataShards: 1}
	if one.ShardFor("anything") != keys.FirstData {
		t.Fatal("single data shard")
	}
	p := Placement{DataShards: 8}
	seen := map[uint32]int{}
	for i := 0; i < 10000; i++ {
		name := string(rune('a'+i%26)) + string(rune(i))
		s := p.ShardFor(name)
		if s != p.ShardForBytes([]byte(name)) {
			t.Fatal("ShardFor and ShardForBytes disagree")
		}
		if s < keys.FirstData || s >= keys.FirstData+8 {
			t.Fatalf("shard %d out of range", s)
		}
		seen[s]++
	}
	for s, n := range seen {
		if n < 10000/8/2 {
			t.Fatalf("shard %d got only %d of 10000 names", s, n)
		}
	}
}

func TestPlacementData(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []uint32
	}{{0, []uint32{keys.FirstData}}, {1, []uint32{keys.FirstData}}, {3, []uint32{keys.FirstData, keys.FirstData + 1, keys.FirstData + 2}}} {
		if got := slices.Collect(Placement{DataShards: c.n}.Data()); !slices.Equal(got, c.want) {
			t.Errorf("DataShards %d: %v, want %v", c.n, got, c.want)
		}
	}
	for s := range (Placement{DataShards: 4}).Data() {
		if s != keys.FirstData {
			t.Fatalf("yielded %d after break", s)
		}
		break
	}
}

// Names that share a placement group ({group}) share a shard; the group is
// the text inside the first braces, and "{}" or unclosed braces place the
// whole name.
func TestPlacementGroups(t *testing.T) {
	p := Placement{DataShards: 16}
	if a, b, c := p.ShardFor("{agent-7}.tasks"), p.ShardFor("{agent-7}memory"), p.ShardForBytes([]byte("{agent-7}")); a != b || b != c {
		t.Fatalf("one group on shards %d, %d, %d", a, b, c)
	}
	if p.ShardFor("x{agent-7}y") != p.ShardFor("agent-7") {
		t.Fatal("the group is the text inside the braces")
	}
	spread := map[uint32]bool{}
	for i := range 64 {
		spread[p.ShardFor(fmt.Sprintf("{g%d}.tasks", i))] = true
	}
	if len(spread) < 8 {
		t.Fatalf("64 groups on %d of 16 shards", len(spread))
	}
	for _, n := range []string{"{}", "a{}b", "{open", "plain"} {
		if groupOf(n) != n || string(groupOf([]byte(n))) != n {
			t.Fatalf("%q placed by %q", n, groupOf(n))
		}
	}
	if groupOf("{a}{b}") != "a" {
		t.Fatal("first braces win")
	}
}
