// Package flowdbv1 holds the messages of flowdb's network API, version 1,
// generated from flowdb.proto by protoc-gen-go (see package api for how to
// regenerate). Do not edit the generated files; change the schema and
// regenerate. The schema's field numbers are wire format.
package flowdbv1
