package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrDiskFull: the sandbox's workspace ran out of its size limit.
var ErrDiskFull = errors.New("sandbox: workspace size limit reached")

// Workspace is a directory of bounded size in which a build writes everything. It is a
// filesystem of its own (an ext4 image, loop-mounted), so that a recipe that fills the
// disk fills only its workspace, never the host.
type Workspace struct {
	Dir   string // the mounted directory
	image string
	size  int64
}

// NewWorkspace creates a workspace of at most size bytes mounted at dir (created if needed).
// The backing image is sparse and lives next to dir; Close removes both.
func NewWorkspace(dir string, size int64) (*Workspace, error) {
	if size < 64<<20 {
		return nil, fmt.Errorf("workspace size %d is too small (minimum 64 MiB)", size)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	image := strings.TrimSuffix(dir, "/") + ".img"
	f, err := os.OpenFile(image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create workspace image: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(image)
		return nil, fmt.Errorf("size workspace image: %w", err)
	}
	f.Close()
	w := &Workspace{Dir: dir, image: image, size: size}
	// No journal and no reserved blocks: it is scratch space that lives for one build.
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "lazy_itable_init=1,nodiscard", image).CombinedOutput(); err != nil {
		os.Remove(image)
		return nil, fmt.Errorf("format workspace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("mount", "-o", "loop,nosuid,nodev", image, dir).CombinedOutput(); err != nil {
		os.Remove(image)
		return nil, fmt.Errorf("mount workspace (loop devices needed, as root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = os.Remove(filepath.Join(dir, "lost+found"))
	return w, nil
}

// Full reports whether the workspace has (nearly) no space left: used to explain a failed
// step as "disk full" rather than as the error the tool happened to print.
func (w *Workspace) Full() bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(w.Dir, &st); err != nil {
		return false
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return free < w.size/100+(1<<20)
}

// Size is the workspace's limit in bytes.
func (w *Workspace) Size() int64 { return w.size }

// Close unmounts the workspace and removes its image: everything in it is gone.
func (w *Workspace) Close() error {
	var errs []error
	if out, err := exec.Command("umount", w.Dir).CombinedOutput(); err != nil {
		// A lazy unmount still frees the image once the last user is gone.
		if out2, err2 := exec.Command("umount", "-l", w.Dir).CombinedOutput(); err2 != nil {
			errs = append(errs, fmt.Errorf("unmount workspace: %v: %s %s", err, out, out2))
		}
	}
	if err := os.Remove(w.image); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.Remove(w.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
