// Command pointread measures what a Pebble point read of a stored vector
// costs, the unit of a collection's re-ranking: 60,000 values of 3,136
// bytes (a 784-dim float32 vector, Fashion-MNIST's size) under 8-byte ids in
// one key range, as flowdb configures Pebble (bloom filters on every
// level), read by uniformly random id. It reports µs per Get (the median of
// -rounds rounds of -reads reads each) for a block cache that holds them all
// and one that does not, compacted into one level or as flushed, and for
// each -index block size (Pebble's default is the data block size, which
// gives tables of this size two-level indexes) and -compression of the
// blocks.
//
//	cd bench && go run ./pointread [-reads 300000] [-rounds 3] [-index 4096,262144] [-compression snappy,minlz,none]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
)

const (
	n       = 60000
	valSize = 3136
)

func key(i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("\x00\x00\x00\x02\x41\x02fm"), i)
}

func measure(cacheMB int64, compact bool, indexBlock int, comp *block.CompressionProfile, reads, rounds int) float64 {
	dir, err := os.MkdirTemp("", "pointread-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	po := db.PebbleOptions(cacheMB << 20)
	defer po.Cache.Unref()
	// Memtables as flowdb's default cache gives them, whatever the cache
	// size measured.
	po.MemTableSize = 32 << 20
	po.Logger = quiet{}
	for i := range po.Levels {
		po.Levels[i].IndexBlockSize = indexBlock
		po.Levels[i].Compression = func() *block.CompressionProfile { return comp }
	}
	p, err := pebble.Open(dir, po)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valSize)
	for i := uint64(0); i < n; i++ {
		// Half the bytes zero, like Fashion-MNIST's background pixels (the
		// blocks compress, so a block-cache miss pays a decompression).
		for j := range val {
			val[j] = 0
			if rng.IntN(2) == 0 {
				val[j] = byte(rng.IntN(256))
			}
		}
		if err := p.Set(key(i), val, pebble.NoSync); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		log.Fatal(err)
	}
	if compact {
		if err := p.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
			log.Fatal(err)
		}
	}
	for range reads / 2 { // warm the block cache
		v, cl, err := p.Get(key(uint64(rng.IntN(n))))
		if err != nil || len(v) != valSize {
			log.Fatal(err)
		}
		cl.Close()
	}
	var us []float64
	for range rounds {
		t := time.Now()
		for range reads {
			v, cl, err := p.Get(key(uint64(rng.IntN(n))))
			if err != nil || len(v) != valSize {
				log.Fatal(err)
			}
			cl.Close()
		}
		us = append(us, float64(time.Since(t).Nanoseconds())/1e3/float64(reads))
	}
	return stats.Median(us)
}

var profiles = map[string]*block.CompressionProfile{
	"snappy": block.SnappyCompression,
	"minlz":  block.MinLZCompression,
	"none":   block.NoCompression,
}

type quiet struct{}

func (quiet) Infof(string, ...any)      {}
func (quiet) Errorf(f string, a ...any) { log.Printf(f, a...) }
func (quiet) Fatalf(f string, a ...any) { log.Fatalf(f, a...) }

func main() {
	reads := flag.Int("reads", 300000, "reads per round")
	rounds := flag.Int("rounds", 3, "rounds (median reported)")
	indexBlocks := flag.String("index", "4096,262144", "index block sizes to compare (Pebble's default is the block size, 4096)")
	comps := flag.String("compression", "snappy", "block compressions to compare: snappy (Pebble's default), minlz (Pebble's Fastest on amd64), none")
	flag.Parse()
	fmt.Printf("machine: %d CPUs, %s; %d values of %d bytes, random point reads\n", runtime.NumCPU(), runtime.Version(), n, valSize)
	fmt.Printf("%-12s %-12s %-12s %-12s %10s\n", "block cache", "LSM", "index block", "compression", "µs/Get")
	for _, c := range []struct {
		mb      int64
		compact bool
	}{{512, true}, {512, false}, {128, true}, {64, true}} {
		lsm := "as flushed"
		if c.compact {
			lsm = "compacted"
		}
		for _, f := range strings.Split(*indexBlocks, ",") {
			ib, err := strconv.Atoi(f)
			if err != nil {
				log.Fatalf("-index: %v", err)
			}
			for _, cn := range strings.Split(*comps, ",") {
				comp, ok := profiles[cn]
				if !ok {
					log.Fatalf("-compression: unknown %q", cn)
				}
				fmt.Printf("%-12s %-12s %-12d %-12s %10.2f\n", fmt.Sprintf("%d MiB", c.mb), lsm, ib, cn, measure(c.mb, c.compact, ib, comp, *reads, *rounds))
			}
		}
	}
}
