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
	lock  *os.File // held while the workspace is in use; see SweepWorkspaces
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
	base := strings.TrimSuffix(dir, "/")
	lock, err := os.OpenFile(base+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create workspace lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock workspace: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(base + ".lock")
			lock.Close()
		}
	}()
	image := base + ".img"
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
	w := &Workspace{Dir: dir, image: image, size: size, lock: lock}
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
	ok = true
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
	if w.lock != nil {
		os.Remove(w.lock.Name())
		w.lock.Close()
	}
	return errors.Join(errs...)
}

// SweepWorkspaces removes the workspaces under parent whose owner died (a killed worker
// or build): their lock is no longer held. It returns how many it removed.
func SweepWorkspaces(parent string) (int, error) {
	locks, err := filepath.Glob(filepath.Join(parent, "*.lock"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range locks {
		f, err := os.OpenFile(l, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // alive: its owner holds the lock
			continue
		}
		w := &Workspace{Dir: strings.TrimSuffix(l, ".lock"), image: strings.TrimSuffix(l, ".lock") + ".img", lock: f}
		if _, err := os.Stat(w.Dir); err == nil {
			_ = exec.Command("umount", w.Dir).Run()
		}
		_ = exec.Command("umount", "-l", w.Dir).Run()
		os.Remove(w.image)
		os.RemoveAll(w.Dir)
		os.Remove(l)
		f.Close()
		n++
	}
	return n, nil
}
