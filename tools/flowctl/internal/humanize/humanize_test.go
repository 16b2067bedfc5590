package humanize

import "testing"

func TestIBytes(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{3 << 30, "3.0 GiB"}, {1<<64 - 1, "16.0 EiB"},
	} {
		if got := IBytes(c.n); got != c.want {
			t.Errorf("IBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestLatency(t *testing.T) {
	for _, c := range []struct {
		us   float64
		want string
	}{
		{0.5, "0.5 µs"}, {850, "850 µs"}, {999.4, "999 µs"}, {999.6, "1 ms"}, {1200, "1.2 ms"},
		{12345, "12.3 ms"}, {999_600, "1 s"}, {2_500_000, "2.5 s"},
	} {
		if got := Latency(c.us); got != c.want {
			t.Errorf("Latency(%v) = %q, want %q", c.us, got, c.want)
		}
	}
}
