package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"debate/internal/debian"
)

// Manifest describes an image completely: what went in, pinned how, and what came out.
// It holds no wall-clock time, so that it is as reproducible as the image itself.
type Manifest struct {
	Name            string             `json:"name"`
	RecipeHash      string             `json:"recipeHash"`
	BuildKey        string             `json:"buildKey"`
	Builder         string             `json:"builder"`
	SourceDateEpoch int64              `json:"sourceDateEpoch"`
	Pinned          Pinned             `json:"pinned"`
	Compression     string             `json:"compression"`
	Kernel          string             `json:"kernel"`
	Boot            []string           `json:"boot"`
	Packages        []InstalledPackage `json:"packages"`
	Lock            []LockedPackage    `json:"lock"`
	// Artifacts are the ISO's parts and the ISO itself, each with its sha256: a failed
	// reproducibility check names the first that differs.
	Artifacts []Artifact      `json:"artifacts"`
	Recipe    json.RawMessage `json:"recipe"`
}

// manifestParts are compared in this order when two builds differ.
var manifestParts = []string{"live/vmlinuz", "live/initrd.img", "live/filesystem.squashfs", "boot/grub/efiboot.img", "isolinux/isolinux.bin", "image.iso"}

func (p *pipeline) manifest() error {
	status, err := readRegular(p.path("meta/dpkg-status"))
	if err != nil {
		return fmt.Errorf("read the image's package list: %w", err)
	}
	var installed []InstalledPackage
	err = debian.ReadParagraphs(strings.NewReader(string(status)), func(par debian.Paragraph) error {
		if strings.HasSuffix(par.Get("Status"), " installed") {
			installed = append(installed, InstalledPackage{Name: par.Get("Package"), Version: par.Get("Version"), Arch: par.Get("Architecture")})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the image's package list: %w", err)
	}
	sort.Slice(installed, func(i, j int) bool { return installed[i].Name < installed[j].Name })
	p.installed = installed
	kernel, _ := readRegular(p.path("meta/kernel"))

	canonical, err := p.recipe.Canonical()
	if err != nil {
		return err
	}
	compression := p.recipe.Image.Compression
	if p.recipe.Image.CompressionLevel > 0 {
		compression = fmt.Sprintf("%s-%d", compression, p.recipe.Image.CompressionLevel)
	}
	m := Manifest{
		Name: p.recipe.Name, RecipeHash: p.recipeHash, BuildKey: p.buildKey, Builder: Version,
		SourceDateEpoch: p.sde, Pinned: p.pinned, Compression: compression,
		Kernel: strings.TrimSpace(string(kernel)), Boot: p.recipe.Boot,
		Packages: installed, Lock: p.lock, Recipe: canonical,
	}
	for i, part := range manifestParts {
		path := p.path("iso", part)
		if part == "image.iso" {
			path = p.path("out/image.iso")
		}
		a, err := describe(path, part)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		m.Artifacts = append(m.Artifacts, a)
		p.rep.progress(float64(i+1)/float64(len(manifestParts)), "checksum "+part)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	p.manifestData = append(data, '\n')
	return nil
}

func describe(path, name string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// publish moves the ISO, manifest and checksums into OutDir. Each file is written under a
// temporary name in OutDir, synced, then renamed; the ISO comes last, so that its presence
// means the set is complete, and an interrupted build leaves nothing that looks finished.
func (p *pipeline) publish() (*Result, error) {
	name := p.recipe.Name
	tmp, err := os.MkdirTemp(p.o.OutDir, ".debate-partial-")
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer os.RemoveAll(tmp)

	isoTmp := filepath.Join(tmp, name+".iso")
	iso, err := copyFile(p.path("out/image.iso"), isoTmp)
	if err != nil {
		return nil, fmt.Errorf("publish ISO: %w", err)
	}
	iso.Name = name + ".iso"
	manifestTmp := filepath.Join(tmp, name+".manifest.json")
	if err := writeSynced(manifestTmp, p.manifestData); err != nil {
		return nil, fmt.Errorf("publish manifest: %w", err)
	}
	man, err := describe(manifestTmp, name+".manifest.json")
	if err != nil {
		return nil, err
	}
	sums := fmt.Sprintf("%s  %s\n%s  %s\n", iso.SHA256, iso.Name, man.SHA256, man.Name)
	sumsTmp := filepath.Join(tmp, name+".SHA256SUMS")
	if err := writeSynced(sumsTmp, []byte(sums)); err != nil {
		return nil, fmt.Errorf("publish checksums: %w", err)
	}
	sumsA, _ := describe(sumsTmp, name+".SHA256SUMS")

	res := &Result{Name: name, RecipeHash: p.recipeHash, BuildKey: p.buildKey, DownloadedBytes: p.downloaded}
	for _, a := range []*Artifact{&man, &sumsA, &iso} {
		final := filepath.Join(p.o.OutDir, a.Name)
		if err := os.Rename(filepath.Join(tmp, a.Name), final); err != nil {
			return nil, fmt.Errorf("publish %s: %w", a.Name, err)
		}
		a.Path = final
	}
	if d, err := os.Open(p.o.OutDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	res.ISO = iso
	res.Artifacts = []Artifact{iso, man, sumsA}
	return res, nil
}

// copyFile copies src to dst (synced) and describes dst.
func copyFile(src, dst string) (Artifact, error) {
	in, err := os.Open(src)
	if err != nil {
		return Artifact{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Artifact{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadManifest reads a manifest written by a build.
func ReadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// FirstDifference names the first artifact whose sha256 differs between two manifests
// (in pipeline order), or "" when they match.
func FirstDifference(a, b *Manifest) string {
	sums := func(m *Manifest) map[string]string {
		out := map[string]string{}
		for _, x := range m.Artifacts {
			out[x.Name] = x.SHA256
		}
		return out
	}
	sa, sb := sums(a), sums(b)
	for _, part := range manifestParts {
		if sa[part] != sb[part] {
			return part
		}
	}
	if a.BuildKey != b.BuildKey {
		return "build key (the pinned inputs changed between the builds)"
	}
	return ""
}
