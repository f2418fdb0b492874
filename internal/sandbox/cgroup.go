package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup is the set of control groups one sandbox run lives in. Both layouts are handled:
// cgroup v1 (one hierarchy per controller, as on machines without systemd as PID 1) and the
// unified v2 hierarchy. Groups are created below the caller's own group in each hierarchy,
// so that Debate nests inside whatever container manager started it.
type cgroup struct {
	v2   bool
	dirs map[string]string // controller ("memory", "pids", "cpu", "freezer" or "" for v2) → dir
}

const cgroupRoot = "/sys/fs/cgroup"

// newCgroup creates the groups for one run and applies the limits.
func newCgroup(name string, l Limits) (*cgroup, error) {
	self, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{dirs: map[string]string{}}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		cg.v2 = true
		dir := filepath.Join(cgroupRoot, self[""], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		cg.dirs[""] = dir
	} else {
		for _, c := range []string{"memory", "pids", "cpu", "freezer"} {
			base := filepath.Join(cgroupRoot, c)
			if _, err := os.Stat(base); err != nil {
				cg.remove()
				return nil, fmt.Errorf("cgroup controller %q is not mounted at %s: %w", c, base, ErrUnsupported)
			}
			dir := filepath.Join(base, self[c], name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				cg.remove()
				return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			cg.dirs[c] = dir
		}
	}
	if err := cg.apply(l); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

func (cg *cgroup) file(ctrl, name string) string {
	if cg.v2 {
		return filepath.Join(cg.dirs[""], name)
	}
	return filepath.Join(cg.dirs[ctrl], name)
}

func (cg *cgroup) apply(l Limits) error {
	const period = 100000
	write := func(ctrl, name, val string) error {
		if err := os.WriteFile(cg.file(ctrl, name), []byte(val), 0o644); err != nil {
			return fmt.Errorf("set cgroup %s=%s: %w", name, val, err)
		}
		return nil
	}
	if cg.v2 {
		if l.MemoryBytes > 0 {
			if err := write("", "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
				return err
			}
			_ = write("", "memory.swap.max", "0")
		}
		if l.Pids > 0 {
			if err := write("", "pids.max", strconv.Itoa(l.Pids)); err != nil {
				return err
			}
		}
		if l.CPUs > 0 {
			if err := write("", "cpu.max", fmt.Sprintf("%d %d", int64(l.CPUs*period), period)); err != nil {
				return err
			}
		}
		return nil
	}
	if l.MemoryBytes > 0 {
		if err := write("memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return err
		}
		// Without swap accounting this file is absent; the plain limit still holds.
		_ = write("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10))
	}
	if l.Pids > 0 {
		if err := write("pids", "pids.max", strconv.Itoa(l.Pids)); err != nil {
			return err
		}
	}
	if l.CPUs > 0 {
		if err := write("cpu", "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return err
		}
		if err := write("cpu", "cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPUs*period), 10)); err != nil {
			return err
		}
	}
	return nil
}

// enter moves a process into every group of the set.
func (cg *cgroup) enter(pid int) error {
	for ctrl := range cg.dirs {
		if err := os.WriteFile(cg.file(ctrl, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move process %d into cgroup: %w", pid, err)
		}
	}
	return nil
}

// procs lists the processes still in the group.
func (cg *cgroup) procs() []int {
	ctrl := "pids"
	if cg.v2 {
		ctrl = ""
	}
	data, err := os.ReadFile(cg.file(ctrl, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// killAll kills every process in the group and waits until it is empty. The group is frozen
// first so that a fork bomb cannot outrun the killing.
func (cg *cgroup) killAll() {
	if cg.v2 {
		if err := os.WriteFile(cg.file("", "cgroup.kill"), []byte("1"), 0o644); err == nil {
			cg.waitEmpty(5 * time.Second)
			return
		}
	} else {
		_ = os.WriteFile(cg.file("freezer", "freezer.state"), []byte("FROZEN"), 0o644)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids := cg.procs()
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if !cg.v2 {
			// Frozen tasks receive SIGKILL only once thawed.
			_ = os.WriteFile(cg.file("freezer", "freezer.state"), []byte("THAWED"), 0o644)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (cg *cgroup) waitEmpty(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && len(cg.procs()) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

// stats reads what the limits did during the run.
func (cg *cgroup) stats() Stats {
	var s Stats
	readInt := func(ctrl, name string) int64 {
		data, err := os.ReadFile(cg.file(ctrl, name))
		if err != nil {
			return 0
		}
		v, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return v
	}
	keyed := func(ctrl, name, key string) int64 {
		f, err := os.Open(cg.file(ctrl, name))
		if err != nil {
			return 0
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), " ")
			if ok && k == key {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
		return 0
	}
	if cg.v2 {
		s.PeakMemoryBytes = readInt("", "memory.peak")
		s.OOMKills = keyed("", "memory.events", "oom_kill")
		s.PidsLimitHits = keyed("", "pids.events", "max")
		return s
	}
	s.PeakMemoryBytes = readInt("memory", "memory.max_usage_in_bytes")
	s.OOMKills = keyed("memory", "memory.oom_control", "oom_kill")
	if s.OOMKills == 0 && readInt("memory", "memory.failcnt") > 0 && keyed("memory", "memory.oom_control", "under_oom") > 0 {
		s.OOMKills = 1
	}
	s.PidsLimitHits = keyed("pids", "pids.events", "max")
	return s
}

// remove deletes the (empty) groups.
func (cg *cgroup) remove() {
	for _, d := range cg.dirs {
		for i := 0; i < 50; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// selfCgroups maps each controller (and "" for v2) to this process's group path.
func selfCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}
