package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Verify builds the recipe twice, in separate workspaces and output directories, and
// publishes the first build into o.OutDir only if both ISOs are bit-identical. When they
// differ, the error names the first differing artifact. The package cache is shared, so
// the second build downloads nothing.
func Verify(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, failure("", err, nil)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, failure("", fmt.Errorf("create output directory: %w", err), nil)
	}
	var results [2]*Result
	var manifests [2]*Manifest
	for i := range results {
		dir, err := os.MkdirTemp(o.OutDir, fmt.Sprintf(".debate-verify-%d-", i+1))
		if err != nil {
			return nil, failure("", err, nil)
		}
		defer os.RemoveAll(dir)
		oi := o
		oi.OutDir = dir
		res, err := Build(ctx, oi)
		if err != nil {
			return nil, err
		}
		results[i] = res
		m, err := ReadManifest(filepath.Join(dir, res.Name+".manifest.json"))
		if err != nil {
			return nil, failure(StageManifest, err, nil)
		}
		manifests[i] = m
	}
	if results[0].ISO.SHA256 != results[1].ISO.SHA256 {
		diff := FirstDifference(manifests[0], manifests[1])
		return nil, &Error{Info: ErrorInfo{
			Code: "not_reproducible", Stage: StageISO,
			Message: fmt.Sprintf("the two builds differ: ISO sha256 %s vs %s; first differing artifact: %s", results[0].ISO.SHA256, results[1].ISO.SHA256, diff),
			Hint:    "report this: the same inputs must give the same image",
		}, Err: ErrNotReproducible}
	}
	// Publish build 1: same order as a single build, the ISO last.
	res := results[0]
	for i := range []int{0, 1, 2} {
		a := &res.Artifacts[(i+1)%3] // manifest, SHA256SUMS, then ISO
		final := filepath.Join(o.OutDir, a.Name)
		if err := os.Rename(a.Path, final); err != nil {
			return nil, failure("", fmt.Errorf("publish %s: %w", a.Name, err), nil)
		}
		a.Path = final
	}
	res.ISO.Path = filepath.Join(o.OutDir, res.ISO.Name)
	return res, nil
}
