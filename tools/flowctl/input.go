package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// Value arguments: a key-value value, a task payload, a query vector.
//
//	-        standard input, to its end
//	@PATH    the file's contents
//	hex:...  the bytes written in hex
//	else     the argument itself
//
// A value that starts with '@' or is "-" itself is written in hex. With
// --node the client reads stdin and files and sends the bytes (a node has
// neither the client's standard input nor, in general, its files).

// valueArgs annotates a command whose positional arguments at the given
// indexes (comma-separated) are value arguments.
const valueArgs = "flowctl/value-args"

// maxValueArg bounds what one value argument reads: the largest value the
// engine takes (db.MaxValueSize) plus room to report it as too large.
const maxValueArg = 64 << 20

// readValue returns the bytes value argument s stands for.
func (a *app) readValue(s string) ([]byte, error) {
	var r io.Reader
	switch {
	case s == "-":
		if a.in == nil {
			return nil, usageError{fmt.Errorf("value - (standard input): no standard input here")}
		}
		r = a.in
	case strings.HasPrefix(s, "@"):
		f, err := os.Open(s[1:])
		if err != nil {
			return nil, usageError{fmt.Errorf("value %s: %w", s, err)}
		}
		defer f.Close()
		r = f
	default:
		return parseBytes(s)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxValueArg+1))
	if err != nil {
		return nil, fmt.Errorf("value %s: %w", s, err)
	}
	if len(b) > maxValueArg {
		return nil, usageError{fmt.Errorf("value %s: over %d bytes", s, maxValueArg)}
	}
	return b, nil
}

// resolveValues replaces the value arguments of cmd in args that name
// standard input or a file by the bytes they stand for (as text, or hex:
// when they are not text), so that a node receives the value itself.
func (a *app) resolveValues(cmd *cobra.Command, args []string) ([]string, error) {
	spec := cmd.Annotations[valueArgs]
	if spec == "" {
		return args, nil
	}
	for _, f := range strings.Split(spec, ",") {
		i, _ := strconv.Atoi(f)
		if i >= len(args) || (args[i] != "-" && !strings.HasPrefix(args[i], "@")) {
			continue
		}
		b, err := a.readValue(args[i])
		if err != nil {
			return nil, err
		}
		s := string(b)
		if !utf8.Valid(b) || s == "-" || strings.HasPrefix(s, "@") || strings.HasPrefix(s, "hex:") {
			s = "hex:" + hex.EncodeToString(b)
		}
		args[i] = s
	}
	return args, nil
}
