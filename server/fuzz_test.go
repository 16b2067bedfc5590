package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flowdb/flowdb/api/flowdb/v1/flowdbv1connect"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
)

// unary are the unary procedures the fuzzer calls.
var unary = []string{
	flowdbv1connect.KVServiceGetProcedure, flowdbv1connect.KVServiceSetProcedure, flowdbv1connect.KVServiceDeleteProcedure,
	flowdbv1connect.KVServiceScanProcedure, flowdbv1connect.KVServiceBatchProcedure,
	flowdbv1connect.QueueServiceCreateProcedure, flowdbv1connect.QueueServiceListProcedure, flowdbv1connect.QueueServiceEnqueueProcedure,
	flowdbv1connect.QueueServiceEnqueueBatchProcedure, flowdbv1connect.QueueServiceLeaseProcedure, flowdbv1connect.QueueServiceExtendProcedure,
	flowdbv1connect.QueueServiceAckProcedure, flowdbv1connect.QueueServiceAckBatchProcedure, flowdbv1connect.QueueServiceNackProcedure,
	flowdbv1connect.QueueServiceCancelProcedure, flowdbv1connect.QueueServiceGetTaskProcedure, flowdbv1connect.QueueServiceStatsProcedure,
	flowdbv1connect.QueueServiceDeadProcedure, flowdbv1connect.QueueServiceReplayProcedure, flowdbv1connect.QueueServicePurgeProcedure,
	flowdbv1connect.RegistryServiceRegisterProcedure, flowdbv1connect.RegistryServiceHeartbeatProcedure,
	flowdbv1connect.RegistryServiceDeregisterProcedure, flowdbv1connect.RegistryServiceGetAgentProcedure,
	flowdbv1connect.RegistryServiceListAgentsProcedure, flowdbv1connect.RegistryServiceDefinePoolProcedure,
	flowdbv1connect.RegistryServiceDeletePoolProcedure, flowdbv1connect.RegistryServiceListPoolsProcedure,
	flowdbv1connect.VectorServiceCreateProcedure, flowdbv1connect.VectorServiceListProcedure, flowdbv1connect.VectorServiceDropProcedure,
	flowdbv1connect.VectorServiceUpsertProcedure, flowdbv1connect.VectorServiceSearchProcedure, flowdbv1connect.VectorServiceGetProcedure,
	flowdbv1connect.VectorServiceDeleteProcedure, flowdbv1connect.VectorServiceStatsProcedure,
	flowdbv1connect.ServerServiceHealthProcedure, flowdbv1connect.ServerServiceStatsProcedure,
	flowdbv1connect.TxnServiceCommitProcedure,
}

// FuzzRequest sends arbitrary bodies, as binary protobuf or JSON, to every
// unary procedure of a server over an in-memory store holding a queue
// and a collection. The server must never panic and never answer 500
// (Internal): every rejected input gets a typed error whose code says
// what was wrong, and a decoding failure is invalid_argument.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		proc int
		json bool
		body string
	}{
		{1, true, `{"namespace":"n","key":"aw==","value":"dg==","ttlMs":"1000"}`},
		{4, true, `{"ops":[{"op":"OP_SET","namespace":"n","key":"aw=="},{"op":"OP_DELETE_PREFIX","namespace":"n"}]}`},
		{3, true, `{"namespace":"n","pageToken":"aw==","reverse":true,"limit":2}`},
		{7, true, `{"queue":"q","task":{"payload":"eA==","priority":1000}}`},
		{7, true, `{"queue":"q","task":{"payload":"eA==","priority":3,"notBeforeUnixNano":"-1"}}`},
		{9, true, `{"queue":"q","agent":"a","n":-5,"leaseMs":"-1","waitMs":"1"}`},
		{12, true, `{"queue":"q","items":[{"id":"1","token":"2"},{}]}`},
		{5, true, `{"config":{"name":"q2","hotCapacity":"-7","leaseMs":"9223372036854775807"}}`},
		{20, true, `{"agent":{"id":"a","capacity":-1,"heartbeatIntervalMs":"-5"}}`},
		{31, true, `{"collection":"c","vectors":[{"id":"1","values":[1,2]},{"id":"2","values":["NaN",1,1]}]}`},
		{32, true, `{"collection":"c","query":[0,0,0],"k":-3,"ef":-1}`},
		{32, false, "\x0a\x01c\x12\x0c\x00\x00\xc0\x7f\x00\x00\x80\x3f\x00\x00\x80\x3f\x18\x05"},
		{0, false, "\x0a\xff\xff"},
		{38, true, `{"idempotencyKey":"k","ops":[{"require":{"mode":"MODE_ABSENT","namespace":"n","key":"aw=="}},{"set":{"namespace":"n","key":"aw==","value":"dg==","ttlMs":"5"}},{"enqueue":{"queue":"q","task":{"payload":"eA=="}}}]}`},
		{38, true, `{"ops":[{"ack":{"queue":"q","id":"1","token":"2"}},{"upsert":{"collection":"c","vectors":[{"id":"1","values":[1,"NaN",1]}]}},{}]}`},
		{38, true, `{"ops":[{"extend":{"queue":"q","id":"1","leaseMs":"9223372036854775807"}},{"register":{}},{"require":{"mode":7}}]}`},
		{38, true, `{"ops":[{"deleteVectors":{"collection":"c","ids":["1"]}},{"heartbeat":{"id":"a"}},{"enqueueBatch":{"queue":"q","tasks":[{},null]}}]}`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.proc), s.json, []byte(s.body))
	}
	d := testutil.OpenMem(f, nil)
	q, err := queue.Attach(d, &queue.Options{TickInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	r, err := registry.Attach(d, &registry.Options{CheckInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	v, err := hnsw.Attach(d)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close(); q.Close() })
	ctx := context.Background()
	if err := q.Create(ctx, queue.Config{Name: "q"}); err != nil {
		f.Fatal(err)
	}
	if err := v.Create(ctx, hnsw.Config{Name: "c", Dim: 3}); err != nil {
		f.Fatal(err)
	}
	s, err := server.New(server.Options{DB: d, Queues: q, Registry: r, Vectors: v, Logger: testutil.Quiet(), MaxRequestBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, proc uint8, asJSON bool, body []byte) {
		p := unary[int(proc)%len(unary)]
		ct := "application/proto"
		if asJSON {
			ct = "application/json"
		}
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1"+p, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Connect-Timeout-Ms", "200")
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(w, req) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s %q: no answer in 10 s", p, ct, body)
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", p, ct, body, w.Code, w.Body.Bytes())
		}
	})
}
