package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

var plugins = []string{
	"google.golang.org/protobuf/cmd/protoc-gen-go",
	"connectrpc.com/connect/cmd/protoc-gen-connect-go",
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run(files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("usage: protogen FILE.proto [FILE.proto]")
	}
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"."}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		return err
	}
	// Every file the request names, dependencies first.
	var all []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	for _, f := range compiled {
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			dep := imports.Get(i).FileDescriptor
			if !seen[dep.Path()] {
				seen[dep.Path()] = true
				all = append(all, protodesc.ToFileDescriptorProto(dep))
			}
		}
		if !seen[f.Path()] {
			seen[f.Path()] = true
			all = append(all, protodesc.ToFileDescriptorProto(f))
		}
	}
	for _, plugin := range plugins {
		req := &pluginpb.CodeGeneratorRequest{
			FileToGenerate: files,
			Parameter:      proto.String("paths=source_relative"),
			ProtoFile:      all,
		}
		in, err := proto.Marshal(req)
		if err != nil {
			return err
		}
		var out, stderr bytes.Buffer
		cmd := exec.Command("go", "run", plugin)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v: %s", plugin, err, stderr.Bytes())
		}
		var resp pluginpb.CodeGeneratorResponse
		if err := proto.Unmarshal(out.Bytes(), &resp); err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("%s: %s", plugin, resp.GetError())
		}
		for _, f := range resp.File {
			name := filepath.FromSlash(f.GetName())
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(name, []byte(f.GetContent()), 0o644); err != nil {
				return err
			}
			fmt.Println("wrote", name)
		}
	}
	return nil
}
