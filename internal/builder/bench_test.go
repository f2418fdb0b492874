package builder

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkBuild measures the minimal example: a cold build (empty package cache, every
// package downloaded) and a warm one (cache filled), in the same run so that the two
// figures are comparable. Run with `make bench-build` (one iteration each).
func BenchmarkBuild(b *testing.B) {
	if err := checkTools(); err != nil {
		b.Fatal(err)
	}
	cold := b.TempDir()
	for _, phase := range []string{"cold", "warm"} {
		b.Run(phase, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r := loadRecipeB(b, "../../examples/minimal.yaml")
				start := time.Now()
				res, err := Build(context.Background(), Options{Recipe: r, OutDir: b.TempDir(), CacheDir: cold})
				if err != nil {
					b.Fatal(err)
				}
				d := time.Since(start)
				b.ReportMetric(d.Seconds(), "s/build")
				b.ReportMetric(float64(res.ISO.Size)/(1<<20), "MiB-iso")
				b.ReportMetric(float64(res.PeakMemoryBytes)/(1<<20), "MiB-peak")
				b.ReportMetric(float64(res.DownloadedBytes)/(1<<20), "MiB-downloaded")
				fmt.Printf("%s build: %.1fs, ISO %.1f MiB, peak memory %.0f MiB, downloaded %.1f MiB\n",
					phase, d.Seconds(), float64(res.ISO.Size)/(1<<20), float64(res.PeakMemoryBytes)/(1<<20), float64(res.DownloadedBytes)/(1<<20))
			}
		})
	}
}
