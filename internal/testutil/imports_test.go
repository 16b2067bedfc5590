package testutil

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTestsImport: no file but a _test.go file (or a helper package
// under testutil) imports testutil or a package under it, so no test helper
// is ever compiled into the library or a program.
func TestOnlyTestsImport(t *testing.T) {
	const self = "github.com/flowdb/flowdb/internal/testutil"
	root := filepath.Join("..", "..")
	n := 0
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if name := e.Name(); name == "testdata" || (strings.HasPrefix(name, ".") && p != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		if under(filepath.Join(root, "internal", "testutil"), p) {
			return nil // testutil and the helper packages under it
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		n++
		for _, im := range f.Imports {
			if path, _ := strconv.Unquote(im.Path.Value); path == self || strings.HasPrefix(path, self+"/") {
				t.Errorf("%s imports %s outside a _test.go file", p, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("only %d Go files found under %s", n, root)
	}
}

// under reports whether file p lies in directory dir or below it.
func under(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && !strings.HasPrefix(rel, "..")
}
