package keys

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

func TestInt64OrderPreserving(t *testing.T) {
	vals := []int64{math.MinInt64, -1 << 40, -2, -1, 0, 1, 2, 1 << 40, math.MaxInt64}
	for i := 1; i < len(vals); i++ {
		a, b := AppendInt64(nil, vals[i-1]), AppendInt64(nil, vals[i])
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("%d encodes >= %d", vals[i-1], vals[i])
		}
		if Int64(b) != vals[i] {
			t.Fatalf("round trip of %d gave %d", vals[i], Int64(b))
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	cases := []struct{ in, want []byte }{
		{[]byte{1, 2, 3}, []byte{1, 2, 4}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{}, nil},
	}
	for _, c := range cases {
		if got := PrefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Fatalf("PrefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}

// TestTablesAreContiguous checks that one shard's tables sort together and in
// tag order, so a shard is one key range and a table a sub-range of it.
func TestTablesAreContiguous(t *testing.T) {
	var ks [][]byte
	for _, shard := range []uint32{0, 1, 2, 300} {
		for _, table := range []byte{TableMeta, TableLog, TableKV, TableKVTTL} {
			ks = append(ks, append(Prefix(shard, table), 0xff, 0xff))
			ks = append(ks, Prefix(shard, table))
		}
	}
	sorted := slices.Clone(ks)
	slices.SortFunc(sorted, bytes.Compare)
	for _, k := range ks {
		shard, table, _, ok := Split(k)
		if !ok {
			t.Fatal("split failed")
		}
		lo, hi := ShardRange(shard)
		tlo, thi := TableRange(shard, table)
		if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 || bytes.Compare(k, tlo) < 0 || bytes.Compare(k, thi) >= 0 {
			t.Fatalf("key %x outside its shard/table range", k)
		}
	}
}
