package raftsm

import (
	"errors"
	"testing"
	"time"
)

// TestConfigDefaults: the documented Raft timing defaults, and configs
// that Dragonboat would refuse are refused first with ErrConfig.
func TestConfigDefaults(t *testing.T) {
	base := Config{Dir: "/n", ReplicaID: 1, RaftAddress: "127.0.0.1:7000"}
	o, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.RTTMillisecond != 20 || o.ElectionRTT != 25 || o.HeartbeatRTT != 5 {
		t.Fatalf("timing defaults %d ms, election %d, heartbeat %d RTTs; want 20, 25, 5", o.RTTMillisecond, o.ElectionRTT, o.HeartbeatRTT)
	}
	for name, c := range map[string]Config{
		"no dir":                     {ReplicaID: 1, RaftAddress: "127.0.0.1:7000"},
		"election not above 2 beats": {Dir: "/n", ReplicaID: 1, RaftAddress: "127.0.0.1:7000", ElectionRTT: 10},
		"election below a heartbeat": {Dir: "/n", ReplicaID: 1, RaftAddress: "127.0.0.1:7000", ElectionRTT: 3, HeartbeatRTT: 4},
		"join with members":          {Dir: "/n", ReplicaID: 1, RaftAddress: "127.0.0.1:7000", Join: true, Members: map[uint64]string{1: "a:1"}},
		"attempt under four ticks":   {Dir: "/n", ReplicaID: 1, RaftAddress: "127.0.0.1:7000", AttemptTimeout: 50 * time.Millisecond},
	} {
		if _, err := c.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
	if _, err := (&Config{Dir: "/n", ReplicaID: 1, RaftAddress: "10.1.2.3:7000"}).withDefaults(); !errors.Is(err, ErrInsecure) {
		t.Errorf("non-loopback without TLS: got %v, want ErrInsecure", err)
	}
	ok := base
	ok.ElectionRTT, ok.HeartbeatRTT = 11, 5
	if _, err := ok.withDefaults(); err != nil {
		t.Errorf("election 11, heartbeat 5: %v", err)
	}
}
