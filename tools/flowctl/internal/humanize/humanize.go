// Package humanize formats quantities for people to read.
package humanize

import "fmt"

// IBytes formats n bytes with binary (IEC) units and one decimal:
// "512 B", "1.5 KiB", "3.0 GiB".
func IBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Latency formats a latency given in microseconds in the unit that keeps
// it short, with up to three significant digits: "850 µs", "12.3 ms",
// "1.2 s".
func Latency(us float64) string {
	switch {
	case us < 999.5:
		return fmt.Sprintf("%.3g µs", us)
	case us < 999.5e3:
		return fmt.Sprintf("%.3g ms", us/1e3)
	}
	return fmt.Sprintf("%.3g s", us/1e6)
}
