// Package api holds flowdb's network API schema (flowdb/v1/flowdb.proto) and
// the Go code generated from it: package flowdbv1 (messages) and
// flowdbv1connect (Connect/gRPC handlers and clients). The generated code is
// checked in; regenerate it after changing the schema with
//
//	go generate ./api
//
// which compiles the schema with a Go-native protobuf compiler and runs the
// protoc-gen-go and protoc-gen-connect-go generators at the versions go.mod
// pins (see internal/protogen). No protoc or buf install is needed.
//
// The schema is wire format: a field's number and type never change and a
// removed field's number is never reused; see the rules at the top of the
// .proto file.
package api

//go:generate go run ./internal/protogen flowdb/v1/flowdb.proto
