//go:build unix

package main

import "syscall"

// privateFiles makes every file the process creates from now on private
// to its user (umask 077: files 0600, directories 0700), Dragonboat's
// included, which would otherwise be 0644 and 0750. node start calls it:
// a node process creates nothing meant for others.
func privateFiles() { syscall.Umask(0o077) }
