package wal

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBatcherGroupsAndOrders(t *testing.T) {
	b := NewBatcher(BatcherOptions{MaxRecords: 10})
	var props []*Proposal
	for i := 0; i < 25; i++ {
		p := NewProposal(Record{Kind: 1, Body: []byte{byte(i)}})
		if err := b.Submit(p); err != nil {
			t.Fatal(err)
		}
		props = append(props, p)
	}
	var got []*Proposal
	var sizes []int
	for len(got) < 25 {
		frame, err := b.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(frame))
		got = append(got, frame...)
	}
	if len(sizes) != 3 || sizes[0] != 10 || sizes[2] != 5 {
		t.Fatalf("frame sizes %v, want [10 10 5]", sizes)
	}
	for i := range got {
		if got[i] != props[i] {
			t.Fatalf("proposal %d out of submission order", i)
		}
	}
}

func TestBatcherFrameBytes(t *testing.T) {
	b := NewBatcher(BatcherOptions{MaxFrameBytes: 100})
	for i := 0; i < 3; i++ {
		b.Submit(NewProposal(Record{Kind: 1, Body: make([]byte, 60)}))
	}
	f, _ := b.Next(nil)
	if len(f) != 1 {
		t.Fatalf("frame of %d records exceeds MaxFrameBytes", len(f))
	}
	// A single record larger than the cap still forms a frame.
	b2 := NewBatcher(BatcherOptions{MaxFrameBytes: 10})
	b2.Submit(NewProposal(Record{Kind: 1, Body: make([]byte, 60)}))
	if f, _ := b2.Next(nil); len(f) != 1 {
		t.Fatal("oversized record not framed alone")
	}
}

func TestBatcherCloseDrains(t *testing.T) {
	b := NewBatcher(BatcherOptions{})
	b.Submit(NewProposal(Record{Kind: 1}))
	b.Close()
	if err := b.Submit(NewProposal(Record{Kind: 1})); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	f, err := b.Next(nil)
	if err != nil || len(f) != 1 {
		t.Fatalf("pending proposal not drained after close: %d %v", len(f), err)
	}
	if _, err := b.Next(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after drain: %v", err)
	}
}

func TestBatcherLinger(t *testing.T) {
	b := NewBatcher(BatcherOptions{Linger: 20 * time.Millisecond, MaxRecords: 3})
	go func() {
		for i := 0; i < 3; i++ {
			b.Submit(NewProposal(Record{Kind: 1}))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	f, err := b.Next(nil)
	if err != nil || len(f) != 3 {
		t.Fatalf("linger gathered %d records (%v), want 3", len(f), err)
	}
}

func TestProposalWait(t *testing.T) {
	p := NewProposal(Record{Kind: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on cancelled ctx: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.Wait(context.Background()); err != nil || p.Result.N != 9 {
			t.Errorf("wait: %v %d", err, p.Result.N)
		}
	}()
	p.Finish(Result{N: 9})
	wg.Wait()
}
