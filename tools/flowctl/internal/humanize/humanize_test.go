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
