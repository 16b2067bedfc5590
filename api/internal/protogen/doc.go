// Command protogen regenerates the Go code of flowdb's protobuf schema
// without protoc or buf: it compiles the .proto files with
// github.com/bufbuild/protocompile (a Go-native compiler) and feeds the
// result to the two code generators as protoc would, through the plugin
// protocol (a CodeGeneratorRequest on stdin, a CodeGeneratorResponse on
// stdout). The generators run with `go run`, at the versions go.mod pins:
// google.golang.org/protobuf/cmd/protoc-gen-go and
// connectrpc.com/connect/cmd/protoc-gen-connect-go.
//
// Run it from the api directory (go generate ./api does):
//
//	go run ./internal/protogen flowdb/v1/flowdb.proto
package main
