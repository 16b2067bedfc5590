// Package auth authenticates and authorizes callers of flowdb's server:
// bearer tokens read from a file where they are stored hashed, each with
// scopes that say which namespaces, queues, agents and collections it may
// read, write or administer.
//
// # Tokens file
//
// A JSON file (0600 advised) that the server re-reads when it changes:
//
//	{"tokens": [
//	  {"name": "worker-1",
//	   "hash": "sha256:9f86d08...",        // SHA-256 of the secret, hex
//	   "scopes": ["queue:jobs:write", "agent:*:write", "kv:cache-*:read"],
//	   "expires": "2027-01-01T00:00:00Z"}  // optional
//	]}
//
// Secrets are 32 random bytes (NewSecret), so a plain SHA-256 is enough to
// store them: nothing about a secret can be guessed from its hash faster
// than by trying 2^256 secrets. The file never holds a secret, and no
// secret or hash is ever logged (Token.String prints the name only).
// Removing an entry revokes the token; a token past its expiry is refused.
//
// # Scopes
//
// A scope is RESOURCE:NAME:LEVEL.
//
//   - RESOURCE is kv (a namespace), queue, agent (an agent id or pool
//     name), vec (a collection), server (stats, metrics, cluster
//     administration) or * (all of them).
//   - NAME is an exact name, * (every name) or a prefix followed by *
//     (cache-*).
//   - LEVEL is read, write or admin; write includes read and admin
//     includes write. Reading is looking (get, scan, stats, search);
//     writing changes data (set, enqueue, lease, ack, upsert, register);
//     administering creates, drops, replays, purges and runs cluster
//     commands.
//
// *:*:admin is a token that may do everything.
//
// # Answers
//
// No token or an unknown, expired or revoked one: ErrUnauthenticated (the
// server answers 401). A known token outside its scopes: ErrForbidden
// (403). Either way the call changes nothing: authorization happens
// before the call reaches the store.
package auth
