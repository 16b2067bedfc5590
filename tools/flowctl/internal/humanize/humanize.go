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
