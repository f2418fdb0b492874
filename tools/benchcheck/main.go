// Command benchcheck measures `debate check` at the package level (not a test): the time
// and memory to load the full Debian bookworm index from the verified cache, then the
// latency of checking a typical recipe (one platform, a few bundles, twenty named
// packages) many times. make bench-check runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"debate/internal/catalog"
	"debate/internal/debian"
	"debate/internal/recipe"
	"debate/internal/resolve"
)

func main() {
	cache := flag.String("index-cache", "", "index cache `directory` (default: the user cache)")
	n := flag.Int("n", 200, "checks to time")
	flag.Parse()
	if *cache == "" {
		d, _ := os.UserCacheDir()
		*cache = d + "/debate/index"
	}
	ctx := context.Background()
	a := &debian.Archive{Suites: debian.DefaultSuites("", "", "bookworm"), CacheDir: *cache}
	// Warm the cache (a download the first time), then time a load from it.
	if _, err := a.Load(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	l, err := (&debian.Archive{Suites: a.Suites, CacheDir: *cache, MaxAge: time.Hour}).Load(ctx)
	load := time.Since(t0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t1 := time.Now()
	c := resolve.NewChecker(cat, l.Index, "Debian bookworm (amd64, main)")
	prep := time.Since(t1)
	r := &recipe.Recipe{APIVersion: recipe.APIVersion, Name: "typical",
		Base:   recipe.Base{Distribution: "debian", Release: "bookworm"},
		Layers: []string{"debian-bookworm", "xfce", "theme-arc-dark", "browser", "office", "developer-tools", "locale-en-us", "admin-user", "ssh-server", "firewall-nftables"},
		Packages: []string{"vim", "git", "curl", "htop", "tmux", "rsync", "jq", "tree", "ncdu", "wget",
			"openssh-client", "gnupg", "zip", "unzip", "less", "man-db", "python3", "bash-completion", "ca-certificates", "iproute2"}}
	var d []time.Duration
	for i := 0; i < *n; i++ {
		s := time.Now()
		rep, err := c.Check(r, nil)
		d = append(d, time.Since(s))
		if err != nil || !rep.Sustained {
			fmt.Fprintf(os.Stderr, "typical recipe not sustained: %v\n%s", err, rep)
			os.Exit(1)
		}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	conflict := *r
	conflict.Layers = []string{"gnome", "xfce", "browser"}
	s := time.Now()
	rep, _ := c.Check(&conflict, nil)
	withObj := time.Since(s)

	fmt.Printf("index: %d package versions (%d names) from %d suites\n", l.Index.Len(), l.Index.NameCount(), len(l.Pins))
	fmt.Printf("index load from the verified cache: %v (target < 2s); heap held by the index: %.0f MiB\n", load.Round(time.Millisecond), float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20))
	fmt.Printf("checker setup (minbase, layer SAT): %v\n", prep.Round(time.Millisecond))
	fmt.Printf("typical check x%d: p50 %v  p95 %v  p99 %v  max %v (target p95 < 50ms)\n", *n, q(0.5).Round(100*time.Microsecond), q(0.95).Round(100*time.Microsecond), q(0.99).Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond))
	fmt.Printf("check with objections (gnome+xfce, %d objections, every resolution verified): %v\n", len(rep.Objections), withObj.Round(time.Millisecond))
	if q(0.95) > 50*time.Millisecond || load > 2*time.Second {
		fmt.Println("TARGET MISSED")
		os.Exit(1)
	}
}
