package db

import (
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// privateFS is the OS file system with owner-only permissions: the files
// it creates are 0600 and its directories 0700, whatever the process's
// umask allows. Open wraps vfs.Default in it; other file systems (tests'
// in-memory ones, a caller's) are used as given.
type privateFS struct{ vfs.FS }

func (p privateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, c)
	if err == nil {
		err = os.Chmod(name, 0o600)
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, err
}

func (p privateFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := p.FS.OpenReadWrite(name, c, opts...)
	if err == nil {
		if err = os.Chmod(name, 0o600); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, err
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error { return p.FS.MkdirAll(dir, 0o700) }

func (p privateFS) Lock(name string) (io.Closer, error) {
	l, err := p.FS.Lock(name)
	if err == nil {
		if err = os.Chmod(name, 0o600); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, err
}
