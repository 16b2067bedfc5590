// Package flowdbv1connect holds the Connect handlers and clients of flowdb's
// network API, version 1, generated from flowdb.proto by
// protoc-gen-connect-go (see package api for how to regenerate). The server
// (package server) implements the handler interfaces; package client wraps
// the clients.
package flowdbv1connect
