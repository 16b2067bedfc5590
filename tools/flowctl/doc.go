// Command flowctl is flowdb's admin CLI: key-value commands, queues, agents,
// vectors, stats, backup and restore, consistency checks, a replicated node,
// and a demo of the whole engine.
//
//	flowctl --dir D kv get|set|del|scan ...
//	flowctl --dir D stats | check | backup --to B
//	flowctl --dir D restore --from B
//	flowctl --dir D txn --file OPS.json (one transaction; - for standard input)
//	flowctl demo [--dir D]
//	flowctl --dir D node start --id 1 --raft H:P --members 1=H:P,... [--admin H:P] [--peers 2=ADMIN,...]
//	flowctl --node ADMIN cluster status|add|remove|transfer
//	flowctl --node ADMIN kv|queue|agent|pool|sched|vec|txn|stats ... (run on the node)
//
// Contract:
//
//  1. Exit status: 0 success; 1 the operation failed (not found, lease lost,
//     damage found, I/O, interrupted); 2 a bad invocation or bad input
//     (unknown command, wrong arguments, bad flag values, input the library
//     refuses as invalid: see inputErrors); 3 outcome unknown (a write sent
//     to a node may or may not have been applied: db.ErrOutcomeUnknown).
//     exitHelp is the text --help and
//     the README print; TestExitCodes runs every command with bad input.
//  2. Every command prints JSON with --json, write commands included:
//     snake_case field names, enums as names, identifiers that may exceed
//     2^53 (task ids, lease tokens, vector ids) as strings, which every
//     command accepts back. TestJSONContract checks each command's output.
//  3. Backups and restores are written beside their destination and renamed
//     into place only when complete; SIGINT and SIGTERM stop a command
//     cleanly (vec import reports what it committed and can --resume).
//  4. A value, payload or vector argument may be "-" (standard input) or
//     "@FILE"; with --node the client reads it and sends its bytes.
//  5. Guard rails: read commands never create a store (a typo in --dir is
//     reported); a directory that holds other files is refused untouched;
//     demo refuses a non-empty --dir unless --force; commands that need a
//     store directory (check, backup, restore, demo) refuse --node; a
//     locked store names the process that holds it; each --node request is
//     bounded by --timeout.
//  6. Agent health is shown as of now (healthyNow): the CLI runs no
//     background loops, so it applies the registry's rule itself rather
//     than show the health recorded by the last expiry.
//
// Files: main.go (exit statuses, the root command), store.go (opening a
// store, printing output), exec.go (data commands on a node), input.go
// (value arguments), one file per command group, and node.go (node start,
// its admin endpoint, cluster commands).
package main
