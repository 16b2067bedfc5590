package db_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// TestLockAcrossProcesses opens a store, then has a second process (this test
// binary, re-executed) open the same directory: it must get ErrLocked.
func TestLockAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("FLOWDB_LOCK_CHILD"); dir != "" {
		_, err := db.Open(dir, &db.Options{Logger: testutil.Quiet()})
		fmt.Printf("child-open-error: %v\n", err)
		return
	}
	dir := t.TempDir()
	d := testutil.Open(t, dir, &db.Options{Logger: testutil.Quiet()})
	defer d.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLockAcrossProcesses$")
	cmd.Env = append(os.Environ(), "FLOWDB_LOCK_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "child-open-error: "+db.ErrLocked.Error()) {
		t.Fatalf("second process did not get ErrLocked:\n%s", out)
	}
}
